"""Quantization stage: target specs → PT2E quantizers → QAT/PTQ prepare → freeze → convert.

>>> from edgekd.quant import load_target, prepare, convert  # doctest: +SKIP
>>> spec = load_target("onnx")
>>> qat_model = prepare(student, spec, example_input())  # train it, then
>>> int8_reference = convert(qat_model, spec)
"""

from edgekd.quant.qat import calibrate, convert, example_input, export_model, freeze, prepare, set_mode
from edgekd.quant.quantizers import build_quantizer
from edgekd.quant.spec import TargetSpec, list_targets, load_target, target_from_dict

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
    "target_from_dict",
]
