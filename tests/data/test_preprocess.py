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


def test_parse_presets_overrides_and_bare_items():
    assert PreprocessSpec.parse("arcface") == PreprocessSpec.preset("arcface")
    spec = PreprocessSpec.parse("imagenet, order=BGR, layout=nhwc")
    assert spec.channel_order == "BGR" and spec.layout == "NHWC"
    assert spec.mean == PreprocessSpec.preset("imagenet").mean
    bare = PreprocessSpec.parse("mean=127.5,std=128,size=112x96")
    assert bare.mean == (127.5,) * 3 and bare.std == (128.0,) * 3 and bare.size == (112, 96)
    assert PreprocessSpec.parse("mean=1/2/3").mean == (1.0, 2.0, 3.0)
    for bad, message in [
        ("", "empty preprocessing spec"),
        ("arcface,gamma=2", "bad preprocessing item 'gamma=2'"),
        ("arcface,BGR", "bad preprocessing item 'BGR'"),
        ("mean=1/2", "one value or three"),
        ("size=112", "HEIGHTxWIDTH"),
        ("arcface,layout=CHW", "layout must be NCHW or NHWC"),
        ("arcfce", "Did you mean"),
    ]:
        with pytest.raises(ConfigError, match=message):
            PreprocessSpec.parse(bad)


def test_layout_follows_an_unambiguous_input_shape():
    spec = PreprocessSpec.preset("arcface")
    assert spec.with_input_shape([1, 112, 112, 3]).layout == "NHWC"
    assert spec.with_input_shape(["N", 3, 112, 112]).layout == "NCHW"
    assert spec.with_input_shape([1, 3, 3, 3]) == spec  # can't tell: the declared layout stays
    assert spec.with_input_shape([]) == spec
