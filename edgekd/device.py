"""Where a PyTorch model runs (``distill``, ``distill-qat``, ``eval``): ``--device cpu|cuda|cuda:N|auto``,
resolved once, with a clear error when absent.

Under torchrun each rank takes ``cuda:LOCAL_RANK`` for ``cuda``/``auto``, and the process group uses
NCCL on GPUs and gloo on CPUs (:func:`edgekd.distributed.init_from_env`).
"""

from __future__ import annotations

import os

import torch

from edgekd.errors import ConfigError


def resolve_device(spec: str) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available, else the CPU; ``cuda``: this rank's GPU (an
    error without one); ``cuda:N``: that GPU; ``cpu``: the CPU."""
    spec = spec.strip().lower()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {spec!r}: this torch build or machine has no CUDA device "
                f"(torch {torch.__version__}); use --device cpu, or auto to take a GPU only when present"
            )
        index = local if spec == "cuda" else _index(spec)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    raise ConfigError(f"unknown device {spec!r}; allowed: cpu, cuda, cuda:N, auto")


def _index(spec: str) -> int:
    try:
        return int(spec.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"bad device {spec!r}: cuda:N takes a GPU number, e.g. cuda:0") from None
