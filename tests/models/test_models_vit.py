"""ViTFace token interface: token count per patch size, prompt tokens in and out, bad prompts."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ModelError
from edgekd.models import create_model
from edgekd.models.vit import ViTFace


@pytest.mark.parametrize(("patch_size", "tokens"), [(8, 196), (9, 144)])
def test_forward_features_returns_patch_tokens(patch_size: int, tokens: int) -> None:
    model = create_model("vit_face_tiny", patch_size=patch_size)
    out = model.forward_features(torch.randn(2, 3, 112, 112))
    assert out.shape == (2, tokens, 192)
    assert model.num_tokens == tokens


def test_prompts_are_prepended_then_dropped_before_pooling() -> None:
    model = create_model("vit_face_tiny").eval()
    x, prompts = torch.randn(2, 3, 112, 112), torch.randn(2, 4, 192)
    with torch.no_grad():
        tokens = model.forward_features(x, prompts)
        assert tokens.shape == (2, 4 + 196, 192)
        embedding = model(x, prompts)
        assert torch.allclose(embedding, model.forward_head(tokens[:, 4:]))
        assert not torch.allclose(embedding, model(x))  # prompts steer the patch tokens through attention


def test_prompts_shared_by_the_batch_and_get_gradients() -> None:
    model = create_model("vit_face_tiny")
    prompts = torch.zeros(1, 2, 192, requires_grad=True)
    model(torch.randn(2, 3, 112, 112), prompts=prompts).sum().backward()
    assert prompts.grad is not None
    assert torch.isfinite(prompts.grad).all()


@pytest.mark.parametrize("shape", [(2, 4, 100), (3, 4, 192), (4, 192)])
def test_bad_prompts_are_rejected(shape: tuple[int, ...]) -> None:
    model = create_model("vit_face_tiny")
    with pytest.raises(ModelError, match="prompts must be"):
        model(torch.randn(2, 3, 112, 112), prompts=torch.zeros(shape))


def test_flatten_pool_head() -> None:
    model = ViTFace(dim=64, depth=1, heads=2, embedding_size=32, pool="flatten")
    assert model.fc.in_features == 196 * 64
    assert model(torch.randn(2, 3, 112, 112)).shape == (2, 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 100, "heads": 3}, "multiple of heads"),
        ({"pool": "cls"}, "unknown pool 'cls'"),
        ({"patch_size": 0}, "patch_size"),
        ({"depth": 0}, "depth"),
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        ViTFace(**kwargs)  # type: ignore[arg-type]
