"""FeatureTap: named feature maps next to the embedding, through torch.export too; default taps; errors."""

from __future__ import annotations

import pytest
import torch

from edgekd.errors import ModelError
from edgekd.models import create_model
from edgekd.models.taps import DEFAULT_TAPS, FeatureTap, default_taps


def x() -> torch.Tensor:
    return torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["mobilefacenet", "mobilefacenet_ms1m", "iresnet18"])
def test_default_tap_is_the_last_7x7_map(name: str) -> None:
    model = create_model(name).eval()
    tap = FeatureTap(model, default_taps(name))
    with torch.no_grad():
        emb, maps = tap(x())
        assert torch.equal(emb, model(x()))
        assert torch.equal(maps["last_map"], model.forward_features(x()))
    assert maps["last_map"].shape[2:] == (7, 7)
    assert not any(m._forward_hooks for m in model.modules())  # hooks live for one call only
    assert tap.embedding_size == model.embedding_size


def test_every_default_tap_names_a_module() -> None:
    for name, layers in DEFAULT_TAPS.items():
        with torch.device("meta"):
            FeatureTap(create_model(name), layers)


def test_export_matches_eager() -> None:
    tap = FeatureTap(create_model("mobilefacenet_ms1m").eval(), {"last_map": "conv2", "mid": "features.7"})
    program = torch.export.export(tap, (x(),))
    with torch.no_grad():
        emb, maps = tap(x())
        emb_e, maps_e = program.module()(x())
    assert torch.allclose(emb, emb_e, atol=1e-5)
    assert maps_e.keys() == maps.keys() and maps["mid"].shape == (2, 128, 14, 14)
    assert all(torch.allclose(maps[k], maps_e[k], atol=1e-5) for k in maps)


def test_gradients_flow_through_the_tapped_map() -> None:
    model = create_model("mobilefacenet").eval()  # eval: BN still passes gradients, batch 1 is fine
    _, maps = FeatureTap(model, {"early": "dw_conv"})(x()[:1])
    maps["early"].mean().backward()
    assert model.conv1[0].weight.grad.abs().sum() > 0


def test_bad_path_lists_valid_paths_and_suggests() -> None:
    with pytest.raises(ModelError) as err:
        FeatureTap(create_model("mobilefacenet_ms1m"), {"last_map": "conv22"})
    message = str(err.value)
    assert "no module 'conv22'" in message and "Close matches: 'conv2.2', 'conv2'" in message
    assert "Valid module paths: conv1, conv1.0" in message and "gdconv.depthwise" in message
    with pytest.raises(ModelError, match="at least one layer"):
        FeatureTap(create_model("mobilefacenet"), {})


def test_unknown_default_tap() -> None:
    with pytest.raises(ModelError, match=r"no default feature tap for model 'mobilefacenett'.*Did you mean"):
        default_taps("mobilefacenett")
