"""Validated configuration: YAML + command-line overrides → frozen dataclasses.

Validation happens once, here. Unknown keys are rejected with the file, the dotted key path and a
close-match suggestion; values are checked against the field's type (``Literal`` choices are listed).
After this, code only sees typed objects.

>>> cfg = load_config(EvalConfig, "eval.yaml", overrides=["flip=true"])  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from edgekd.errors import ConfigError, did_you_mean

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """``edgekd eval``: which models, which pairs, how."""

    model: tuple[str, ...] = ()
    pairs: str = "synthetic"
    folds: str | None = None
    flip: bool = False
    threads: int | None = None
    batch_size: int = 64
    preprocess: Literal["raw255", "arcface", "imagenet"] | None = None
    arch: str | None = None
    device: str = "cpu"  # PyTorch models only: cpu, cuda, cuda:N, auto
    json: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


def _where(source: str, path: str) -> str:
    return f'({source}, key "{path}")' if path else f"({source})"


def _convert(value: Any, tp: Any, source: str, path: str) -> Any:
    """Check/convert ``value`` to type ``tp``; raise ConfigError naming ``path`` when it cannot."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, source, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"bad value {value!r} {_where(source, path)}")
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            hint = did_you_mean(str(value), [str(a) for a in args])
            raise ConfigError(f"bad value {value!r} {_where(source, path)}; allowed: {allowed}.{hint}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, path)
    if origin in (tuple, list):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            value = [value] if origin is tuple and args and args[-1] is Ellipsis else value
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list {_where(source, path)}, got {value!r}")
        item_types = [args[0]] * len(value) if (not args or args[-1] is Ellipsis) else list(args)
        if len(item_types) != len(value):
            raise ConfigError(f"expected {len(item_types)} values {_where(source, path)}, got {len(value)}")
        items = [
            _convert(v, t, source, f"{path}[{i}]")
            for i, (v, t) in enumerate(zip(value, item_types, strict=True))
        ]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping {_where(source, path)}, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true/false {_where(source, path)}, got {value!r}")
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, str) and isinstance(value, tp) and not isinstance(value, bool):
        return value
    raise ConfigError(f"expected {getattr(tp, '__name__', tp)} {_where(source, path)}, got {value!r}")


def from_dict(cls: type[T], data: Any, source: str = "<config>", path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping {_where(source, path)}, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            dotted = f"{path}.{key}" if path else str(key)
            raise ConfigError(
                f'unknown key "{dotted}" ({source}); allowed: {", ".join(sorted(fields))}.'
                f"{did_you_mean(str(key), fields)}"
            )
    kwargs = {k: _convert(v, hints[k], source, f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({source})") from None


def to_dict(obj: Any) -> Any:
    """Dataclass → plain dict/list (tuples as lists) for YAML/JSON round trips."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: typing.Iterable[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML: ``true``, ``3``, ``[1, 2]``)."""
    out = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad override {item!r}: use key=value (e.g. flip=true)")
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node[p] = dict(node.get(p) or {})
            node = node[p]
        node[leaf] = yaml.safe_load(raw)
    return out


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: typing.Iterable[str] = (),
    **values: Any,
) -> T:
    """Config = YAML file ← ``key=value`` overrides ← explicit ``values`` (``None`` = not given)."""
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    data.update({k: v for k, v in values.items() if v is not None and v != ()})
    return from_dict(cls, data, source=str(path) if path else "command line")
