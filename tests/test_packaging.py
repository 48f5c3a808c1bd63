"""The wheel's package list is explicit (to map targets/ into it): it must name every edgekd package."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_and_the_targets_ship_in_the_wheel():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "edgekd").rglob("__init__.py")}
    assert on_disk <= set(setuptools["packages"]), (
        f"add to pyproject: {sorted(on_disk - set(setuptools['packages']))}"
    )
    assert setuptools["package-dir"]["edgekd.targets"] == "targets"
    assert {p.stem for p in (REPO / "targets").glob("*.yaml")} == {
        "onnx",
        "onnx-vnni",
        "openvino",
        "openvino-vnni",
        "tflite",
    }
