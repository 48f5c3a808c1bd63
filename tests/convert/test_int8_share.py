"""int8 share of conv/FC MACs as each runtime executes the model: known values on tiny and real-size nets."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgekd.convert.int8_share import int8_share, onnx_int8_share, openvino_int8_share
from edgekd.convert.ptq import onnx_ptq, openvino_ptq
from edgekd.errors import ModelError
from tests.convert.artifacts import (
    SPEC,
    export_onnx,
    export_openvino,
    faces,
    tflite_in_subprocess,
    tiny_model,
)

# tiny net at 112x112: stem 56·56·8·27 + dw 56·56·8·9 + pw 56·56·16·8 + fc 16·8
TINY_MACS = 56 * 56 * 8 * 27 + 56 * 56 * 8 * 9 + 56 * 56 * 16 * 8 + 16 * 8
INPUT = (1, 3, *SPEC.size)


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("share")
    float_model = export_onnx(tiny_model(), root / "float.onnx")
    calib = faces(16)
    u8 = onnx_ptq(float_model, root / "u8.onnx", calib, activation_type="uint8")
    s8 = onnx_ptq(float_model, root / "s8.onnx", calib, activation_type="int8")
    return float_model, u8, s8


def test_onnx_float_is_zero(onnx_models):
    report = onnx_int8_share(onnx_models[0])
    assert report.share == 0.0 and report.total_macs == TINY_MACS and len(report.layers) == 4


def test_onnx_qdq_uint8_is_fully_fused(onnx_models):
    for level in ("extended", "all"):
        report = onnx_int8_share(onnx_models[1], level=level)
        assert report.share == 1.0 and report.total_macs == TINY_MACS
        assert {layer.op for layer in report.layers} >= {"QLinearConv"}


def test_onnx_qdq_int8_activations_leave_float_convs(onnx_models):
    report = onnx_int8_share(onnx_models[2])
    assert 0.0 < report.share < 1.0
    assert [layer.op for layer in report.float_layers] == ["Conv", "Conv"]  # measured: dw and pw stay float
    assert report.float_ops.get("Add") == 1  # the residual add runs in float too
    assert "float layer" in report.to_markdown()


def test_openvino_float_and_nncf(tmp_path):
    ov_model = export_openvino(tiny_model())
    assert openvino_int8_share(ov_model, input_shape=INPUT).share == 0.0
    quantized = openvino_ptq(ov_model, faces(8), SPEC, tmp_path / "q.xml")
    report = int8_share(tmp_path / "q.xml", input_shape=INPUT)
    assert report.share == 1.0 and report.total_macs == TINY_MACS
    with pytest.raises(ModelError, match="input_shape"):
        openvino_int8_share(quantized)  # dims H, W are dynamic in a torch.export conversion


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="litert-torch not installed")
def test_tflite_float_and_int8(tmp_path):
    float_report = int8_share(tflite_in_subprocess(0, tmp_path / "f.tflite"))
    assert float_report.share == 0.0 and float_report.total_macs == TINY_MACS
    int8_report = int8_share(tflite_in_subprocess(0, tmp_path / "q.tflite", int8=True))
    assert int8_report.share == 1.0 and int8_report.float_ops == {}
    assert sorted(layer.op for layer in int8_report.layers) == [
        "CONV_2D",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
    ]


@pytest.mark.slow
def test_mobilefacenet_ort_fusion_counts(tmp_path):
    """qat_toolchain.md §5 on the real architecture: uint8 activations fuse 51/51 convs, int8 only 36/51."""
    from edgekd.models import create_model

    float_model = export_onnx(create_model("mobilefacenet_ms1m").eval(), tmp_path / "mfn.onnx")
    calib = faces(4)
    assert onnx_int8_share(float_model).share == 0.0
    u8 = onnx_int8_share(onnx_ptq(float_model, tmp_path / "u8.onnx", calib, activation_type="uint8"))
    s8 = onnx_int8_share(onnx_ptq(float_model, tmp_path / "s8.onnx", calib, activation_type="int8"))
    assert u8.share == 1.0 and len(u8.layers) == 51
    assert len(s8.layers) - len(s8.float_layers) == 36 and s8.share == pytest.approx(0.6429, abs=1e-4)


def test_bad_inputs(tmp_path):
    with pytest.raises(ModelError, match="known suffixes"):
        int8_share(tmp_path / "model.pb")
    with pytest.raises(ModelError, match="not found"):
        int8_share(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(np.zeros(64, np.uint8).tobytes())
    with pytest.raises(ModelError, match=r"junk\.tflite"):
        int8_share(junk)
