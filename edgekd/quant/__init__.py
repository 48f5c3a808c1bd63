"""Quantization stage: target specs → PT2E quantizers → QAT/PTQ prepare → freeze → convert.

>>> from edgekd.quant import load_target, prepare, convert  # doctest: +SKIP
>>> spec = load_target("onnx")
>>> qat_model = prepare(student, spec, example_input())  # train it, then
>>> int8_reference = convert(qat_model, spec)
"""

import logging

# torchao logs a warning per missing CUDA kernel library on import, and torch one about an Enum it
# registers: noise on a CPU machine, not actionable for users.
logging.getLogger("torchao").setLevel(logging.ERROR)
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

from edgekd.quant.qat import (  # noqa: E402
    calibrate,
    convert,
    example_input,
    export_model,
    freeze,
    prepare,
    set_mode,
    strip_fake_quant,
)
from edgekd.quant.quantizers import build_quantizer  # noqa: E402
from edgekd.quant.spec import TargetSpec, list_targets, load_target, target_from_dict  # noqa: E402

__all__ = [
    "TargetSpec",
    "build_quantizer",
    "calibrate",
    "convert",
    "example_input",
    "export_model",
    "freeze",
    "list_targets",
    "load_target",
    "prepare",
    "set_mode",
    "strip_fake_quant",
    "target_from_dict",
]
