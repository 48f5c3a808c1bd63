"""``edgekd bench`` end to end on a tiny model, and every bad input → ``error: ...``, exit 2, no traceback."""

from __future__ import annotations

import dataclasses
import json
import socket

import pytest
from click.testing import CliRunner

from edgekd.bench import BenchOptions, bench
from edgekd.cli import main
from edgekd.config import from_dict
from edgekd.data import load_verification_set
from edgekd.errors import ConfigError
from edgekd.eval import evaluate
from edgekd.formats.onnx import FORMAT as ONNX
from edgekd.runtime import load_embedder


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_local_bench_reuses_the_eval_protocol(tiny):
    run = bench([str(tiny)], "rpi5", pairs="synthetic", folds="6-10", runs=8, warmup=1, batch=4)
    (res,) = run.results
    vset = load_verification_set("synthetic", "6-10")
    expected = evaluate(load_embedder(tiny), vset, progress=False).to_dict()["metrics"]
    assert res["accuracy"]["metrics"] == expected
    assert run.pairs["num_folds"] == 5
    assert res["latency"]["runs"] == 8 and len(res["samples_ms"]) == 8
    assert res["load_ms"] > 0 and res["first_ms"] > 0 and res["memory"]["peak_rss_mb"] > 0
    assert res["size_bytes"] == tiny.stat().st_size and res["precision"] == "fp32"
    assert set(res["estimates_by_profile"]) == {
        "jetson-nano",
        "jetson-orin-nano",
        "rpi4",
        "rpi5",
        "x86",
        "x86-vnni",
    }
    assert res["estimate"]["images_per_s_at_batch"] > 0
    assert run.where == "local" and run.measured_on.startswith(res["host"]["cpu"])
    assert any("not a rpi5 device" in n for n in run.notes)


def test_cli_writes_table_json_report_and_compares(runner, tiny, tmp_path):
    out, rep = tmp_path / "r.json", tmp_path / "rep" / "r.md"
    args = ["bench", "-a", str(tiny), "--profile", "x86", "-p", "synthetic", "--seconds", "0.05"]
    res = runner.invoke(main, [*args, "--warmup", "0", "-b", "2", "--json", str(out), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    assert "measured on" in res.output and "estimate" in res.output and "| tiny.onnx |" in res.output
    assert "next: " in res.output
    data = json.loads(out.read_text())
    assert data["profile"]["name"] == "x86" and data["options"]["seconds"] == 0.05
    assert data["results"][0]["accuracy"]["metrics"]["num_pairs"] == 600
    for png in ("r_latency.png", "r_accuracy.png"):
        assert (rep.parent / png).read_bytes()[:4] == b"\x89PNG"
    assert "![latency](r_latency.png)" in rep.read_text()
    res = runner.invoke(main, ["bench", "--compare", str(out), str(out), "--report", str(tmp_path / "c.md")])
    assert res.exit_code == 0, res.output
    assert res.output.count("| tiny.onnx |") == 2 and "1.00×" in res.output
    assert (tmp_path / "c_accuracy.png").is_file()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--profile", "rpi"], "unknown profile 'rpi'; known: jetson-nano, jetson-orin-nano, rpi4"),
        (["--profile", "rpi4b"], "Did you mean 'rpi4'?"),
        (["--profile", "x86", "--runs", "3", "--seconds", "1"], "give --runs or --seconds, not both"),
        (["--profile", "x86", "--batch", "0"], "--batch >= 1"),
        (["--profile", "x86", "--remote", "-oProxyCommand=x"], "bad --remote"),
        (["--profile", "x86", "-p", "/nonexistent/lfw"], "pairs source not found"),
    ],
)
def test_bad_input_exits_2_without_traceback(runner, tiny, extra, message):
    runs = [] if "--runs" in extra else ["--runs", "1"]
    res = runner.invoke(main, ["bench", "-a", str(tiny), *runs, *extra])
    assert res.exit_code == 2, res.output
    assert "error: " in res.output and message in res.output
    assert "Traceback" not in res.output


def test_missing_and_unsupported_artifacts(runner, tmp_path):
    res = runner.invoke(main, ["bench", "-a", str(tmp_path / "nope.onnx"), "--profile", "x86"])
    assert res.exit_code == 2 and "error: artifact not found" in res.output
    other = tmp_path / "m.mlmodel"
    other.write_bytes(b"core ml")
    res = runner.invoke(main, ["bench", "-a", str(other), "--profile", "x86"])
    known = "known: .onnx, .xml, .tflite"
    assert res.exit_code == 2 and f"no benchmark runner for '.mlmodel' files; {known}" in res.output
    broken = tmp_path / "m.tflite"  # a format bench knows, a file it cannot open: named, no traceback
    broken.write_bytes(b"TFL3")
    res = runner.invoke(main, ["bench", "-a", str(broken), "--profile", "x86", "--preprocess", "arcface"])
    assert res.exit_code == 2 and "m.tflite" in res.output and "Traceback" not in res.output


def test_runtime_missing_on_this_host(runner, tmp_path, monkeypatch):
    """A format whose runtime is not installed here: named, with what to do instead."""
    import edgekd.formats

    missing = dataclasses.replace(
        ONNX, name="fake", suffix=".fake", module="edgekd_no_such_runtime", aliases=()
    )
    real = edgekd.formats.formats()
    monkeypatch.setattr(edgekd.formats, "formats", lambda: [*real, missing])
    model = tmp_path / "m.fake"
    model.write_bytes(b"x")
    res = runner.invoke(main, ["bench", "-a", str(model), "--profile", "x86"])
    assert res.exit_code == 2, res.output
    assert (
        "error: edgekd_no_such_runtime (needed to run .fake artifacts) is not installed on this host"
        in res.output
    )
    assert "--remote USER@HOST" in res.output


def test_unreachable_host_exits_2(runner, tiny, tmp_path):
    from tests.bench.test_remote import _skip_unless_tools

    _skip_unless_tools()
    port = _closed_port()
    res = runner.invoke(
        main,
        [
            "bench",
            "-a",
            str(tiny),
            "--profile",
            "x86",
            "--runs",
            "1",
            "--remote",
            f"root@127.0.0.1:{port}",
            "--known-hosts",
            str(tmp_path / "kh"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert f"error: cannot create a work folder on root@127.0.0.1:{port} over SSH" in res.output
    assert "Connection refused" in res.output and "Traceback" not in res.output


def test_compare_needs_result_files(runner, tmp_path):
    res = runner.invoke(main, ["bench", "--compare"])
    assert res.exit_code == 2 and "at least one result file" in res.output
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    res = runner.invoke(main, ["bench", "--compare", str(bad)])
    assert res.exit_code == 2 and "not an edgekd bench result" in res.output
    res = runner.invoke(main, ["bench", str(bad)])
    assert res.exit_code == 2 and "--compare" in res.output


def test_options_are_validated_once():
    with pytest.raises(ConfigError, match='unknown key "run"'):
        from_dict(BenchOptions, {"artifacts": ["a"], "profile": "x86", "run": 3})
    with pytest.raises(ConfigError, match="no artifact given"):
        BenchOptions(artifacts=(), profile="x86")


def test_bench_says_when_int8_was_not_faster_than_float():
    from edgekd.bench import _int8_speed_notes

    def row(name, precision, p50, fmt="onnx"):
        return {"name": name, "format": fmt, "precision": precision, "latency": {"p50_ms": p50}}

    slow = [row("f.onnx", "fp32", 8.0), row("q.onnx", "int8", 8.5), row("q.tflite", "int8", 1.0, "tflite")]
    (note,) = _int8_speed_notes(slow)
    assert "int8 q.onnx is not faster than float f.onnx" in note and "×0.94" in note
    assert _int8_speed_notes([row("f.onnx", "fp32", 8.0), row("q.onnx", "int8", 5.6)]) == []
    assert _int8_speed_notes([row("q.onnx", "int8", 5.6)]) == []  # nothing to compare with


def test_bench_runs_a_foreign_nhwc_model_described_on_the_command_line(tmp_path):
    import numpy as np

    from tests.helpers import tiny_onnx

    path = tiny_onnx(tmp_path / "nhwc.onnx", np.eye(3, 4, dtype=np.float32), nhwc=True, batch=2)
    args = ["bench", "-a", str(path), "--profile", "rpi4", "--preprocess", "mean=127.5,std=128,order=BGR"]
    res = CliRunner().invoke(main, [*args, "-p", "synthetic", "--runs", "3", "-b", "2"])
    assert res.exit_code == 0, res.output
    assert "nhwc.onnx" in res.output and "static batch 2" in res.output  # the fixed batch, said
