"""The roofline reads every artifact format's own op list: same MACs as counted by hand, int8 found."""

from __future__ import annotations

import pytest

from edgekd.bench.ops_openvino import openvino_ops
from edgekd.bench.roofline import onnx_ops
from edgekd.errors import ModelError
from tests.convert.artifacts import (
    SPEC,
    export_onnx,
    export_openvino,
    faces,
    tflite_in_subprocess,
    tiny_model,
)

# TinyFaceNet at 112x112: stem 3->8 3x3/2 (56x56), depthwise 3x3, pointwise 8->16, FC 16->8
TINY_MACS = 8 * 56 * 56 * 3 * 9 + 8 * 56 * 56 * 9 + 16 * 56 * 56 * 8 + 8 * 16


def _static_ir(path, model=None):
    """An IR with a fixed 1x3x112x112 input (what edgekd convert writes)."""
    import openvino as ov
    import torch

    from tests.convert.artifacts import example

    ov_model = ov.convert_model(torch.export.export(model or tiny_model(), (example(1),)))
    ov_model.reshape({0: [1, 3, 112, 112]})  # as edgekd's exporter pins it
    ov.save_model(ov_model, str(path), compress_to_fp16=False)
    return path


def _compute(ops):
    return [o for o in ops if o.kind == "compute"]


def test_onnx_and_openvino_readers_count_the_same_macs(tmp_path):
    onnx_file = export_onnx(tiny_model(), tmp_path / "tiny.onnx")
    xml = _static_ir(tmp_path / "tiny.xml")
    assert sum(o.macs for o in onnx_ops(onnx_file)) == TINY_MACS
    ops = openvino_ops(xml)
    assert sum(o.macs for o in ops) == TINY_MACS
    assert len(_compute(ops)) == 4 and {o.precision for o in ops} == {"fp32"}
    # the BN/ReLU after each conv is fused, not a memory op; the residual add moves memory
    assert {o.op_type for o in ops if o.kind == "memory"} >= {"Add"}
    assert sum(o.macs for o in openvino_ops(xml, batch=4)) == 4 * TINY_MACS


def test_openvino_reader_finds_int8_convolutions(tmp_path):
    import openvino as ov

    from edgekd.convert.ptq import openvino_ptq

    openvino_ptq(
        ov.Core().read_model(str(_static_ir(tmp_path / "s.xml"))), faces(8), SPEC, tmp_path / "q.xml"
    )
    ops = openvino_ops(tmp_path / "q.xml")
    convs = [o for o in _compute(ops) if o.op_type != "MatMul"]
    assert len(convs) == 3 and {o.precision for o in convs} == {"int8"}
    assert sum(o.macs for o in ops) == TINY_MACS
    float_xml = _static_ir(tmp_path / "f.xml")
    # int8 reads 1 byte per element where float reads 4
    int8_bytes = sum(o.bytes for o in convs)
    float_bytes = sum(o.bytes for o in _compute(openvino_ops(float_xml)) if o.op_type != "MatMul")
    assert int8_bytes < float_bytes / 2


def test_bad_ir_is_a_model_error(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<net>not an IR</net>")
    with pytest.raises(ModelError, match="not a readable OpenVINO IR"):
        openvino_ops(bad)
    dynamic = tmp_path / "dyn.xml"
    export_openvino(tiny_model(), dynamic)  # batch, height and width dynamic
    with pytest.raises(ModelError, match="dynamic dimensions"):
        openvino_ops(dynamic)


@pytest.mark.slow
def test_tflite_reader_counts_macs_and_int8(tmp_path):
    from edgekd.bench.ops_tflite import tflite_ops

    float_ops = tflite_ops(tflite_in_subprocess(0, tmp_path / "f.tflite"))
    assert sum(o.macs for o in float_ops) == TINY_MACS
    assert {o.precision for o in _compute(float_ops)} == {"fp32"}
    int8_ops = tflite_ops(tflite_in_subprocess(0, tmp_path / "q.tflite", int8=True))
    assert sum(o.macs for o in int8_ops) == TINY_MACS
    assert {o.precision for o in _compute(int8_ops)} == {"int8"}
    with pytest.raises(ModelError, match="not a loadable TFLite model"):
        (tmp_path / "bad.tflite").write_bytes(b"nope")
        tflite_ops(tmp_path / "bad.tflite")
