"""The device runner: self-contained, same preprocessing as edgekd, exit statuses a host can act on."""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekd.bench import bundle, runner_script
from edgekd.bench.runner_script import decode_embeddings, preprocess, run_job
from edgekd.data.preprocess import PRESETS, PreprocessSpec
from edgekd.errors import ModelError, UnsupportedTargetError
from edgekd.runtime import load_embedder

ALLOWED = {
    "__future__",
    "argparse",
    "base64",
    "hashlib",
    "importlib",
    "json",
    "math",
    "os",
    "platform",
    "sys",
    "time",
    "pathlib",
    "collections",
    "dataclasses",
    "resource",
    "numpy",
    "onnxruntime",
    "latency",
    "memory",
}


@pytest.mark.parametrize("name", [*bundle.BUNDLE, "device_ort.py"])
def test_bundle_files_import_nothing_but_stdlib_numpy_and_the_runtime(name):
    tree = ast.parse((bundle.HERE / name).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED, f"{name} imports {imported - ALLOWED}: devices have no edgekd/torch"


@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_preprocessing_is_edgekds(preset, order):
    spec = PreprocessSpec(**{**PRESETS[preset].to_dict(), "channel_order": order})
    images = np.random.default_rng(3).integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess(images, spec.to_dict()), spec.apply(images))


def _job(tiny: Path, **extra) -> dict:
    return {
        "artifact": str(tiny),
        "backend": "device_ort",
        "threads": 1,
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "warmup": 1,
        "runs": 5,
        "seconds": None,
        "batch": 3,
        "input": PreprocessSpec.preset("arcface").to_dict(),
        **extra,
    }


def test_runs_as_a_file_without_edgekd_or_torch(tiny, tmp_path):
    """The bundle in a bare folder, with edgekd and torch made unimportable: it still measures and embeds."""
    folder = tmp_path / "device"
    folder.mkdir()
    runner = bundle.write_bundle(folder, "device_ort")
    images = np.random.default_rng(0).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    np.save(folder / "images.npy", images)
    (folder / "model.onnx").write_bytes(tiny.read_bytes())
    np.save(folder / "golden.npy", images[:3])
    job = _job(Path("model.onnx"), images="images.npy", embed_batch=2, golden="golden.npy")
    (folder / "job.json").write_text(json.dumps({**job, "hash": {"tiny.onnx": "model.onnx"}}))
    blocker = (
        "import sys, runpy; sys.modules['edgekd'] = None; sys.modules['torch'] = None; "
        f"sys.path.insert(0, {str(folder)!r}); sys.argv = ['runner_script.py', '--config', "
        f"{str(folder / 'job.json')!r}, '--out', {str(folder / 'out.json')!r}]; "
        f"runpy.run_path({str(runner)!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((folder / "out.json").read_text())
    assert result["latency"]["runs"] == 5 and len(result["samples_ms"]) == 5
    assert result["throughput"]["batch"] == 3 and result["throughput"]["images_per_s"] > 0
    assert result["runtime"]["providers"] == ["CPUExecutionProvider"]
    assert result["runtime"]["providers_missing"] == ["CUDAExecutionProvider"]
    assert result["memory"]["peak_rss_mb"] >= result["memory"]["rss_start_mb"] > 0
    # golden faces embedded like the pairs' images, and the file hashed as the device holds it
    golden = decode_embeddings(result["golden_embeddings"])
    np.testing.assert_array_equal(golden, decode_embeddings(result["embeddings"])[:3])
    assert result["sha256"] == {"tiny.onnx": hashlib.sha256(tiny.read_bytes()).hexdigest()}
    expected = load_embedder(tiny, preprocess="arcface").embed(images, normalize=False)
    np.testing.assert_allclose(decode_embeddings(result["embeddings"]), expected, rtol=1e-5, atol=1e-6)


def test_static_batch_is_split_and_padded(tmp_path):
    from tests.helpers import tiny_onnx

    model = tiny_onnx(tmp_path / "b2.onnx", np.eye(3, 4, dtype=np.float32), batch=2)
    images = np.random.default_rng(1).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    result = run_job(_job(model, images="images.npy", embed_batch=5), tmp_path)
    assert result["max_batch"] == 2
    expected = load_embedder(model, preprocess="arcface").embed(images, normalize=False)
    np.testing.assert_allclose(decode_embeddings(result["embeddings"]), expected, rtol=1e-5, atol=1e-6)


def test_exit_statuses_map_to_typed_errors(tiny, tmp_path, monkeypatch):
    (tmp_path / "needs_missing_runtime.py").write_text("import edgekd_no_such_runtime\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    job = tmp_path / "job.json"
    out = tmp_path / "out.json"
    job.write_text(json.dumps(_job(tiny, backend="needs_missing_runtime")))
    assert runner_script.main(["--config", str(job), "--out", str(out)]) == bundle.EXIT_RUNTIME_MISSING
    with pytest.raises(UnsupportedTargetError, match=r"edgekd_no_such_runtime.*Install it there"):
        bundle.runner_outcome(
            3,
            "runtime not installed here: No module named 'edgekd_no_such_runtime'",
            out,
            "pi@pi",
            "onnxruntime",
        )
    job.write_text(json.dumps(_job(tmp_path / "missing.onnx")))
    assert runner_script.main(["--config", str(job), "--out", str(out)]) == bundle.EXIT_BAD_INPUT
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    job.write_text(json.dumps(_job(tmp_path / "garbage.onnx")))
    assert runner_script.main(["--config", str(job), "--out", str(out)]) == bundle.EXIT_BAD_INPUT
    with pytest.raises(ModelError, match="rejected the job on this host: JobError: cannot load"):
        bundle.runner_outcome(4, "JobError: cannot load garbage.onnx: ...", out, "this host", "onnxruntime")


def test_runner_reports_the_same_cpu_facts_as_edgekd_info():
    from edgekd.bench.runner_script import CPU_FLAGS, host_facts
    from edgekd.info import CPU_FLAGS as INFO_FLAGS
    from edgekd.info import cpu_info

    assert CPU_FLAGS == INFO_FLAGS
    facts, info = host_facts(), cpu_info()
    assert facts["features"] == info["features"]
    assert facts["logical_cores"] == info["logical_cores"]
