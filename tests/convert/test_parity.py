"""Parity check: an artifact against itself passes with cosine 1, a corrupted artifact fails; manifest and
face-image helpers it relies on."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgekd.convert.images import face_images
from edgekd.convert.manifest import Manifest, read_manifest, tool_versions, write_manifest
from edgekd.convert.parity import ParityReport, check_parity, cosine_per_image, require_parity
from edgekd.errors import ConversionError, DataError, ModelError
from edgekd.runtime import load_embedder
from tests.convert.artifacts import SPEC, export_onnx, faces, tiny_model
from tests.helpers import make_lfw


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    return export_onnx(tiny_model(), tmp_path_factory.mktemp("parity") / "tiny.onnx")


def corrupt(src, dst, scale: float = 0.3, seed: int = 0):
    """Add noise (``scale`` × each weight's std) to every float initializer of rank ≥ 2 (conv/FC weights)."""
    model = onnx.load(str(src))
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.ndim >= 2:
            noisy = w + scale * w.std() * rng.standard_normal(w.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    onnx.save(model, str(dst))
    return dst


def test_artifact_against_itself_is_exact(onnx_model):
    a = load_embedder(onnx_model, threads=1)
    report = check_parity(a, load_embedder(onnx_model, threads=1), faces(6))
    assert report.passed and report.num_images == 6
    assert report.mean_cosine == pytest.approx(1.0, abs=1e-6)
    assert report.min_cosine == pytest.approx(1.0, abs=1e-6)
    assert require_parity(report) is report


def test_corrupted_artifact_fails(onnx_model, tmp_path):
    bad = load_embedder(corrupt(onnx_model, tmp_path / "bad.onnx"), threads=1)
    report = check_parity(bad, load_embedder(onnx_model, threads=1), faces(6))
    # 30 % weight noise still leaves cosine ≈ 0.995, which accuracy would barely notice: the mean catches it
    assert not report.passed and report.mean_cosine < 0.999
    with pytest.raises(ConversionError, match="Parity: FAIL"):
        require_parity(report)


def test_cosine_and_report_format():
    a = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], np.float32)
    b = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]], np.float32)
    np.testing.assert_allclose(cosine_per_image(a, b), [1.0, 0.0, -1.0], atol=1e-7)
    with pytest.raises(ModelError, match="shape"):
        cosine_per_image(a, b[:2])
    report = ParityReport("ref", "cand", 3, 0.9995, 0.985, 2)
    assert not report.passed  # mean is fine, the worst image is not
    assert report.to_dict()["passed"] is False
    assert "| min (image 2) | 0.985000 | ≥ 0.99 |" in report.to_markdown()
    assert ParityReport("ref", "cand", 3, 0.9995, 0.985, 2, min_threshold=0.98).passed


def test_manifest_roundtrip(tmp_path):
    manifest = Manifest(
        target="tflite",
        artifact="model.tflite",
        preprocess=SPEC,
        embedding_size=128,
        source_sha256="ab" * 32,
        input_quantization={"dtype": "int8", "scale": 0.0186, "zero_point": -14},
        tool_versions=tool_versions(),
        parity=ParityReport("pt2e", "model.tflite", 8, 0.9995, 0.995, 1).to_dict(),
    )
    path = write_manifest(manifest, tmp_path)
    assert read_manifest(tmp_path / "model.tflite") == manifest
    assert read_manifest(path).input_quantization["zero_point"] == -14
    assert manifest.tool_versions["torch"].startswith("2.13")
    with pytest.raises(ModelError, match="no manifest"):
        read_manifest(tmp_path / "elsewhere" / "x.onnx")


def test_face_images_synthetic_and_folder(tmp_path):
    synthetic = face_images(None, count=5, seed=1)
    assert synthetic.shape == (5, 112, 112, 3) and synthetic.dtype == np.uint8
    np.testing.assert_array_equal(synthetic, face_images(None, count=5, seed=1))
    root = make_lfw(tmp_path / "lfw", "1 1", ["A 1 2"], {"A": 2, "B": 3})
    real = face_images(root, count=4)
    assert real.shape == (4, 112, 112, 3)
    with pytest.raises(DataError):
        face_images(tmp_path / "missing", count=2)
