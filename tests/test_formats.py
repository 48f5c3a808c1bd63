"""One vocabulary: every name users type for a format resolves to the same format object."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekd.errors import UnsupportedTargetError
from edgekd.formats import formats, get_format, suffixes
from edgekd.quant.spec import list_targets, load_target


def test_names_aliases_suffixes_and_paths_resolve_to_one_format():
    assert [f.name for f in formats()] == ["onnx", "openvino", "tflite"]
    assert suffixes() == [".onnx", ".xml", ".tflite"]
    for key in ("tflite", "litert", ".tflite", "TFLite", Path("out/model.tflite"), "runs/a/model.tflite"):
        assert get_format(key).name == "tflite"
    for key in ("onnx", "onnxruntime", "ort", ".onnx", "onnx-vnni", "m.onnx"):
        assert get_format(key).name == "onnx"
    for key in ("openvino", "ov", "ir", ".xml", "openvino-vnni", "model.xml"):
        assert get_format(key).name == "openvino"


def test_every_target_spec_names_a_format_with_its_suffix():
    """A target's runtime and converter suffix agree with the format convert will write."""
    for name in list_targets():
        spec = load_target(name)
        fmt = get_format(spec.runtime)
        assert fmt.suffix == spec.converter.suffix, name
        assert get_format(name) is fmt


def test_every_format_has_its_device_runner_and_hooks():
    bench_dir = Path(__file__).resolve().parents[1] / "edgekd" / "bench"
    for fmt in formats():
        assert (bench_dir / f"{fmt.backend}.py").is_file(), fmt.name
        for hook in ("export", "ptq", "int8_share", "embedder", "prepare", "preprocess", "op_list"):
            assert callable(getattr(fmt, hook)), (fmt.name, hook)


def test_unknown_formats_are_named_with_a_suggestion():
    with pytest.raises(UnsupportedTargetError, match=r"known formats onnx, openvino, tflite.*tflite"):
        get_format("tflit")
    with pytest.raises(UnsupportedTargetError, match=r"files \.onnx, \.xml, \.tflite"):
        get_format("model.mlmodel")
