"""Distillation and margin losses: one lazy registry, validated specs, one weighted objective.

A run lists its terms in the config; extra keys of an entry are the term's options::

    losses:
      - {name: arcface}
      - {name: gkd, weight: 1.0, T: 4, tau: 0.93, ramp_steps: 2000}

:class:`LossSpec` checks each entry against the term's ``__init__`` signature when the config is read;
:func:`build_objective` builds the terms (passing the dimensions they need) into a :class:`WeightedSum`.
Importing this package imports no loss module and not even torch.

>>> specs = parse_losses([{"name": "arcface"}, {"name": "kd", "weight": 0.5, "T": 4}])
>>> objective = build_objective(specs, 128, num_classes=1000, teacher_dim=512)  # doctest: +SKIP
>>> total, logs = objective(student, teacher, labels, step)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin, get_type_hints

from edgekd.errors import ConfigError, did_you_mean, unknown_name
from edgekd.registry import Registry

if TYPE_CHECKING:
    from edgekd.losses.objective import WeightedSum, build_objective

__all__ = [
    "INJECTED",
    "REGISTRY",
    "LossSpec",
    "WeightedSum",
    "build_objective",
    "list_losses",
    "parse_losses",
]

REGISTRY = Registry(
    "loss",
    {
        "arcface": "edgekd.losses.margin:ArcFaceLoss",
        "cosface": "edgekd.losses.margin:CosFaceLoss",
        "kd": "edgekd.losses.hinton_kd:HintonKD",
        "gkd": "edgekd.losses.gkd:GroupedKD",
        "l2": "edgekd.losses.feature_l2:FeatureL2",
        "fc": "edgekd.losses.feature_consistency:FeatureConsistency",
        "iled": "edgekd.losses.iled:ILED",
        "rpsd": "edgekd.losses.rpsd:RPSD",
        "cakd": "edgekd.losses.cakd:CAKD",
    },
    error=ConfigError,
)

# Constructor arguments that build_objective fills from the models; a config may not set them.
INJECTED = ("embedding_size", "num_classes", "student_dim", "teacher_dim")


def list_losses() -> list[str]:
    """Registered loss names, sorted.

    >>> list_losses()[:3]
    ['arcface', 'cakd', 'cosface']
    """
    return sorted(REGISTRY)


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """One term of the objective: registry ``name``, ``weight`` in the sum, ``params`` for its constructor.

    Validated on creation: unknown names and options raise ConfigError with the allowed ones and a
    close-match suggestion.

    >>> LossSpec("gkd", weight=1.0, params={"T": 4, "tau": 0.93}).params["tau"]
    0.93
    """

    name: str
    weight: float = 1.0
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in REGISTRY:
            raise ConfigError(unknown_name("loss", self.name, REGISTRY))
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float):
            raise ConfigError(f"loss '{self.name}': weight must be a number, got {self.weight!r}")
        if not math.isfinite(self.weight) or self.weight < 0:
            raise ConfigError(f"loss '{self.name}': weight must be finite and >= 0, got {self.weight}")
        object.__setattr__(self, "weight", float(self.weight))
        object.__setattr__(self, "params", dict(self.params))
        _check_params(self.name, self.params)

    @classmethod
    def from_dict(cls, data: Any, source: str = "<config>", path: str = "") -> LossSpec:
        """Read a config entry ``{name, weight?, params?, **options}``: keys other than ``name``,
        ``weight`` and ``params`` are the term's options. Errors name ``source`` and the key ``path``."""
        where = f'({source}, key "{path}")' if path else f"({source})"
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a mapping with a 'name' {where}, got {data!r}")
        if "name" not in data:
            raise ConfigError(f"loss entry has no 'name' {where}; known losses: {', '.join(list_losses())}")
        nested = data.get("params", {})
        if not isinstance(nested, Mapping):
            raise ConfigError(f"'params' must be a mapping {where}, got {nested!r}")
        flat = {k: v for k, v in data.items() if k not in ("name", "weight", "params")}
        both = sorted(set(flat) & set(nested))
        if both:
            raise ConfigError(f"loss option(s) {both} given both inline and under 'params' {where}")
        try:
            return cls(str(data["name"]), data.get("weight", 1.0), {**nested, **flat})
        except ConfigError as exc:
            raise ConfigError(f"{exc} {where}") from None

    def to_dict(self) -> dict[str, Any]:
        """The flat config form, ``{name, weight, **params}`` (``from_dict`` reads it back)."""
        return {"name": self.name, "weight": self.weight, **self.params}


def parse_losses(items: Any, source: str = "<config>", path: str = "losses") -> tuple[LossSpec, ...]:
    """A config's ``losses:`` list → validated specs (entries may be a bare name: ``[arcface, kd]``)."""
    if isinstance(items, str | Mapping) or not isinstance(items, Sequence):
        raise ConfigError(f'expected a list of losses ({source}, key "{path}"), got {items!r}')
    return tuple(
        LossSpec.from_dict({"name": item} if isinstance(item, str) else item, source, f"{path}[{i}]")
        for i, item in enumerate(items)
    )


def _check_params(name: str, params: Mapping[str, Any]) -> None:
    """Every key must be a constructor option of the term, with a value of the annotated type."""
    term = REGISTRY.resolve(name)
    options = [p for p in inspect.signature(term).parameters if p not in INJECTED]
    hints = get_type_hints(term.__init__)
    for key, value in params.items():
        if key in INJECTED:
            raise ConfigError(f"loss '{name}': '{key}' is set by build_objective from the models; remove it")
        if key not in options:
            raise ConfigError(
                f"loss '{name}' has no option '{key}'; options: {', '.join(options) or 'none'}."
                f"{did_you_mean(key, options)}"
            )
        if key in hints and not _matches(value, hints[key]):
            choices = [str(a) for a in _literals(hints[key])]
            raise ConfigError(
                f"loss '{name}': option '{key}' expects {_describe(hints[key])}, got {value!r}."
                f"{did_you_mean(str(value), choices) if choices else ''}"
            )


def _matches(value: Any, tp: Any) -> bool:
    """Whether a config value fits a constructor annotation (bool, int, float, str, Literal, unions)."""
    origin = get_origin(tp)
    if tp is Any:
        return True
    if tp is type(None):
        return value is None
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if tp is bool:
        return isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp in (int, str):
        return isinstance(value, tp) and not isinstance(value, bool)
    return isinstance(value, origin or tp)


def _literals(tp: Any) -> list[Any]:
    """The allowed values of a ``Literal`` annotation (also inside ``X | None``), else ``[]``."""
    if get_origin(tp) is Literal:
        return list(get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return [v for arg in get_args(tp) for v in _literals(arg)]
    return []


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def __getattr__(name: str) -> Any:
    # WeightedSum and build_objective need torch: import them on first use, not with the package.
    if name in ("WeightedSum", "build_objective"):
        from edgekd.losses import objective

        return getattr(objective, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
