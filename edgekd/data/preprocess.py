"""Declarative preprocessing: how a model wants its pixels.

Every model, checkpoint and artifact carries a :class:`PreprocessSpec`, so normalisation is read, not
guessed. Mean and std are in 0..255 pixel units of the spec's channel order: ``x' = (x - mean) / std``.
Presets cover the field's conventions:

=========  ============================  ======================================
name       formula                       used by
=========  ============================  ======================================
raw255     x                             SFace ONNX (normalises inside)
arcface    (x - 127.5) / 127.5           insightface models (mbf, IResNet)
imagenet   (x/255 - mean_in) / std_in    foamliu MobileFaceNet (mobilefacenet_ms1m)
=========  ============================  ======================================

On the command line (``--preprocess``) a preset takes overrides, and a foreign model can be described
without one: ``arcface,order=BGR``, ``mean=127.5,std=128,layout=NHWC`` (:meth:`PreprocessSpec.parse`).
Runtimes take the layout from the model's input shape where it is unambiguous
(:meth:`PreprocessSpec.with_input_shape`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np

from edgekd.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class PreprocessSpec:
    """Input contract of a face model. Images come in as ``(N, H, W, 3)`` uint8 RGB."""

    size: tuple[int, int] = (112, 112)  # (height, width)
    channel_order: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ConfigError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ConfigError(f"size must be (height, width) > 0, got {self.size!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"mean/std need 3 values and std > 0, got {self.mean}, {self.std}")
        # Normalise sequences from YAML/JSON into tuples so specs compare and hash equal.
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def apply(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 RGB → float32 batch in this spec's order, layout and scale."""
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected (N, H, W, 3) images, got shape {images.shape}")
        if tuple(images.shape[1:3]) != self.size:
            raise ValueError(f"expected {self.size[0]}x{self.size[1]} images, got {images.shape[1:3]}")
        x = images.astype(np.float32)
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(
                f"unknown preprocessing key(s) {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**data)

    @classmethod
    def preset(cls, name: str) -> PreprocessSpec:
        if name not in PRESETS:
            raise ConfigError(unknown_name("preprocessing preset", name, PRESETS))
        return PRESETS[name]

    @classmethod
    def parse(cls, text: str) -> PreprocessSpec:
        """A preset, a preset with overrides, or overrides of ``arcface``, as users type them:
        ``arcface``, ``arcface,order=BGR,layout=NHWC``, ``mean=127.5,std=128``,
        ``mean=123.7/116.3/103.5,std=58.4/57.1/57.4,size=112x96``."""
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise ConfigError(
                "empty preprocessing spec: give a preset (raw255, arcface, imagenet) or key=value"
            )
        base = cls.preset(parts.pop(0)) if "=" not in parts[0] else PRESETS["arcface"]
        changes: dict[str, Any] = {}
        for part in parts:
            key, sep, value = part.partition("=")
            key = _KEY_ALIASES.get(key.strip().lower(), key.strip().lower())
            if not sep or key not in _PARSERS:
                raise ConfigError(
                    f"bad preprocessing item {part!r}: use a preset first, then key=value with key in "
                    f"{', '.join(sorted(_PARSERS))} (e.g. arcface,order=BGR,layout=NHWC)"
                )
            try:
                changes[key] = _PARSERS[key](value.strip())
            except ValueError as exc:
                raise ConfigError(f"bad preprocessing value {part!r}: {exc}") from None
        return replace(base, **changes)

    def with_input_shape(self, shape: Sequence[object]) -> PreprocessSpec:
        """This spec with the layout the model's 4-D input shape says (``(N, 3, H, W)`` → NCHW,
        ``(N, H, W, 3)`` → NHWC); unchanged when the shape doesn't tell (symbolic or 3x3)."""
        if len(shape) != 4:
            return self
        nchw, nhwc = shape[1] == 3, shape[3] == 3
        if nchw == nhwc:
            return self
        return replace(self, layout="NCHW" if nchw else "NHWC")


_IMAGENET_MEAN = tuple(255.0 * m for m in (0.485, 0.456, 0.406))
_IMAGENET_STD = tuple(255.0 * s for s in (0.229, 0.224, 0.225))


def _three(value: str) -> tuple[float, float, float]:
    values = [float(v) for v in value.split("/")]
    if len(values) not in (1, 3):
        raise ValueError("give one value or three separated by '/'")
    return (values[0],) * 3 if len(values) == 1 else tuple(values)  # type: ignore[return-value]


def _size(value: str) -> tuple[int, int]:
    h, sep, w = value.lower().partition("x")
    if not sep:
        raise ValueError("size is HEIGHTxWIDTH, e.g. 112x112")
    return int(h), int(w)


_PARSERS = {
    "mean": _three,
    "std": _three,
    "channel_order": str.upper,
    "layout": str.upper,
    "size": _size,
}
_KEY_ALIASES = {"order": "channel_order"}

PRESETS: dict[str, PreprocessSpec] = {
    "raw255": PreprocessSpec(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
    "arcface": PreprocessSpec(),
    "imagenet": PreprocessSpec(mean=_IMAGENET_MEAN, std=_IMAGENET_STD),  # type: ignore[arg-type]
}
