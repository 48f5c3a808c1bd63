"""OpenVINO and LiteRT embedders: agreement with PyTorch, precision hint, int8 I/O, dispatch and errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgekd.convert.manifest import Manifest, write_manifest
from edgekd.convert.parity import cosine_per_image
from edgekd.errors import ModelError
from edgekd.runtime import load_embedder
from edgekd.runtime.litert_backend import LiteRtEmbedder, TensorQuantization, dequantize, quantize
from edgekd.runtime.openvino_backend import OpenVinoEmbedder, runtime_precisions
from edgekd.runtime.torch_backend import TorchEmbedder
from tests.convert.artifacts import SPEC, export_openvino, faces, tflite_in_subprocess, tiny_model

# Converting to TFLite takes ~11 s (a child process importing litert-torch/JAX): slow, and optional.
needs_litert_torch = pytest.mark.skipif(
    importlib.util.find_spec("litert_torch") is None, reason="litert-torch (extra [tflite]) not installed"
)


@pytest.fixture(scope="module")
def torch_ref() -> TorchEmbedder:
    return TorchEmbedder(tiny_model(), SPEC, "torch")


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    path = tmp_path_factory.mktemp("ov") / "tiny.xml"
    export_openvino(tiny_model(), path)
    return path


@pytest.fixture(scope="module")
def tflite_float(tmp_path_factory):
    return tflite_in_subprocess(0, tmp_path_factory.mktemp("tfl") / "tiny.tflite")


@pytest.fixture(scope="module")
def tflite_int8(tmp_path_factory):
    return tflite_in_subprocess(0, tmp_path_factory.mktemp("tflq") / "tiny_int8.tflite", int8=True)


def manifest_for(path, target: str) -> None:
    write_manifest(
        Manifest(target=target, artifact=path.name, preprocess=SPEC, embedding_size=8), path.parent
    )


def test_openvino_ir_matches_torch_and_runs_f32(ir, torch_ref):
    emb = OpenVinoEmbedder(ir, SPEC, threads=1)
    assert emb.max_batch is None and emb.embedding_size == 8
    assert str(emb.compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    imgs = faces(5)
    assert cosine_per_image(emb.embed(imgs), torch_ref.embed(imgs)).min() > 0.99999
    layers = runtime_precisions(emb.compiled)
    convs = [layer for layer in layers if layer.layer_type == "Convolution"]
    assert len(convs) == 3 and {layer.precision for layer in convs} == {"f32"}


def test_openvino_model_in_memory(torch_ref):
    emb = OpenVinoEmbedder(export_openvino(tiny_model()), SPEC, name="in-memory")
    imgs = faces(3)
    assert emb.name == "in-memory"
    assert cosine_per_image(emb.embed(imgs), torch_ref.embed(imgs)).min() > 0.99999


def test_openvino_loads_through_manifest(ir):
    with pytest.raises(ModelError, match=r"manifest\.json"):
        load_embedder(ir)  # no manifest yet: the preprocessing is unknown
    manifest_for(ir, "openvino")
    assert load_embedder(ir).input_spec == SPEC


def test_manifest_of_another_artifact_does_not_apply(ir, tmp_path):
    other = tmp_path / "other.xml"
    other.write_bytes(ir.read_bytes())
    other.with_suffix(".bin").write_bytes(ir.with_suffix(".bin").read_bytes())
    write_manifest(Manifest("openvino", "float.xml", SPEC, 8), tmp_path)
    with pytest.raises(ModelError, match="does not say how to preprocess"):
        load_embedder(other)
    assert load_embedder(other, preprocess="arcface").input_spec == SPEC


def test_openvino_missing_weights(ir, tmp_path):
    lonely = tmp_path / "m.xml"
    lonely.write_text(ir.read_text())
    with pytest.raises(ModelError, match=r"m\.bin"):
        OpenVinoEmbedder(lonely, SPEC)


def test_quantize_dequantize_known_values():
    q = TensorQuantization("int8", 0.5, -3)
    x = np.array([0.0, 1.0, 1.25, 100.0, -100.0], np.float32)
    np.testing.assert_array_equal(quantize(x, q), np.array([-3, -1, -1, 127, -128], np.int8))
    np.testing.assert_allclose(dequantize(np.array([-3, 1], np.int8), q), [0.0, 2.0])


@pytest.mark.slow
@needs_litert_torch
def test_litert_float_matches_torch(tflite_float, torch_ref):
    emb = LiteRtEmbedder(tflite_float, SPEC, threads=1)
    assert emb.max_batch == 1 and emb.input_quantization is None  # static batch 1: the base loops
    imgs = faces(3)
    assert cosine_per_image(emb.embed(imgs), torch_ref.embed(imgs)).min() > 0.99999


@pytest.mark.slow
@needs_litert_torch
def test_litert_int8_io_is_quantized_with_model_params(tflite_int8, torch_ref):
    emb = LiteRtEmbedder(tflite_int8, SPEC)
    assert emb.input_quantization is not None and emb.input_quantization.dtype == "int8"
    assert emb.output_quantization is not None  # int8 output, dequantized here
    imgs = faces(4, seed=3)
    assert cosine_per_image(emb.embed(imgs), torch_ref.embed(imgs)).mean() > 0.99


@pytest.mark.slow
@needs_litert_torch
def test_tflite_needs_manifest_or_spec(tflite_float):
    with pytest.raises(ModelError, match="--preprocess"):
        load_embedder(tflite_float)
    manifest_for(tflite_float, "tflite")
    assert isinstance(load_embedder(tflite_float), LiteRtEmbedder)
    nhwc = SPEC.__class__(layout="NHWC")
    with pytest.raises(ModelError, match="does not match the preprocessing spec"):
        LiteRtEmbedder(tflite_float, nhwc)


def test_bad_artifacts(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        load_embedder(tmp_path / "missing.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer" * 4)
    with pytest.raises(ModelError, match=r"junk\.tflite"):
        load_embedder(junk, preprocess="arcface")
    other = tmp_path / "model.engine"
    other.write_bytes(b"?")
    with pytest.raises(ModelError, match=r"\.tflite"):
        load_embedder(other)


@pytest.mark.slow
@needs_litert_torch
def test_bench_runs_a_full_integer_tflite_and_checks_its_golden_faces(tflite_int8, tmp_path):
    """bench's LiteRT runner (numpy + ai_edge_litert only) quantizes input and dequantizes output as
    LiteRtEmbedder does: its golden-face embeddings equal the embedder's."""
    import dataclasses
    import shutil

    from edgekd.bench import bench
    from edgekd.convert.golden import artifact_sha256, write_golden

    folder = tmp_path / "a"
    folder.mkdir()
    path = folder / "model.tflite"
    shutil.copy(tflite_int8, path)
    manifest = Manifest(target="tflite", artifact="model.tflite", preprocess=SPEC, embedding_size=8)
    write_manifest(manifest, folder)
    imgs = faces(6, seed=4)
    golden = write_golden(folder, imgs, LiteRtEmbedder(path, SPEC).embed(imgs), "litert here")
    write_manifest(
        dataclasses.replace(manifest, artifact_sha256=artifact_sha256(path), golden=golden), folder
    )
    run = bench([str(path)], "rpi4", pairs="synthetic", runs=3, batch=2)
    (result,) = run.results
    assert run.failures == [] and result["format"] == "tflite" and result["accuracy"] is not None
    assert result["device_parity"]["min_cosine"] > 0.99999
    assert result["runtime"]["runtime"] == "ai_edge_litert"
