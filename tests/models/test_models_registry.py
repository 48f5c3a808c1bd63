"""Every registered model, for free: build, forward, backward, architecture detection; registry errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError
from edgekd.models import (
    create_model,
    default_preprocess,
    detect_architecture,
    list_models,
)

# 44 M / 65 M parameters: too slow for a backward pass on a 2-core CI runner (several seconds each), and
# built from the same blocks as iresnet18, which does get one. Their forward runs without autograd.
HEAVY = {"iresnet50", "iresnet100"}

EXPECTED = {
    "mobilefacenet",
    "mobilefacenet_large",
    "mobilefacenet_ms1m",
    "iresnet18",
    "iresnet50",
    "iresnet100",
    "vit_face_tiny",
    "vit_face_small",
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_list_models_has_every_family() -> None:
    assert set(list_models()) == EXPECTED
    assert list_models() == sorted(list_models())


def test_import_builds_nothing_and_skips_torch() -> None:
    loaded = "[m for m in sys.modules if m.startswith(('torch', 'edgekd.models.'))]"
    code = f"import sys, edgekd.models; print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", list_models())
def test_forward_shape_and_finite(name: str) -> None:
    model = create_model(name)
    x = torch.randn(2, 3, 112, 112)
    if name in HEAVY:
        model.eval()
        with torch.no_grad():
            y = model(x)
    else:
        y = model(x)
    assert y.shape == (2, model.embedding_size)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(set(list_models()) - HEAVY))
def test_backward_gives_finite_grads(name: str) -> None:
    model = create_model(name)
    model(torch.randn(2, 3, 112, 112)).square().mean().backward()
    trainable = [(key, p) for key, p in model.named_parameters() if p.requires_grad]
    assert trainable
    for key, param in trainable:
        assert param.grad is not None, key
        assert torch.isfinite(param.grad).all(), key


@pytest.mark.parametrize("name", list_models())
def test_meta_forward_shape(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
        y = model(torch.empty(2, 3, 112, 112))
    assert y.shape == (2, model.embedding_size)


@pytest.mark.parametrize("name", list_models())
def test_detect_architecture_round_trip(name: str) -> None:
    with torch.device("meta"):
        state_dict = create_model(name).state_dict()
    assert detect_architecture(state_dict) == name


@pytest.mark.parametrize("name", list_models())
def test_default_preprocess_is_a_spec(name: str) -> None:
    expected = "imagenet" if name == "mobilefacenet_ms1m" else "arcface"
    assert default_preprocess(name) == PreprocessSpec.preset(expected)


def test_unknown_name_suggests_the_close_one() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'iresnet5'.*Did you mean 'iresnet50'\?") as info:
        create_model("iresnet5")
    assert "mobilefacenet_ms1m" in str(info.value)  # lists the known names
    with pytest.raises(ModelError, match="unknown model"):
        default_preprocess("nope")


def test_unknown_option_suggests_the_close_one() -> None:
    with pytest.raises(ModelError, match=r"no option 'widht'.*Did you mean 'width'\?"):
        create_model("mobilefacenet", widht=0.5)


def test_detect_architecture_no_match_names_closest_and_difference() -> None:
    with torch.device("meta"):
        state_dict = create_model("mobilefacenet_ms1m").state_dict()
    state_dict.pop("conv3.bias")
    with pytest.raises(ModelError, match=r"closest is 'mobilefacenet_ms1m'.*1 missing.*'conv3.bias'"):
        detect_architecture(state_dict)


def test_detect_architecture_hints_at_other_options() -> None:
    with torch.device("meta"):
        state_dict = create_model("mobilefacenet", embedding_size=128).state_dict()
    with pytest.raises(
        ModelError, match=r"closest is 'mobilefacenet'.*'linear.weight' is \(128, 512\).*embedding_size"
    ):
        detect_architecture(state_dict)


def test_detect_architecture_hints_at_dataparallel_prefix() -> None:
    with torch.device("meta"):
        state_dict = {f"module.{k}": v for k, v in create_model("iresnet18").state_dict().items()}
    with pytest.raises(ModelError, match="strip that prefix"):
        detect_architecture(state_dict)
