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


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]


def test_pyproject_has_ranges_and_constraints_pin_a_set_inside_them():
    """Users get ranges (their own stack, Python 3.11-3.13); the tested set lives in constraints.txt."""
    from packaging.requirements import Requirement

    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pins[req.name.lower().replace("_", "-")] = str(next(iter(req.specifier)).version)
    for text in _requirements():
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert not any(s.operator == "==" for s in req.specifier), f"{text}: a range, not a pin"
        assert name in pins, f"{name} has no tested pin in constraints.txt"
        assert req.specifier.contains(pins[name]), f"constraints pin {name}=={pins[name]} outside {text}"
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    from packaging.specifiers import SpecifierSet

    assert all(v in SpecifierSet(python) for v in ("3.11", "3.12", "3.13"))


def test_setuptools_metadata_is_current():
    """No setuptools deprecation warnings on build: an SPDX license string and every shipped folder
    (configs/ holds YAML only) listed as a package."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert isinstance(pyproject["project"]["license"], str)
    packages = set(pyproject["tool"]["setuptools"]["packages"])
    shipped = {
        ".".join(p.parent.relative_to(REPO).parts)
        for pattern in ("*.py", "*.yaml")
        for p in (REPO / "edgekd").rglob(pattern)
        if "__pycache__" not in p.parts
    }
    assert shipped <= packages, f"add to pyproject: {sorted(shipped - packages)}"
