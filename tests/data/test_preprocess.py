"""Preprocessing spec: formulas of the presets, channel order, layout and serialisation."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.data.preprocess import PRESETS, PreprocessSpec
from edgekd.errors import ConfigError


def test_presets_known_values():
    img = np.zeros((1, 112, 112, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 255, 127, 0
    raw = PreprocessSpec.preset("raw255").apply(img)
    assert raw.shape == (1, 3, 112, 112) and raw[0, :, 0, 0].tolist() == [255, 127, 0]
    arc = PreprocessSpec.preset("arcface").apply(img)[0, :, 0, 0]
    np.testing.assert_allclose(arc, [1.0, -0.5 / 127.5, -1.0], rtol=1e-6)
    imn = PreprocessSpec.preset("imagenet").apply(img)[0, :, 0, 0]
    np.testing.assert_allclose(
        imn, [(1 - 0.485) / 0.229, (127 / 255 - 0.456) / 0.224, -0.406 / 0.225], rtol=1e-5
    )


def test_bgr_and_nhwc():
    spec = PreprocessSpec(channel_order="BGR", layout="NHWC", mean=(0, 0, 0), std=(1, 1, 1))
    img = np.zeros((2, 112, 112, 3), np.uint8)
    img[..., 0] = 10
    out = spec.apply(img)
    assert out.shape == (2, 112, 112, 3) and out[0, 0, 0].tolist() == [0, 0, 10]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip(name):
    spec = PRESETS[name]
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec


def test_errors():
    with pytest.raises(ConfigError, match="Did you mean 'arcface'"):
        PreprocessSpec.preset("arcfac")
    with pytest.raises(ConfigError, match="unknown preprocessing key"):
        PreprocessSpec.from_dict({"men": [0, 0, 0]})
    with pytest.raises(ConfigError, match="channel_order"):
        PreprocessSpec(channel_order="RBG")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 112x112"):
        PRESETS["raw255"].apply(np.zeros((1, 64, 64, 3), np.uint8))
