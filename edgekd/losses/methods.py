"""Named KD recipes (``edgekd distill --method NAME``): a margin loss plus the method's KD terms.

The weights are the ones compared in ``benchmarks/kd_methods.py`` (same budget for every method).
Instance-level terms learn a projection: a student's embedding space is not the teacher's.

``cakd`` (cross-architecture KD, weight as in ``benchmarks/cakd.py``) reads teacher *tokens*, so it needs
a PyTorch ViT teacher run online (``--teacher vit.pt --teacher-arch vit_face_tiny``); its channel options
are filled in by the trainer from the teacher and the tapped student map.
"""

from __future__ import annotations

from edgekd.errors import ConfigError, unknown_name
from edgekd.losses import LossSpec

MARGIN = LossSpec("cosface")
_PROJ = {"projection": True}
_ILED = LossSpec("iled", 50.0, {**_PROJ, "mode": "power", "anneal_steps": 300})
_RPSD = LossSpec("rpsd", 5.0, {**_PROJ, "bank_size": 4096})

METHODS: dict[str, tuple[LossSpec, ...]] = {
    "none": (),
    "kd": (LossSpec("kd", 1.0, {"T": 4.0}),),
    "gkd": (LossSpec("gkd", 1.0, {"T": 4.0, "tau": 0.93, "ramp_steps": 100}),),
    "l2": (LossSpec("l2", 50.0, _PROJ),),
    "fc": (LossSpec("fc", 50.0, _PROJ),),
    "iled": (_ILED,),
    "rpsd": (_RPSD,),
    "iled+rpsd": (_ILED, _RPSD),
    "cakd": (LossSpec("cakd", 5.0, {"num_centres": 16, "gamma": 1.0}),),
}


def method_losses(name: str) -> tuple[LossSpec, ...]:
    """The margin loss followed by method ``name``'s KD terms."""
    if name not in METHODS:
        raise ConfigError(unknown_name("method", name, METHODS))
    return (MARGIN, *METHODS[name])


def as_config(specs: tuple[LossSpec, ...]) -> list[dict]:
    """Specs in the config's ``losses:`` form."""
    return [{"name": s.name, "weight": s.weight, "params": dict(s.params)} for s in specs]
