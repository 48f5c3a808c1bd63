"""Where edgekd finds optional local resources (the ``shared/`` folder of real data and models)."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path | None:
    """``$EDGEKD_SHARED`` if set, else ``../shared`` from the working directory; ``None`` if absent."""
    env = os.environ.get("EDGEKD_SHARED")
    candidate = Path(env) if env else Path.cwd().parent / "shared"
    return candidate if candidate.is_dir() else None


def targets_dir() -> Path:
    """The declarative ``targets/`` folder (target specs, ``profiles/``).

    In a source checkout (editable install) it is the repository's top-level ``targets/``; wheels ship
    the same files as package data under ``edgekd/targets``.
    """
    packaged = Path(__file__).resolve().parent / "targets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "targets"


def yaml_names(root: Path) -> list[str]:
    """Stems of the ``*.yaml`` files in ``root``, sorted (``[]`` when it does not exist)."""
    return sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []


def resolve_yaml(kind: str, ref: str | Path, root: Path) -> Path:
    """A declarative file by name (a stem in ``root``) or by path to a YAML file.

    Unknown names list the known ones; used for target specs and device profiles alike.
    """
    from edgekd.errors import UnsupportedTargetError, unknown_name

    path = Path(ref)
    if path.suffix not in (".yaml", ".yml"):
        known = yaml_names(root)
        if str(ref) not in known:
            raise UnsupportedTargetError(unknown_name(kind, str(ref), known))
        return root / f"{ref}.yaml"
    if not path.is_file():
        raise UnsupportedTargetError(f"{kind} file not found: {path}")
    return path
