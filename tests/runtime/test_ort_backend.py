"""ONNX Runtime embedder: known outputs, the int8bq input defect, static batches and bad files."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from edgekd.data.preprocess import PreprocessSpec
from edgekd.errors import ModelError
from edgekd.runtime import load_embedder
from edgekd.runtime.loaders import METADATA_KEY
from tests.helpers import tiny_onnx

W = np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]], np.float32)


def faces(n: int, seed: int = 0) -> np.ndarray:
    """Solid-colour images: the model's average pool is then exact, so outputs are known in closed form."""
    colours = np.random.default_rng(seed).integers(0, 256, (n, 1, 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(colours, (n, 112, 112, 3)))


def expected(images: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    x = (images.astype(np.float64) - spec.mean) / spec.std
    return x.mean(axis=(1, 2)) @ W


def test_known_output_and_normalisation(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx", W)
    emb = load_embedder(path, preprocess="arcface", threads=1)
    imgs = faces(5)
    raw = emb.embed(imgs, normalize=False)
    np.testing.assert_allclose(raw, expected(imgs, PreprocessSpec.preset("arcface")), rtol=1e-4, atol=1e-4)
    normed = emb.embed(imgs)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, rtol=1e-6)
    assert emb.embedding_size == 4


def test_weights_declared_as_inputs_are_fixed(tmp_path):
    broken = tiny_onnx(tmp_path / "broken.onnx", W, weights_as_input=True)
    sess = ort.InferenceSession(str(broken), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="Required inputs"):  # ORT alone asks for the weights too
        sess.run(None, {"data": np.zeros((1, 3, 112, 112), np.float32)})
    fixed = load_embedder(broken, preprocess="raw255")
    good = load_embedder(tiny_onnx(tmp_path / "good.onnx", W), preprocess="raw255")
    imgs = faces(3)
    np.testing.assert_array_equal(fixed.embed(imgs), good.embed(imgs))


def test_static_batch_is_split_and_padded(tmp_path):
    path = tiny_onnx(tmp_path / "b2.onnx", W, batch=2)
    emb = load_embedder(path, preprocess="raw255")
    assert emb.max_batch == 2
    imgs = faces(5)
    np.testing.assert_allclose(
        emb.embed(imgs, normalize=False), expected(imgs, PreprocessSpec.preset("raw255")), rtol=1e-4
    )


def test_preprocess_from_metadata(tmp_path):
    spec = PreprocessSpec.preset("imagenet")
    path = tiny_onnx(tmp_path / "meta.onnx", W, metadata={METADATA_KEY: json.dumps(spec.to_dict())})
    emb = load_embedder(path)
    assert emb.input_spec == spec


def test_undeclared_preprocessing_is_an_error(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx", W)
    with pytest.raises(ModelError, match="--preprocess"):
        load_embedder(path)


def test_bad_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match=r"junk\.onnx"):
        load_embedder(junk, preprocess="raw255")
    with pytest.raises(ModelError, match="model not found"):
        load_embedder(tmp_path / "missing.onnx")
    other = tmp_path / "model.xyz"
    other.write_text("?")
    with pytest.raises(ModelError, match="cannot tell the format"):
        load_embedder(other)


def test_bad_images(tmp_path):
    emb = load_embedder(tiny_onnx(tmp_path / "m.onnx", W), preprocess="raw255")
    with pytest.raises(ModelError, match="uint8 RGB"):
        emb.embed(np.zeros((2, 112, 112, 3), np.float32))
    with pytest.raises(ModelError, match="uint8 RGB"):
        emb.embed(np.zeros((112, 112, 3), np.uint8))


@pytest.mark.parametrize("batch", ["N", 4])
def test_a_foreign_nhwc_model_with_its_own_normalisation(tmp_path, batch):
    """TFLite-style (N, 112, 112, 3) input, BGR, mean 127.5 / std 128, fixed batch 4: described on the
    command line, layout from the input shape, and the known output comes out."""
    path = tiny_onnx(tmp_path / "nhwc.onnx", W, nhwc=True, batch=batch)
    emb = load_embedder(path, preprocess="mean=127.5,std=128,order=BGR", threads=1)
    assert emb.input_spec.layout == "NHWC" and emb.max_batch == (4 if batch == 4 else None)
    imgs = faces(5)
    spec = PreprocessSpec.parse("mean=127.5,std=128")
    np.testing.assert_allclose(emb.embed(imgs, normalize=False), expected(imgs[..., ::-1], spec), atol=1e-4)
