"""Compatibility shim: litert-torch 0.10's PT2EQuantizer on torch 2.13.

litert-torch hands its conv-bn pattern *functions* to torchao's ``_get_aten_graph_module_for_pattern``,
which exports them with ``torch.export.export``; torch 2.13 only exports ``nn.Module`` s, so QAT prepare
fails with "Expected `mod` to be an instance of `torch.nn.Module`, got <class 'function'>". torchao's
own patterns are wrapped in ``WrapperModule``; the shim does the same for litert's, in litert's module
namespace only (site-packages are not edited). Idempotent.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torchao.quantization.pt2e.export_utils import WrapperModule

_PATCHED = "_edgekd_wraps_functions"


def _wrap_patterns(original: Any) -> Any:
    @functools.wraps(original)
    def patched(pattern: Any, example_inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(pattern, torch.nn.Module):
            pattern = WrapperModule(pattern)
        return original(pattern, example_inputs, *args, **kwargs)

    setattr(patched, _PATCHED, True)
    return patched


def apply() -> None:
    """Patch ``litert_torch.quantize.pt2e_quantizer_utils`` (raises ImportError without litert-torch)."""
    from litert_torch.quantize import pt2e_quantizer_utils as utils

    current = utils._get_aten_graph_module_for_pattern
    if not getattr(current, _PATCHED, False):
        utils._get_aten_graph_module_for_pattern = _wrap_patterns(current)
