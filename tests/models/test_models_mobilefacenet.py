"""MobileFaceNet options (width, blocks, embedding size, activation) and their validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekd.errors import ModelError
from edgekd.models import create_model
from edgekd.models.mobilefacenet import STAGES, stages_for_blocks


def test_default_blocks_are_the_paper_table() -> None:
    assert stages_for_blocks((1, 4, 6, 2)) == STAGES


@pytest.mark.parametrize(
    ("kwargs", "activation"),
    [({"act": "relu6", "embedding_size": 128}, nn.ReLU6), ({"act": "relu", "width": 0.5}, nn.ReLU)],
)
def test_options_change_the_network(kwargs: dict[str, object], activation: type[nn.Module]) -> None:
    model = create_model("mobilefacenet", **kwargs)
    assert not any(isinstance(m, nn.PReLU) for m in model.modules())
    assert any(type(m) is activation for m in model.modules())
    y = model(torch.randn(2, 3, 112, 112))
    assert y.shape == (2, model.embedding_size)


def test_width_scales_channels_to_multiples_of_8() -> None:
    model = create_model("mobilefacenet", width=0.75)
    assert model.conv1[0].out_channels == 48
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, nn.Conv2d))


def test_blocks_set_the_depth() -> None:
    model = create_model("mobilefacenet", blocks=(2, 1, 2, 1))
    assert len(model.dw_conv) == 2  # two residual bottlenecks instead of one depthwise conv
    assert len(model.features) == (1 + 1) + 1 + 2 + 1 + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width"),
        ({"blocks": (1, 4, 6)}, "blocks"),
        ({"blocks": (0, 4, 6, 2)}, "blocks"),
        ({"act": "gelu"}, "unknown activation 'gelu'"),
        ({"embedding_size": 0}, "embedding_size"),
    ],
)
def test_bad_options_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        create_model("mobilefacenet", **kwargs)


def test_iresnet_embedding_scale_is_frozen() -> None:
    model = create_model("iresnet18")
    assert not model.features.weight.requires_grad
    assert torch.equal(model.features.weight, torch.ones(512))
