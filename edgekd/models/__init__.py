"""Face-embedding networks: one lazy registry of builders, checkpoint loading, architecture detection.

Every model takes ``(N, 3, 112, 112)`` float input (normalised as :func:`default_preprocess` says) and
returns ``(N, model.embedding_size)`` *unnormalised* embeddings. Importing this package imports no model
and not even torch: a builder's module is imported when its name is first used.

>>> from edgekd.models import create_model, default_preprocess
>>> model = create_model("mobilefacenet", embedding_size=128)
>>> model.embedding_size, default_preprocess("mobilefacenet_ms1m").mean[0]
(128, 123.675)
"""

from __future__ import annotations

import importlib
import inspect
import os
import pickle
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from edgekd.errors import ModelError, did_you_mean
from edgekd.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgekd.data.preprocess import PreprocessSpec

REGISTRY = Registry(
    "model",
    {
        "mobilefacenet": "edgekd.models.mobilefacenet:mobilefacenet",
        "mobilefacenet_large": "edgekd.models.mobilefacenet:mobilefacenet_large",
        "mobilefacenet_ms1m": "edgekd.models.mobilefacenet_ms1m:mobilefacenet_ms1m",
        "iresnet18": "edgekd.models.iresnet:iresnet18",
        "iresnet50": "edgekd.models.iresnet:iresnet50",
        "iresnet100": "edgekd.models.iresnet:iresnet100",
        "vit_face_tiny": "edgekd.models.vit:vit_face_tiny",
        "vit_face_small": "edgekd.models.vit:vit_face_small",
    },
    error=ModelError,
)

# Keys of a training checkpoint under which the model's state_dict may sit.
CHECKPOINT_KEYS = ("state_dict", "model")


def list_models() -> list[str]:
    """Registered model names, sorted.

    >>> "iresnet50" in list_models()
    True
    """
    return sorted(REGISTRY)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model with its builder's keyword options; unknown names/options raise ModelError.

    >>> create_model("vit_face_tiny", embedding_size=256).embedding_size
    256
    """
    builder = REGISTRY.resolve(name)
    options = inspect.signature(builder).parameters
    for key in kwargs:
        if key not in options:
            raise ModelError(
                f"model '{name}' has no option '{key}'; options: {', '.join(options) or 'none'}."
                f"{did_you_mean(key, options)}"
            )
    return builder(**kwargs)


def default_preprocess(name: str) -> PreprocessSpec:
    """The input normalisation the model was designed (or pretrained) for.

    >>> default_preprocess("iresnet50").mean
    (127.5, 127.5, 127.5)
    """
    from edgekd.data.preprocess import PreprocessSpec

    module = importlib.import_module(REGISTRY.resolve(name).__module__)
    return PreprocessSpec.preset(module.PREPROCESS_PRESET)


def detect_architecture(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The one registered model (default options) whose state_dict has exactly these keys and shapes.

    Models are built on the meta device, so this allocates no weights. No match raises ModelError naming
    the closest model and how its keys differ.

    >>> import torch
    >>> with torch.device("meta"):
    ...     sd = create_model("iresnet100").state_dict()
    >>> detect_architecture(sd)
    'iresnet100'
    """
    given = {key: tuple(value.shape) for key, value in state_dict.items()}
    diffs = {name: _compare_keys(given, _shape_signature(name)) for name in REGISTRY}
    matches = [name for name, diff in diffs.items() if not any(diff)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ModelError(f"state_dict matches several models: {', '.join(matches)}; pass the name explicitly")
    closest = min(diffs, key=lambda name: sum(map(len, diffs[name])))
    raise ModelError(_no_match_message(given, closest, *diffs[closest]))


@cache
def _shape_signature(name: str) -> Mapping[str, tuple[int, ...]]:
    """``{key: shape}`` of a default-built model, built on the meta device (no memory) and cached."""
    import torch

    with torch.device("meta"):
        model = create_model(name)
    return MappingProxyType({key: tuple(value.shape) for key, value in model.state_dict().items()})


def _compare_keys(
    given: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, keys whose shape differs), each in the expected/given order."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    mismatched = [key for key in expected if key in given and given[key] != expected[key]]
    return missing, unexpected, mismatched


def _no_match_message(
    given: Mapping[str, tuple[int, ...]],
    closest: str,
    missing: list[str],
    unexpected: list[str],
    mismatched: list[str],
) -> str:
    """Say how far the closest model is, with one example of each kind of difference and a likely cause."""
    expected = _shape_signature(closest)
    parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected", f"{len(mismatched)} of other shape"]
    examples = [f"missing '{missing[0]}'"] if missing else []
    examples += [f"unexpected '{unexpected[0]}'"] if unexpected else []
    if mismatched:
        key = mismatched[0]
        examples.append(f"'{key}' is {given[key]}, expected {expected[key]}")
    message = (
        f"state_dict ({len(given)} tensors) matches no known model; closest is '{closest}' "
        f"({len(expected)} tensors): {', '.join(parts)} ({'; '.join(examples)}). "
        f"Known models: {', '.join(list_models())}."
    )
    if given and all(key.startswith("module.") for key in given):
        message += " Every key starts with 'module.' (saved from DataParallel): strip that prefix."
    elif mismatched and not missing and not unexpected:
        message += f" Same layers, other sizes: build '{closest}' with other options (e.g. embedding_size)."
    return message


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state_dict (raw, or under ``"state_dict"``/``"model"`` in a checkpoint) without running code.

    ``weights_only=True`` refuses any pickle that would import or call something, so a malicious file
    raises ModelError instead of executing. Missing, unreadable or non-state_dict files raise ModelError.

    >>> import tempfile, torch
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     torch.save({"model": {"w": torch.ones(2)}}, f"{tmp}/ckpt.pt")
    ...     sorted(load_state_dict_file(f"{tmp}/ckpt.pt"))
    ['w']
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    obj = _torch_load(path)
    if isinstance(obj, dict):
        obj = next((obj[key] for key in CHECKPOINT_KEYS if isinstance(obj.get(key), dict)), obj)
    if not _is_state_dict(obj):
        raise ModelError(
            f"{path} is not a state_dict: expected a dict of tensors (or one under "
            f"{' or '.join(repr(k) for k in CHECKPOINT_KEYS)}), got {type(obj).__name__}"
            + (f" with keys {sorted(map(str, obj))[:5]}" if isinstance(obj, dict) else "")
        )
    return dict(obj)


def _torch_load(path: Path) -> Any:
    """``torch.load`` with weights_only, its many failure types turned into one ModelError naming the file."""
    import torch

    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise ModelError(
            f"refused to load {path}: it is not a plain tensor file ({_unpickling_reason(exc)}); "
            "model files are read with weights_only=True and may not import or call code"
        ) from None
    except Exception as exc:  # torch.load raises KeyError, EOFError, RuntimeError... for a corrupt file
        raise ModelError(f"{path} is not a readable PyTorch file: {type(exc).__name__}: {exc}") from None


def _unpickling_reason(exc: pickle.UnpicklingError) -> str:
    """The informative line of torch's long weights_only message (e.g. the blocked GLOBAL)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if "GLOBAL" in line or "Unsupported" in line or "Unpickler" in line]
    return (reasons or lines or ["unpickling failed"])[-1]


def _is_state_dict(obj: Any) -> bool:
    import torch

    return isinstance(obj, dict) and all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in obj.items()
    )
