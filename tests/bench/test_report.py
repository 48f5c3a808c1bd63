"""Reports from the JSON form of a run: labels say what is measured and what is estimated."""

from __future__ import annotations

import json

import pytest

from edgekd.bench import report
from edgekd.errors import DataError


def fake_run(where: str = "local", p50: float = 10.0, accuracy: float | None = 0.95) -> dict:
    samples = [p50 - 1, p50, p50, p50 + 1, p50 + 5]
    return {
        "edgekd_bench": report.FORMAT_VERSION,
        "where": where,
        "measured_on": "Test CPU (x86_64, 2 logical cores)",
        "profile": {"name": "rpi4", "description": "Raspberry Pi 4", "threads": 4},
        "options": {"runs": 5, "seconds": None, "warmup": 2, "batch": 4},
        "pairs": {"name": "synthetic", "folds": "all", "num_pairs": 600, "num_folds": 10},
        "results": [
            {
                "name": "m.onnx",
                "precision": "fp32",
                "size_bytes": 2_000_000,
                "threads": 2,
                "runtime": {
                    "runtime": "onnxruntime",
                    "version": "1.31.1",
                    "providers": ["CPUExecutionProvider"],
                },
                "load_ms": 120.0,
                "first_ms": 30.0,
                "latency": {
                    "runs": 5,
                    "min_ms": p50 - 1,
                    "mean_ms": p50 + 1,
                    "std_ms": 2.0,
                    "p50_ms": p50,
                    "p90_ms": p50 + 3.4,
                    "p99_ms": p50 + 4.8,
                    "max_ms": p50 + 5,
                },
                "samples_ms": samples,
                "throughput": {"batch": 4, "images_per_s": 123.4},
                "memory": {"peak_rss_mb": 88.0},
                "accuracy": {"metrics": {"accuracy": accuracy, "accuracy_std": 0.01}} if accuracy else None,
                "estimate": {"latency_ms": 42.0},
                "estimates_by_profile": {"rpi4": 42.0, "x86": 3.1, "jetson-nano": 9.0},
                "estimate_units": {"rpi4": "cpu", "x86": "cpu", "jetson-nano": "gpu"},
                "notes": ["a note"],
            }
        ],
        "notes": ["this host is not a rpi4 device"],
    }


def test_markdown_labels_measured_and_estimated():
    md = report.markdown(fake_run())
    assert md.startswith("**measured on Test CPU (x86_64, 2 logical cores)**")
    assert "**estimate** = roofline for profile `rpi4`" in md and "not a measurement" in md
    assert (
        "| m.onnx | fp32 | 2.00 | 120 | 30.0 | 10.0 | 13.4 | 14.8 | 11.0 ± 2.00 | 9.00 / 15.0 | 123.4 | 88 |"
        in md
    )
    assert "95.00 ± 1.00 | - | 42.0 |" in md  # no golden faces: no parity column value
    assert "| artifact | jetson-nano (gpu) | rpi4 | x86 |" in md  # estimates on every profile
    assert "| m.onnx | 9.00 | 42.0 | 3.10 |" in md
    assert "- m.onnx: a note" in md and "- this host is not a rpi4 device" in md


def test_json_round_trip_and_rejects_other_files(tmp_path):
    path = report.write_json(fake_run(), tmp_path / "out" / "r.json")
    assert report.read_json(path) == fake_run()
    (tmp_path / "e.json").write_text(json.dumps({"results": []}))
    with pytest.raises(DataError, match="not an edgekd bench result"):
        report.read_json(tmp_path / "e.json")
    with pytest.raises(DataError, match="not found"):
        report.read_json(tmp_path / "missing.json")


def test_plots_are_pngs_even_without_accuracy(tmp_path):
    runs = [fake_run(), fake_run("ssh pi@pi", p50=40.0), fake_run("ssh x", accuracy=None)]
    paths = report.write_report(runs, tmp_path / "rep.md", "body")
    assert [p.name for p in paths] == ["rep.md", "rep_latency.png", "rep_accuracy.png"]
    for png in paths[1:]:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_compare_relates_p50_to_the_first_run():
    table = report.compare([fake_run(), fake_run("ssh pi@pi", p50=40.0)], ["x86.json", "pi.json"])
    assert "| x86.json | local | rpi4 | m.onnx | fp32 | 10.0 |" in table and "| 1.00× |" in table
    assert "| pi.json | ssh pi@pi | rpi4 | m.onnx | fp32 | 40.0 |" in table and "| 4.00× |" in table
