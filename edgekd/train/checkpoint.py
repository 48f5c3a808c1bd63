"""Checkpoints: written atomically, read without unpickling code, and turned back into a student.

A checkpoint holds the model (float weights, or the prepared QAT graph's parameters, fake-quant scales
and BN statistics), the objective (margin heads, projections, memory banks), optimizer and scheduler
state, the step, torch's RNG state, the config and the target spec. A QAT student is rebuilt by
exporting and preparing the same architecture again (deterministic) and loading the state into it.
A student trained with a feature loss (``cakd``) was a :class:`~edgekd.models.taps.FeatureTap`; its tap
layers are stored (``taps``) so the same wrapper, hence the same graph and state_dict keys, is rebuilt,
then reduced to the embedding output. The APT prompts are stored (``apt``) for resume only.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.errors import ModelError

FORMAT = "edgekd-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` via a temporary file + rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's contents (``weights_only``); ModelError for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # truncated zip, bad pickle, refused global: all "not a usable checkpoint"
        raise ModelError(
            f"{path} is not a readable edgekd checkpoint (corrupt or truncated?): {exc}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ModelError(
            f"{path} is not an edgekd checkpoint (no '{FORMAT}' marker); for plain weights use --student"
        )
    if ckpt.get("version") != VERSION:
        raise ModelError(
            f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {VERSION})"
        )
    missing = [k for k in ("model", "config", "step", "arch") if k not in ckpt]
    if missing:
        raise ModelError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt


@dataclass
class LoadedStudent:
    """A student rebuilt from a checkpoint: ``model`` is eager (float) or the prepared QAT graph."""

    model: nn.Module
    arch: str
    target: Any  # TargetSpec | None
    step: int
    config: dict[str, Any]
    metrics: dict[str, Any]


def load_student(path: str | os.PathLike[str]) -> LoadedStudent:
    """Rebuild the trained student of a checkpoint, in eval mode (``edgekd convert``/``eval`` use this)."""
    from edgekd.models import create_model
    from edgekd.models.taps import FeatureTap, drop_tapped_outputs
    from edgekd.quant import example_input, prepare, set_mode, target_from_dict

    ckpt = read_checkpoint(path)
    model = create_model(ckpt["arch"], **ckpt.get("arch_kwargs", {}))
    taps = ckpt.get("taps")
    if taps:  # trained as FeatureTap(student, taps) (feature losses): same module tree, same QAT graph
        model = FeatureTap(model, taps)
    target = target_from_dict(ckpt["target"], source=f"{path} (target)") if ckpt.get("target") else None
    if target is not None:
        model = prepare(model, target, example_input(batch=2), fold_bn=bool(ckpt.get("fold_bn", False)))
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit architecture {ckpt['arch']}: {exc}") from None
    if taps:  # consumers (convert, eval) want forward(x) -> (N, D): drop the tapped maps
        model = drop_tapped_outputs(model) if target is not None else model.model
    set_mode(model, train=False)
    if target is not None:
        from edgekd.quant.qat import freeze

        freeze(model, observers=True)  # a loaded QAT model is for inference: scales stay as trained
    return LoadedStudent(
        model, ckpt["arch"], target, int(ckpt["step"]), ckpt["config"], ckpt.get("metrics", {})
    )
