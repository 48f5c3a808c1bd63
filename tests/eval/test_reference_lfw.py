"""The evaluator against published numbers on real LFW (needs ../shared; skips cleanly without it).

SFace 99.40 % and MobileFaceNet 98.90 % (shared/README.md, 10 folds, no flip) must be reproduced to
0.1 pp: this is what proves the protocol, the preprocessing specs and the model rebuild are right.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.data import load_verification_set
from edgekd.data.verification_bin import read_verification_bin, write_verification_bin
from edgekd.eval import evaluate
from edgekd.runtime import load_embedder

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def lfw(lfw_root):
    return load_verification_set(lfw_root)


@pytest.fixture(scope="module")
def student(shared):
    return load_embedder(shared / "models/mobilefacenet/mobilefacenet_ms1m.pt", threads=2)


def test_sface_fp32_reference_accuracy(shared, lfw):
    sface = load_embedder(shared / "models/sface/sface_2021dec_fp32.onnx", threads=2)
    m = evaluate(sface, lfw, batch_size=64, progress=False).metrics
    assert m.num_pairs == 6000 and m.num_folds == 10
    assert m.accuracy == pytest.approx(0.9940, abs=0.001)


def test_sface_int8bq_file_loads_and_matches_fp32(shared, lfw):
    raw = load_embedder(shared / "models/sface/face_recognition_sface_2021dec_int8bq.onnx", threads=2)
    fp32 = load_embedder(shared / "models/sface/sface_2021dec_fp32.onnx", threads=2)
    assert raw.input_spec == fp32.input_spec  # both known by hash: RGB 0..255
    images = np.stack([lfw.images[i].image for i in range(32)])
    cos = np.sum(raw.embed(images) * fp32.embed(images), axis=1)
    assert cos.min() > 0.99999


def test_mobilefacenet_reference_accuracy(student, lfw):
    m = evaluate(student, lfw, batch_size=128, progress=False).metrics
    assert m.accuracy == pytest.approx(0.9890, abs=0.001)


def test_bin_round_trip_reproduces_folder_accuracy(student, lfw_root, tmp_path):
    folder = load_verification_set(lfw_root, "9-10")  # two folds: the round trip, at a fifth of the cost
    write_verification_bin(tmp_path / "lfw_9_10.bin", folder)
    # a .bin has no folds: 2 contiguous splits of these 1200 pairs are exactly LFW folds 9 and 10
    from_bin = read_verification_bin(tmp_path / "lfw_9_10.bin", num_folds=2)
    assert from_bin.issame.tolist() == folder.issame.tolist()
    a = evaluate(student, folder, batch_size=128, progress=False).metrics
    b = evaluate(student, from_bin, batch_size=128, progress=False).metrics
    assert a.num_folds == b.num_folds == 2
    assert b.fold_accuracies == a.fold_accuracies
    assert a.accuracy > 0.98
