"""PTQ baselines with the runtimes' own tools: ORT quantize_static (QDQ) and NNCF on OpenVINO."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekd.convert.parity import check_parity
from edgekd.convert.ptq import calibration_batches, onnx_ptq, openvino_ptq
from edgekd.convert.weight_range import artifact_weight_bound
from edgekd.errors import DataError, ModelError
from edgekd.isa import ARM64, MAX_EXACT_WEIGHT, X86_AVX2, X86_VNNI, exact_isas
from edgekd.runtime import load_embedder
from edgekd.runtime.loaders import METADATA_KEY
from edgekd.runtime.openvino_backend import OpenVinoEmbedder, runtime_precisions
from tests.convert.artifacts import SPEC, export_onnx, export_openvino, faces, tiny_model


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory):
    return export_onnx(tiny_model(), tmp_path_factory.mktemp("ptq") / "float.onnx")


def test_onnx_ptq_is_qdq_uint8_and_keeps_preprocessing(float_onnx, tmp_path):
    out = onnx_ptq(float_onnx, tmp_path / "q.onnx", faces(16))
    model = onnx.load(str(out))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    q_types = {
        onnx.numpy_helper.to_array(i).dtype
        for i in model.graph.initializer
        if i.name.endswith("_zero_point") and "weight" not in i.name.lower()
    }
    assert np.dtype(np.uint8) in q_types
    assert any(p.key == METADATA_KEY for p in model.metadata_props)
    quantized = load_embedder(out, threads=1)  # no --preprocess needed
    assert quantized.input_spec == SPEC
    report = check_parity(quantized, load_embedder(float_onnx, threads=1), faces(8, seed=5))
    assert report.mean_cosine > 0.999  # measured 0.99999 on this tiny net


def test_openvino_ptq_runs_every_conv_in_int8(tmp_path):
    quantized = openvino_ptq(export_openvino(tiny_model()), faces(8), SPEC, tmp_path / "q.xml")
    assert (tmp_path / "q.xml").is_file() and (tmp_path / "q.bin").is_file()
    emb = OpenVinoEmbedder(quantized, SPEC, threads=1)
    convs = [layer for layer in runtime_precisions(emb.compiled) if layer.layer_type == "Convolution"]
    assert len(convs) == 3 and {layer.precision for layer in convs} <= {"u8", "i8"}
    reloaded = OpenVinoEmbedder(tmp_path / "q.xml", SPEC)
    imgs = faces(3)
    np.testing.assert_allclose(reloaded.embed(imgs), emb.embed(imgs), atol=1e-5)


def test_calibration_batches_pad_and_preprocess():
    imgs = faces(3)
    batches = list(calibration_batches(imgs, SPEC, batch=4))
    assert len(batches) == 1 and batches[0].shape == (4, 3, 112, 112)
    np.testing.assert_array_equal(batches[0][:3], SPEC.apply(imgs))
    assert len(list(calibration_batches(faces(9), SPEC, batch=4))) == 2
    with pytest.raises(DataError):
        list(calibration_batches(imgs.astype(np.float32), SPEC, batch=1))


def test_bad_options(float_onnx, tmp_path):
    with pytest.raises(ModelError, match="activation_type"):
        onnx_ptq(float_onnx, tmp_path / "q.onnx", faces(2), activation_type="int4")
    with pytest.raises(ModelError, match="not found"):
        onnx_ptq(tmp_path / "missing.onnx", tmp_path / "q.onnx", faces(2))
    with pytest.raises(ModelError, match="preset"):
        openvino_ptq(tmp_path / "missing.xml", faces(2), SPEC, preset="fast")


def test_onnx_ptq_reduce_range_gives_weights_exact_on_every_cpu(float_onnx, tmp_path):
    """ORT's ``reduce_range`` is the tools' own 7-bit rule: no u8×s8 pair can saturate on AVX2."""
    wide = onnx_ptq(float_onnx, tmp_path / "q8.onnx", faces(16))
    narrow = onnx_ptq(float_onnx, tmp_path / "q7.onnx", faces(16), reduce_range=True)
    assert artifact_weight_bound(wide) == 127  # symmetric per-channel: each channel's max hits 127
    assert artifact_weight_bound(narrow) <= MAX_EXACT_WEIGHT
    assert set(exact_isas("onnxruntime", artifact_weight_bound(narrow))) == {X86_AVX2, X86_VNNI, ARM64}
    assert X86_AVX2 not in exact_isas("onnxruntime", artifact_weight_bound(wide))


def test_openvino_overflow_fix_limits_dense_weights_only(tmp_path):
    model = export_openvino(tiny_model())
    bounds = {}
    for fix in ("enable", "disable"):
        openvino_ptq(model, faces(8), SPEC, tmp_path / f"{fix}.xml", overflow_fix=fix)
        bounds[fix] = artifact_weight_bound(tmp_path / f"{fix}.xml")
    assert bounds["enable"] <= MAX_EXACT_WEIGHT < bounds["disable"]
    with pytest.raises(ModelError, match="overflow_fix"):
        openvino_ptq(model, faces(2), SPEC, overflow_fix="sometimes")


def test_weight_bound_of_float_and_unknown_artifacts(float_onnx, tmp_path):
    assert artifact_weight_bound(float_onnx) is None  # no int8 weights: nothing can saturate
    assert artifact_weight_bound(tmp_path / "model.tflite") is None  # XNNPACK widens first
    with pytest.raises(ModelError, match=r"\.pt"):
        artifact_weight_bound(tmp_path / "model.pt")
