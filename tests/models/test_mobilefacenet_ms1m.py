"""The ms1m MobileFaceNet against the real checkpoint and an independent reference built from its layer table.

The reference reads ``architecture.txt`` row by row (kernel, stride, padding, groups, activation, residual
adds) and runs it with ``F.conv2d`` on BN-folded weights, so a wrong stride, activation or skip in
:mod:`edgekd.models.mobilefacenet_ms1m` shows up as a numeric difference, not only as a key mismatch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekd.models import create_model, default_preprocess, detect_architecture, load_state_dict_file

pytestmark = pytest.mark.shared

WEIGHTS = "mobilefacenet_ms1m.pt"
BN_EPS = 1e-5

# The BN after each conv: "<prefix>.0" → "<prefix>.1" and "features.i.conv.2" → ".conv.3", except these.
BN_OF = {
    "dw_conv.depthwise": "dw_conv.bn1",
    "dw_conv.pointwise": "dw_conv.bn2",
    "gdconv.depthwise": "gdconv.bn",
}
ACTIVATIONS = {"ReLU6 (Clip 0..6)": lambda x: x.clamp(0, 6), "ReLU": F.relu, "none (linear)": lambda x: x}


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def model_dir(shared: Path) -> Path:
    """``shared/models/mobilefacenet`` (``shared`` comes from tests/conftest.py and skips when absent)."""
    path = shared / "models" / "mobilefacenet"
    _require(path / WEIGHTS)
    return path


@pytest.fixture(scope="module")
def state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_state_dict_file(model_dir / WEIGHTS)


@pytest.fixture(scope="module")
def model(state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    model = create_model("mobilefacenet_ms1m")
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _faces(n: int = 2) -> torch.Tensor:
    """Random uint8 RGB images through the model's own preprocessing: realistic input scale."""
    images = np.random.default_rng(0).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)
    return torch.from_numpy(default_preprocess("mobilefacenet_ms1m").apply(images))


def test_loads_strict_and_embeds(model: torch.nn.Module) -> None:
    with torch.no_grad():
        y = model(_faces())
    assert y.shape == (2, 128)
    assert torch.isfinite(y).all()
    assert y.std() > 0.1  # not collapsed: the weights are in use


def test_builder_loads_weights_strict(model_dir: Path) -> None:
    model = create_model("mobilefacenet_ms1m", weights=model_dir / WEIGHTS)
    assert model.embedding_size == 128


def test_detected_from_its_weights(state_dict: dict[str, torch.Tensor]) -> None:
    assert detect_architecture(state_dict) == "mobilefacenet_ms1m"


def test_keys_and_shapes_match_published_list(model: torch.nn.Module, model_dir: Path) -> None:
    rows = _require(model_dir / "state_dict_keys.txt").read_text().splitlines()
    published = [tuple(row.split("\t")) for row in rows if row and not row.startswith("#")]
    ours = [(key, str(tuple(t.shape))) for key, t in model.state_dict().items()]
    assert ours == published


def test_matches_folded_bn_reference_from_layer_table(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], model_dir: Path
) -> None:
    table = _require(model_dir / "architecture.txt").read_text().splitlines()
    x = _faces()
    expected = _reference_forward(table, state_dict, x.double())
    with torch.no_grad():
        actual = model(x).double()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def _reference_forward(table: list[str], sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run the layer table on BN-folded float64 weights: conv rows, residual rows, then flatten + ``bn``."""
    block_inputs: dict[str, torch.Tensor] = {}
    for row in table:
        fields = [f.strip() for f in row.split("|")]
        if row.startswith("#") or len(fields) == 1:
            continue
        module = fields[0]
        if fields[1].startswith("residual Add"):
            x = block_inputs.pop(module) + x
            continue
        if module.endswith(".conv.0.0"):  # first conv of a bottleneck: remember its input for the add
            block_inputs[module.removesuffix(".conv.0.0")] = x
        weight, bias = _folded(sd, module)
        stride, padding, groups = (int(f) for f in fields[3:6])
        x = ACTIVATIONS[fields[7]](F.conv2d(x, weight, bias, stride, padding, 1, groups))
    scale, shift = _bn_affine(sd, "bn")
    return x.flatten(1) * scale + shift


def _folded(sd: dict[str, torch.Tensor], conv: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with the following BN folded in (``conv3`` has a bias and no BN)."""
    weight = sd[f"{conv}.weight"].double()
    bias = sd[f"{conv}.bias"].double() if f"{conv}.bias" in sd else torch.zeros(weight.shape[0]).double()
    bn = _bn_after(conv)
    if bn is None:
        return weight, bias
    scale, shift = _bn_affine(sd, bn)
    return weight * scale[:, None, None, None], bias * scale + shift


def _bn_after(conv: str) -> str | None:
    if conv in BN_OF:
        return BN_OF[conv]
    if conv.endswith(".0"):
        return conv.removesuffix(".0") + ".1"
    if conv.endswith(".conv.2"):
        return conv.removesuffix(".2") + ".3"
    return None


def _bn_affine(sd: dict[str, torch.Tensor], bn: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``x * scale + shift``, per channel, float64."""
    mean, var, gamma, beta = (
        sd[f"{bn}.{n}"].double() for n in ("running_mean", "running_var", "weight", "bias")
    )
    scale = gamma / torch.sqrt(var + BN_EPS)
    return scale, beta - mean * scale
