"""Teacher logits from class centres: normalised means, missing classes fail, s·cos with a CosFace margin."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgekd.errors import DataError
from edgekd.losses.teacher_logits import centre_logits, class_centres


def test_class_centres_are_normalised_means_of_normalised_embeddings():
    emb = torch.tensor([[2.0, 0.0], [0.0, 5.0], [0.0, -1.0], [3.0, 4.0]])
    labels = torch.tensor([0, 0, 1, 1])
    centres = class_centres(emb, labels, num_classes=2)
    expected = F.normalize(torch.tensor([[1.0, 1.0], [0.6, -0.2]]), dim=1)  # unit rows summed per class
    torch.testing.assert_close(centres, expected)
    torch.testing.assert_close(class_centres(emb.numpy(), labels.numpy(), 2), expected)


def test_class_without_sample_is_an_error():
    with pytest.raises(DataError, match=r"2 of 4 classes have no sample: 1, 3"):
        class_centres(torch.randn(3, 2), torch.tensor([0, 2, 2]), num_classes=4)
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.1"):
        class_centres(torch.randn(2, 2), torch.tensor([0, 2]), num_classes=2)


def test_centre_logits():
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    emb = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    cos = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    torch.testing.assert_close(centre_logits(emb, centres, s=10.0), 10 * cos)
    margin = centre_logits(emb, centres, s=10.0, labels=torch.tensor([1, -1]), m3=0.25)
    torch.testing.assert_close(margin, 10 * (cos - torch.tensor([[0.0, 0.25], [0.0, 0.0]])))
