"""Device profiles: the declarative ``targets/profiles/<name>.yaml`` files, read into frozen dataclasses.

A profile says what a device is (CPU cores, ISA features, an optional GPU), how to run on it (threads,
preferred runtimes and execution providers, in order) and its peak compute and memory bandwidth (each
number's source is a comment in the file), which the roofline estimate (:mod:`edgekd.bench.roofline`)
turns into a latency for users without the device. A new device is one new YAML file.

>>> load_profile("rpi4").cpu.fp32_gops  # doctest: +SKIP
48.0
>>> list_profiles()  # doctest: +SKIP
['jetson-nano', 'jetson-orin-nano', 'rpi4', 'rpi5', 'x86', 'x86-vnni']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from edgekd.config import from_dict, read_yaml
from edgekd.errors import ConfigError
from edgekd.isa import isa_from_flags
from edgekd.paths import resolve_yaml, targets_dir, yaml_names

# Fraction of peak ops that XNNPACK-class CPU kernels reach, fitted on published Raspberry Pi 4 numbers
# (docs/profiles.md, ``python -m edgekd.bench.calibration``). Profiles may override them per unit.
CPU_FP32_EFFICIENCY = 0.31
CPU_INT8_EFFICIENCY = 0.52

# ORT execution providers that need the profile's GPU
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


@dataclass(frozen=True, kw_only=True)
class ComputeUnit:
    """Peaks of one compute unit (a CPU cluster or a GPU), in the units the roofline uses.

    ``*_gops`` are 1e9 operations per second with one multiply-accumulate = 2 operations;
    ``overhead_us`` is the fixed cost of executing one op (dispatch, thread wake-up, kernel launch).
    """

    model: str
    fp32_gops: float
    int8_gops: float
    memory_gbs: float
    overhead_us: float
    fp32_efficiency: float = CPU_FP32_EFFICIENCY
    int8_efficiency: float = CPU_INT8_EFFICIENCY

    def __post_init__(self) -> None:
        for key in ("fp32_gops", "int8_gops", "memory_gbs"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.overhead_us < 0:
            raise ConfigError(f"overhead_us must be >= 0, got {self.overhead_us}")
        for key in ("fp32_efficiency", "int8_efficiency"):
            if not 0 < getattr(self, key) <= 1:
                raise ConfigError(f"{key} must be in (0, 1], got {getattr(self, key)}")


@dataclass(frozen=True, kw_only=True)
class CpuUnit(ComputeUnit):
    """The CPU: ``isa`` uses /proc/cpuinfo flag names (``asimddp`` = Arm dot product, ``avx512_vnni``)."""

    arch: Literal["arm64", "x86_64"]
    cores: int
    frequency_ghz: float
    isa: tuple[str, ...] = ()
    qemu_cpu: str | None = None  # QEMU's model of this core, for `edgekd bench --emulate`

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cores < 1 or self.frequency_ghz <= 0:
            raise ConfigError(
                f"cores must be >= 1 and frequency_ghz > 0, got {self.cores}, {self.frequency_ghz}"
            )

    @property
    def int8_isa(self) -> str:
        """The deployment ISA that decides how int8 products accumulate here (:mod:`edgekd.isa`)."""
        return isa_from_flags(self.arch, self.isa)


@dataclass(frozen=True, kw_only=True)
class GpuUnit(ComputeUnit):
    """An integrated GPU (Jetson); its memory is the CPU's (unified LPDDR)."""

    fp32_efficiency: float = 0.5
    int8_efficiency: float = 0.5


@dataclass(frozen=True)
class RuntimeChoice:
    """One way to run on the device. ``providers`` are ONNX Runtime execution providers in preference
    order, ``delegate`` a TFLite delegate, ``device`` an OpenVINO device; ``unit`` is where it computes.
    ``fp32_efficiency``/``int8_efficiency`` override the unit's for this runtime where its kernels were
    measured to differ (on x86 without VNNI XNNPACK's int8 is no faster than its fp32)."""

    runtime: Literal["tflite", "onnxruntime", "openvino"]
    unit: Literal["cpu", "gpu"] = "cpu"
    providers: tuple[str, ...] = ()
    delegate: str | None = None
    device: str | None = None
    fp32_efficiency: float | None = None
    int8_efficiency: float | None = None

    def __post_init__(self) -> None:
        for key in ("fp32_efficiency", "int8_efficiency"):
            value = getattr(self, key)
            if value is not None and not 0 < value <= 1:
                raise ConfigError(f"{self.runtime}: {key} must be in (0, 1], got {value}")


@dataclass(frozen=True)
class Profile:
    """A device: facts, run settings and peaks. ``runtimes`` is in preference order."""

    name: str
    description: str
    threads: int
    cpu: CpuUnit
    runtimes: tuple[RuntimeChoice, ...]
    memory: str = ""
    gpu: GpuUnit | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= self.cpu.cores:
            raise ConfigError(
                f"threads must be between 1 and cpu.cores ({self.cpu.cores}), got {self.threads}"
            )
        if not self.runtimes:
            raise ConfigError("runtimes must list at least one runtime")
        for choice in self.runtimes:
            if choice.unit == "gpu" and self.gpu is None:
                raise ConfigError(f"runtime {choice.runtime} runs on 'gpu' but the profile has no gpu")
            needs_gpu = [p for p in choice.providers if p in GPU_PROVIDERS]
            if needs_gpu and self.gpu is None:
                raise ConfigError(f"providers {needs_gpu} need a GPU but the profile has no gpu")

    def runtime_for(self, runtime: str) -> RuntimeChoice | None:
        """The first preferred way to run ``runtime`` here, or ``None`` if the profile does not list it."""
        return next((c for c in self.runtimes if c.runtime == runtime), None)

    def unit(self, name: str) -> ComputeUnit:
        unit = self.gpu if name == "gpu" else self.cpu
        if unit is None:
            raise ConfigError(f"profile {self.name} has no {name}")
        return unit

    def unit_for(self, choice: RuntimeChoice) -> ComputeUnit:
        """The unit ``choice`` computes on, with that runtime's measured efficiencies where given."""
        overrides = {
            key: getattr(choice, key)
            for key in ("fp32_efficiency", "int8_efficiency")
            if getattr(choice, key) is not None
        }
        return replace(self.unit(choice.unit), **overrides)

    def int8_not_faster(self, runtime: str) -> str | None:
        """A plain sentence when ``runtime``'s int8 kernels here compute no faster than its fp32 ones."""
        choice = self.runtime_for(runtime)
        if choice is None:
            return None
        unit = self.unit_for(choice)
        int8, fp32 = unit.int8_gops * unit.int8_efficiency, unit.fp32_gops * unit.fp32_efficiency
        if int8 > 1.1 * fp32:
            return None
        return (
            f"on {self.name}, {runtime}'s int8 kernels are not faster than its float ones "
            f"({int8:.0f} vs {fp32:.0f} effective Gop/s in this profile, from measurements): an int8 "
            "artifact saves memory here, not time"
        )


def profiles_dir() -> Path:
    return targets_dir() / "profiles"


def list_profiles(root: Path | None = None) -> list[str]:
    """Names of the profiles shipped in ``targets/profiles`` (file stems), sorted."""
    return yaml_names(root or profiles_dir())


def load_profile(ref: str | Path) -> Profile:
    """A profile by name (``rpi4``) or by path to a YAML file; unknown names list the known ones."""
    path = resolve_yaml("profile", ref, profiles_dir())
    profile = from_dict(Profile, read_yaml(path), source=str(path))
    if profile.name != path.stem:
        raise ConfigError(f'profile name "{profile.name}" must match its file name ({path})')
    return profile
