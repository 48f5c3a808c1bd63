"""``edgekd convert`` end to end on a tiny QAT checkpoint: artifact, checks, manifest, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.bench.emulation import can_emulate
from edgekd.config import load_config
from edgekd.convert.images import face_images
from edgekd.convert.pipeline import convert_checkpoint
from edgekd.convert.weight_range import artifact_weight_bound
from edgekd.errors import ConfigError, ConversionError, ModelError
from edgekd.isa import MAX_EXACT_WEIGHT
from edgekd.models import create_model, default_preprocess
from edgekd.paths import shared_dir
from edgekd.runtime import load_embedder
from edgekd.train.config import DistillConfig
from edgekd.train.trainer import Distiller
from tests.helpers import make_lfw, tiny_onnx

# The benchmark student's architecture (ReLU6, conv head). A 16-channel toy MobileFaceNet was tried and
# dropped: ORT's basic graph optimizations move its embeddings to cosine 0.99 of the PT2E model (0.9998
# with optimizations off); see docs/convert.md.
ARCH = "mobilefacenet_ms1m"


def _pretrained(root: Path) -> Path:
    """The pretrained student when ../shared has it (parity is only meaningful on a trained network: a
    random one amplifies every rounding difference), else random weights with BN statistics re-estimated
    on synthetic faces (enough for everything but the parity thresholds)."""
    shared = shared_dir()
    weights = shared / "models/mobilefacenet/mobilefacenet_ms1m.pt" if shared else None
    if weights is not None and weights.is_file():
        return weights
    torch.manual_seed(0)
    model = create_model(ARCH)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average
    x = torch.from_numpy(default_preprocess(ARCH).apply(face_images(None, 64)))
    model.train()
    with torch.no_grad():
        for batch in x.split(16):
            model(batch)
    torch.save(model.state_dict(), root / "student.pt")
    return root / "student.pt"


def _train(root: Path, target: str | None) -> Path:
    teacher = tiny_onnx(root / "t.onnx", np.random.default_rng(0).normal(size=(3, 16)))
    cfg = load_config(
        DistillConfig,
        None,
        [],
        student=ARCH,
        student_init=str(_pretrained(root)),
        teacher=str(teacher),
        teacher_preprocess="raw255",
        losses=["cosface", {"name": "l2", "weight": 10.0, "params": {"projection": True}}],
        steps=2,
        batch_size=8,
        synthetic_identities=8,
        out=str(root / "run"),
        cache_dir=str(root / "cache"),
        qat={"target": target},
        threads=1,
    )
    return Distiller(cfg, progress=False).run().last_checkpoint


@pytest.fixture(scope="module")
def qat_ckpt(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("qat"), "onnx")


def test_qat_checkpoint_converts_to_a_fused_int8_onnx_that_matches(qat_ckpt, tmp_path):
    result = convert_checkpoint(qat_ckpt, out=tmp_path, num_parity=16, threads=1)
    assert result.passed and result.mode == "qat"
    # against the converted model in ORT's integer arithmetic: the same numbers, not merely close
    assert "onnxruntime-mlas-x86" in result.parity.reference
    assert result.parity.mean_cosine >= 0.99999 and result.parity.min_cosine >= 0.9999
    # the float32 converted model is reported beside it (the floor), and is not the enforced reference
    assert result.parity_float is not None and result.parity_float.reference == "pytorch-qat-float32"
    assert result.int8.share == 1.0  # every conv/FC MAC in QLinearConv/QGemm
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["target"] == "onnx" and manifest["artifact"] == "model.onnx"
    assert manifest["embedding_size"] == 128 and manifest["parity"]["passed"]
    assert manifest["extra"]["parity_vs_float_simulation"]["num_images"] == 16
    assert len(manifest["source_sha256"]) == 64 and manifest["tool_versions"]["onnxruntime"]
    # 7-bit weights: exact on every ISA, so this host (VNNI or not) computes the deployment arithmetic
    assert manifest["extra"]["deployment_isas"] == ["x86-avx2", "x86-vnni", "arm64"]
    assert manifest["extra"]["host_isa"] in manifest["extra"]["deployment_isas"]
    assert manifest["extra"]["parity_vs_deployment_arithmetic"] is None
    embedder = load_embedder(result.artifact)  # the artifact is an ordinary edgekd model
    faces = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    assert embedder.embed(faces).shape == (3, 128)


def test_converting_for_another_target_is_refused(qat_ckpt, tmp_path):
    with pytest.raises(ConversionError, match="trained with QAT for target 'onnx', not 'openvino'"):
        convert_checkpoint(qat_ckpt, "openvino", out=tmp_path)


def test_float_checkpoint_needs_ptq_or_float(tmp_path):
    ckpt = _train(tmp_path, None)
    with pytest.raises(ConversionError, match=r"float checkpoint.*--ptq --calib"):
        convert_checkpoint(ckpt, "onnx", out=tmp_path / "x")
    with pytest.raises(ConversionError, match="--ptq needs --calib"):
        convert_checkpoint(ckpt, "onnx", out=tmp_path / "x", ptq=True)
    # PTQ follows the target's weight rule with ORT's own option (reduce_range), and the deployment ISAs
    # come from the weights the tool wrote, not from the spec
    calib = make_lfw(tmp_path / "calib", "1\t1", [], {"a": 8, "b": 8})
    isas = {}
    for target in ("onnx", "onnx-vnni"):
        result = convert_checkpoint(
            ckpt, target, tmp_path / target, ptq=True, calib=calib, num_calib=16, num_parity=4, threads=1
        )
        isas[target] = set(result.deployment_isas)
        bound = artifact_weight_bound(result.artifact)
        assert (bound <= MAX_EXACT_WEIGHT) == (target == "onnx")
    assert isas == {"onnx": {"x86-avx2", "x86-vnni", "arm64"}, "onnx-vnni": {"x86-vnni", "arm64"}}


def test_missing_checkpoint(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        convert_checkpoint(tmp_path / "nope.pt", "onnx")


def _flip_one_weight_byte(artifact: Path) -> None:
    """Flip the sign bit of the largest int8 weight of the stem conv, in place, one byte of the file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(artifact))
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    weight = numpy_helper.to_array(int8[0])
    raw = weight.tobytes()
    data = bytearray(artifact.read_bytes())
    start = bytes(data).find(raw)
    assert start >= 0 and bytes(data).find(raw, start + 1) < 0  # the weight's bytes, once in the file
    data[start + int(np.abs(weight.astype(int)).argmax())] ^= 0x80
    artifact.write_bytes(bytes(data))


def test_bench_checks_the_hash_and_the_golden_faces_where_it_runs(qat_ckpt, tmp_path):
    """convert ships golden faces + the deployment arithmetic's embeddings + sha256; bench runs them on
    the device: parity holds there, and a one-byte change is caught by the hash, and without the hash
    check by parity, with a non-zero exit unless --allow-mismatch."""
    from click.testing import CliRunner

    from edgekd.bench import bench
    from edgekd.cli import main
    from edgekd.runtime.known import file_sha256

    result = convert_checkpoint(qat_ckpt, out=tmp_path, num_parity=40, threads=1)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artifact_sha256"] == {"model.onnx": file_sha256(result.artifact)}
    assert (
        manifest["golden"]["num_images"] == 32 and "onnxruntime-mlas-x86" in manifest["golden"]["reference"]
    )
    run = bench([str(result.artifact)], "x86", runs=3, batch=1)
    parity = run.results[0]["device_parity"]
    assert parity["passed"] and parity["mean_cosine"] >= 0.9999 and run.failures == []

    _flip_one_weight_byte(result.artifact)
    hashed, parity = bench([str(result.artifact)], "x86", runs=3, batch=1).failures
    assert "sha256 of model.onnx differs from manifest.json" in hashed
    assert "does not compute the network convert checked" in parity
    unchecked = bench([str(result.artifact)], "x86", runs=3, batch=1, skip_hash=True)
    assert not unchecked.results[0]["device_parity"]["passed"]
    assert len(unchecked.failures) == 1 and "parity on this host" in unchecked.failures[0]

    args = ["bench", "-a", str(result.artifact), "--profile", "x86", "--runs", "3", "-b", "1"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "FAILED checks" in res.output and "--allow-mismatch" in res.output
    assert CliRunner().invoke(main, [*args, "--allow-mismatch"]).exit_code == 0

    # a golden file the manifest lists but the folder lacks: an error naming it and the way around it
    (tmp_path / "golden_embeddings.npy").unlink()
    with pytest.raises(ConfigError, match=r"golden file missing: .*golden_embeddings.npy.*--no-golden"):
        bench([str(result.artifact)], "x86", runs=3, batch=1)
    assert (
        bench([str(result.artifact)], "x86", runs=3, batch=1, no_golden=True, skip_hash=True).failures == []
    )


@pytest.mark.slow  # ~1.5 min: two runs of MobileFaceNet under QEMU
@pytest.mark.skipif(not can_emulate("arm64"), reason="emulated ARM64 device not built: make arm64-device")
def test_emulated_pi4_computes_the_golden_faces_and_a_changed_byte_breaks_parity(qat_ckpt, tmp_path):
    """The artifact on a Pi 4's ARM kernels (QEMU cortex-a72, onnxruntime aarch64): the golden faces
    give the embeddings convert recorded on this x86 host; a one-byte change is caught there too."""
    from edgekd.bench import bench

    result = convert_checkpoint(qat_ckpt, out=tmp_path, num_parity=32, threads=1)
    run = bench([str(result.artifact)], "rpi4", emulate=True)
    (res,) = run.results
    assert res["emulated"] and run.failures == [] and run.where == "emulated arm64 (cortex-a72)"
    assert res["device_parity"]["mean_cosine"] >= 0.999 and res["device_parity"]["min_cosine"] >= 0.99
    _flip_one_weight_byte(result.artifact)
    (failure,) = bench([str(result.artifact)], "rpi4", emulate=True, skip_hash=True).failures
    assert "parity on emulated arm64 (cortex-a72)" in failure


@pytest.mark.slow  # ~3 min: a litert-torch conversion and a run of MobileFaceNet's TFLite under QEMU
@pytest.mark.skipif(not can_emulate("arm64"), reason="emulated ARM64 device not built: make arm64-device")
def test_emulated_pi4_runs_a_tflite_artifact_through_bench(tmp_path):
    """A QAT tflite checkpoint converted (in a child process: litert-torch loads JAX, whose threads make
    later forks in pytest unsafe) and benched on the emulated Pi 4's XNNPACK: golden parity ≥ 0.999."""
    import subprocess
    import sys

    from edgekd.bench import bench

    (tmp_path / "train").mkdir()
    ckpt = _train(tmp_path / "train", "tflite")
    out = tmp_path / "tfl"
    args = [
        sys.executable,
        "-m",
        "edgekd",
        "convert",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "-t",
        "1",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = bench([str(out / "model.tflite")], "rpi4", emulate=True)
    (res,) = run.results
    assert res["emulated"] and run.failures == [], run.failures
    assert res["device_parity"]["mean_cosine"] >= 0.999 and res["device_parity"]["min_cosine"] >= 0.99
    assert res["estimate"]["latency_ms"] > 0  # the roofline read the .tflite's own op list
