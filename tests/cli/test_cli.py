"""The command line: help, eval end to end on a tiny model, and errors without tracebacks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgekd.cli import main
from tests.helpers import tiny_onnx


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def model(tmp_path):
    rng = np.random.default_rng(0)
    return tiny_onnx(tmp_path / "tiny.onnx", rng.normal(size=(3, 8)).astype(np.float32))


def test_help_lists_commands_and_options(runner):
    out = runner.invoke(main, ["--help"]).output
    assert "eval" in out and "info" in out
    out = runner.invoke(main, ["eval", "--help"]).output
    for option in ("--model", "--pairs", "--folds", "--flip", "--threads", "--json", "--preprocess"):
        assert option in out


def test_eval_synthetic_writes_json(runner, model, tmp_path):
    out_json = tmp_path / "r.json"
    res = runner.invoke(
        main,
        [
            "eval",
            "-m",
            str(model),
            "--preprocess",
            "arcface",
            "-p",
            "synthetic",
            "--flip",
            "--no-progress",
            "--json",
            str(out_json),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "accuracy % (mean ± std)" in res.output and "| yes |" in res.output
    data = json.loads(out_json.read_text())
    metrics = data["results"][0]["metrics"]
    assert metrics["num_pairs"] == 600 and metrics["num_folds"] == 10
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert data["config"]["flip"] is True and "cpu" in data["host"]


def test_config_file_and_override(runner, model, tmp_path):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"model: {model}\npreprocess: raw255\npairs: synthetic\n")
    res = runner.invoke(main, ["eval", "-c", str(cfg), "-o", "folds=1-5", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "300 pairs, 5 folds" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "-m", "nowhere.onnx"], "error: model not found: nowhere.onnx"),
        (["eval", "-m", "{model}", "-p", "synthetic"], "--preprocess"),
        (["eval", "-m", "{model}", "--preprocess", "arcfce"], "Did you mean 'arcface'?"),
        (["eval", "-m", "{model}", "--preprocess", "raw255", "--folds", "x"], "bad fold selection"),
        (["eval", "-m", "{model}", "--preprocess", "raw255", "-p", "/no/such/dir"], "pairs source not found"),
        (["eval", "-m", "{model}", "-o", "modle=x"], "Did you mean 'model'?"),
    ],
)
def test_errors_are_clear(runner, model, args, message):
    res = runner.invoke(main, [a.replace("{model}", str(model)) for a in args])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_no_model_is_a_usage_error(runner):
    res = runner.invoke(main, ["eval"])
    assert res.exit_code == 2 and "no model given" in res.output


def test_info(runner):
    res = runner.invoke(main, ["info", "--json"])
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["packages"]["torch"].startswith("2.13.0")
    assert "CPUExecutionProvider" in info["runtimes"]["onnxruntime"]


def test_the_validation_line_says_what_the_number_means():
    from types import SimpleNamespace

    from edgekd.cli_train import _validation_line

    scratch = SimpleNamespace(val_pairs="synthetic", val_folds=None, student_init=None, steps=30)
    line = _validation_line(scratch, 50.0)
    assert "50.00 % on synthetic" in line and "chance is 50 %" in line and "expected near chance" in line
    lfw = SimpleNamespace(val_pairs="lfw112", val_folds="6-10", student_init="mobilefacenet_ms1m", steps=30)
    assert "near chance" not in _validation_line(lfw, 98.5) and "lfw112 folds 6-10" in _validation_line(
        lfw, 98.5
    )
