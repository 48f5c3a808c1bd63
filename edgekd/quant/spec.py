"""Target specs: the declarative ``targets/<name>.yaml`` files that say how a runtime computes in int8.

One file per runtime (``onnx``, ``openvino``, ``tflite``). It fixes the integer arithmetic the fake
quantization must mirror (weight and activation schemes, ranges), the PT2E quantizer that annotates the
graph, the I/O dtypes and how the converter is driven. The quantizers (:mod:`edgekd.quant.quantizers`)
and the converters read it; a user can pass their own file instead of a name.

>>> load_target("onnx").activations.dtype  # doctest: +SKIP
'uint8'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgekd import isa as isas
from edgekd.config import from_dict, read_yaml, to_dict
from edgekd.errors import ConfigError
from edgekd.paths import resolve_yaml, targets_dir, yaml_names

DTYPE_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclass(frozen=True, kw_only=True)
class QScheme:
    """One quantizer: integer dtype and range, and per-tensor/per-channel, symmetric/affine."""

    dtype: Literal["int8", "uint8"]
    qscheme: Literal["per_tensor_affine", "per_tensor_symmetric", "per_channel_symmetric"]
    quant_min: int
    quant_max: int
    ch_axis: int = 0

    def __post_init__(self) -> None:
        lo, hi = DTYPE_RANGES[self.dtype]
        if not lo <= self.quant_min < self.quant_max <= hi:
            raise ConfigError(
                f"{self.dtype} range must lie in [{lo}, {hi}] with quant_min < quant_max, "
                f"got [{self.quant_min}, {self.quant_max}]"
            )
        if self.qscheme.endswith("symmetric") and self.dtype != "int8":
            raise ConfigError(f"symmetric {self.qscheme} needs int8, got {self.dtype}")

    @property
    def per_channel(self) -> bool:
        return self.qscheme.startswith("per_channel")


@dataclass(frozen=True, kw_only=True)
class PReLUScheme:
    """How PReLU is quantized: output/input with the activation scheme, the slope ``alpha`` with its own."""

    quantize: bool = True
    alpha: QScheme | None = None


@dataclass(frozen=True, kw_only=True)
class ConverterSpec:
    """How ``edgekd convert`` produces and checks the artifact."""

    tool: Literal["torch.onnx", "openvino", "litert-torch"]
    fold_quantize: bool
    suffix: str
    opset: int | None = None
    input_dtype: Literal["float32", "int8", "uint8"] = "float32"
    output_dtype: Literal["float32", "int8", "uint8"] = "float32"
    min_int8_mac_share: float = 1.0
    # What parity compares the artifact with: the converted PT2E model in float32 ("float"), or the same
    # graph in the runtime's own integer arithmetic (edgekd.quant.runtime_arithmetic), bit-exact.
    reference: Literal["float", "onnxruntime-mlas-x86", "litert-xnnpack-x86", "openvino-cpu-x86"] = "float"

    def __post_init__(self) -> None:
        if not 0 <= self.min_int8_mac_share <= 1:
            raise ConfigError(f"min_int8_mac_share must be in [0, 1], got {self.min_int8_mac_share}")


@dataclass(frozen=True, kw_only=True)
class TargetSpec:
    """A runtime's int8 arithmetic, its PT2E quantizer and its converter (see ``targets/README.md``)."""

    name: str
    runtime: Literal["onnxruntime", "openvino", "litert"]
    description: str
    quantizer: Literal["edgekd", "x86_inductor", "litert"]
    weights: QScheme
    activations: QScheme
    prelu: PReLUScheme = field(default_factory=PReLUScheme)
    # dotted module-path prefixes kept in float (e.g. a head the runtime can't run in int8)
    keep_float: tuple[str, ...] = ()
    converter: ConverterSpec

    def __post_init__(self) -> None:
        if not self.weights.qscheme.endswith("symmetric"):
            raise ConfigError(f"weights must be symmetric (zero point 0), got {self.weights.qscheme}")
        if self.activations.per_channel:
            raise ConfigError("activations must be per-tensor")

    @property
    def weight_bound(self) -> int:
        """The largest weight magnitude the integer grid allows (63 for 7-bit, 127/128 for 8-bit)."""
        return max(-self.weights.quant_min, self.weights.quant_max)

    @property
    def exact_isas(self) -> tuple[str, ...]:
        """The deployment ISAs on which the artifact computes exactly what the integer twin computes:
        every ISA for 7-bit weights, not x86 without VNNI for 8-bit ORT/OpenVINO (:mod:`edgekd.isa`)."""
        return isas.exact_isas(self.runtime, self.weight_bound)

    def check_deployment(self, isa: str, device: str = "") -> None:
        """Refuse a deployment ISA whose int8 arithmetic differs from the one this spec trains for."""
        if isa in self.exact_isas:
            return
        where = f"{device} ({isa})" if device else isa
        portable = self.name.removesuffix("-vnni")
        raise ConfigError(
            f"target '{self.name}' has weights up to |w| = {self.weight_bound}: on {where} "
            f"{self.runtime} sums u8×s8 pairs in saturating int16, so the artifact would not compute the "
            f"network it was trained as (exact only on {', '.join(self.exact_isas)}). Use a target with "
            f"weights |w| ≤ {isas.MAX_EXACT_WEIGHT} (--target {portable}: 7-bit, exact on every ISA)"
        )

    def to_dict(self) -> dict:
        """Plain dict, stored in checkpoints and manifests so an artifact records the arithmetic it used."""
        return to_dict(self)


def list_targets(root: Path | None = None) -> list[str]:
    """Names of the target specs shipped in ``targets/`` (file stems), sorted."""
    return yaml_names(root or targets_dir())


def load_target(ref: str | Path) -> TargetSpec:
    """A target spec by name (``tflite``) or by path to a YAML file; unknown names list the known ones."""
    path = resolve_yaml("target", ref, targets_dir())
    return target_from_dict(read_yaml(path), source=str(path))


def target_from_dict(data: dict, source: str = "<target>") -> TargetSpec:
    """Validate a spec given as a dict (e.g. the copy stored in a checkpoint)."""
    return from_dict(TargetSpec, data, source=source)
