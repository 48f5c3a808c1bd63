"""The integer reference reproduces ONNX Runtime's int8 kernels exactly, where the float model can't."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgekd.bench.emulation import can_emulate
from edgekd.isa import X86_AVX2, X86_VNNI
from edgekd.models import create_model
from edgekd.quant import convert, example_input, load_target, prepare, set_mode
from edgekd.quant.integer_reference import (
    IntegerReference,
    OpenVinoCpuX86,
    OrtMlasX86,
    UnsupportedPattern,
    _Dequantized,
    _only_requantized,
    host_supports,
    parity_reference,
    unsupported_ops,
)
from edgekd.runtime.base import l2_normalize

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(not host_supports(OrtMlasX86.name), reason="MLAS x86 kernels only")


def _ort_qlinear_add(a, b, sa, za, sb, zb, sc, zc) -> np.ndarray:
    """ORT's own QLinearAdd (com.microsoft) on uint8 vectors."""
    names = ["A", "sA", "zA", "B", "sB", "zB", "sC", "zC"]
    node = helper.make_node("QLinearAdd", names, ["C"], domain="com.microsoft")
    n = len(a)
    consts = [
        helper.make_tensor("sA", TensorProto.FLOAT, [], [sa]),
        helper.make_tensor("zA", TensorProto.UINT8, [], [za]),
        helper.make_tensor("sB", TensorProto.FLOAT, [], [sb]),
        helper.make_tensor("zB", TensorProto.UINT8, [], [zb]),
        helper.make_tensor("sC", TensorProto.FLOAT, [], [sc]),
        helper.make_tensor("zC", TensorProto.UINT8, [], [zc]),
    ]
    io = [helper.make_tensor_value_info(k, TensorProto.UINT8, [n]) for k in ("A", "B", "C")]
    graph = helper.make_graph([node], "add", io[:2], io[2:], consts)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=9)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"A": a, "B": b})[0]


# (sA, zA, sB, zB, sC, zC): one taken from a trained MobileFaceNet's residual add, two arbitrary
@pytest.mark.parametrize(
    "qparams",
    [
        (0.07362362742424011, 137, 0.09793723374605179, 118, 0.11062607169151306, 132),
        (0.0123, 3, 0.05, 200, 0.031, 17),
        (0.5, 128, 0.25, 0, 0.4, 90),
    ],
)
def test_qlinear_add_matches_onnxruntime_on_every_input_pair(qparams):
    sa, za, sb, zb, sc, zc = qparams
    a = np.repeat(np.arange(256, dtype=np.uint8), 256)
    b = np.tile(np.arange(256, dtype=np.uint8), 256)
    expected = _ort_qlinear_add(a, b, *qparams)

    def deq(x, s, z):
        return _Dequantized(torch.from_numpy(x), torch.tensor(s, dtype=torch.float32), torch.tensor(z))

    ours = OrtMlasX86.add(deq(a, sa, za), deq(b, sb, zb), torch.tensor(sc, dtype=torch.float32), zc, 0, 255)
    assert np.array_equal(ours.numpy().astype(np.uint8), expected)  # all 65,536 pairs
    # the textbook formula round((sA(a-zA) + sB(b-zB)) / sC) + zC is *not* what ORT computes
    exact = np.rint((sa * (a.astype(np.float64) - za) + sb * (b.astype(np.float64) - zb)) / sc) + zc
    assert np.clip(exact, 0, 255).astype(np.uint8).tolist() != expected.tolist() or qparams[0] == 0.5


@functools.cache  # deterministic; the tests only read the graphs
def _converted_student(target: str, quantizer: str | None = None, trained_bn: bool = False):
    """A random MobileFaceNet (ReLU6 + residual adds) through QAT prepare → calibrate → convert.
    ``trained_bn``: random BatchNorm statistics, so that folded conv biases are non-zero as in a
    trained network (a fresh BN folds to zero biases, which OpenVINO's converter drops)."""
    torch.manual_seed(0)
    spec = load_target(target)
    if quantizer is not None:
        spec = dataclasses.replace(spec, quantizer=quantizer)
    model = create_model("mobilefacenet_ms1m")
    for m in model.modules() if trained_bn else ():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            if m.bias is not None:
                m.bias.data.normal_(0, 0.2)
    prepared = prepare(model, spec, example_input(), fold_bn=True)
    with torch.no_grad():
        for _ in range(3):
            prepared(torch.randn(4, 3, 112, 112).contiguous(memory_format=torch.channels_last))
    set_mode(prepared, train=False)
    return convert(prepared, spec), spec


def _converted_onnx_student(tmp_path):
    from edgekd.convert.exporters import export_onnx
    from edgekd.models import default_preprocess

    converted, spec = _converted_student("onnx")
    path = export_onnx(converted, spec, tmp_path / "m.onnx", default_preprocess("mobilefacenet_ms1m"))
    return converted, path


def test_integer_reference_is_bit_exact_with_fused_onnxruntime(tmp_path):
    converted, path = _converted_onnx_student(tmp_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx.load(str(path)).SerializeToString(), opts)
    x = torch.randn(4, 3, 112, 112)
    name = session.get_inputs()[0].name
    runtime = np.concatenate([session.run(None, {name: xi[None].numpy()})[0] for xi in x])
    integer = IntegerReference(converted, OrtMlasX86.name)(x).numpy()
    # every int8 value equal; only the final float BatchNorm could differ by evaluation order (~1e-7)
    np.testing.assert_allclose(integer, runtime, rtol=1e-5, atol=1e-5 * np.abs(runtime).max())


def test_float32_conv_is_skipped_only_where_nothing_reads_it():
    """The twin skips a conv's float32 computation when only (clamped) quantizes consume it; convs
    whose float output feeds another op (X86InductorQuantizer's graph: conv → residual add) keep it."""

    def convs(graph):
        return [n for n in graph.graph.nodes if n.target == torch.ops.aten.conv2d.default]

    onnx_graph, _ = _converted_student("onnx")
    assert all(_only_requantized(n) for n in convs(onnx_graph))
    x86_flags = [_only_requantized(n) for n in convs(_converted_student("openvino", "x86_inductor")[0])]
    assert any(x86_flags) and not all(x86_flags)


def test_parity_reference_kinds():
    graph = torch.fx.symbolic_trace(torch.nn.Identity())
    assert parity_reference(graph, "float") is graph
    assert isinstance(parity_reference(graph, OrtMlasX86.name), IntegerReference)
    with pytest.raises(ValueError, match="unknown integer arithmetic"):
        IntegerReference(graph, "tflite-magic")


def _litert_add_model(path, range_a: float, range_b: float):
    """A one-ADD full-integer TFLite model through edgekd's TFLite quantizer and litert-torch."""
    litert_torch = pytest.importorskip("litert_torch")
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgekd.quant.quantizers import build_quantizer

    class Add(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    torch.manual_seed(0)
    example = (torch.rand(1, 256, 256) * 2 * range_a - range_a * 0.7, torch.rand(1, 256, 256) * range_b)
    quantizer = build_quantizer(load_target("tflite"), is_qat=False)
    prepared = prepare_pt2e(torch.export.export(Add(), example).module(), quantizer)
    prepared(*example)
    converted = convert_pt2e(prepared, fold_quantize=False)
    config = QuantConfig(pt2e_quantizer=getattr(quantizer, "base", quantizer))
    litert_torch.convert(converted, example, quant_config=config).export(str(path))
    return path


@pytest.mark.parametrize("ranges", [(1.0, 2.0), (3.0, 0.2)])
def test_xnnpack_add_matches_litert_on_every_input_pair(tmp_path, ranges):
    from ai_edge_litert.interpreter import Interpreter

    from edgekd.quant.integer_reference import XnnpackX86

    interpreter = Interpreter(model_path=str(_litert_add_model(tmp_path / "add.tflite", *ranges)))
    interpreter.allocate_tensors()
    (ia, ib), out = interpreter.get_input_details(), interpreter.get_output_details()[0]
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256).reshape(1, 256, 256)
    b = np.tile(np.arange(-128, 128, dtype=np.int8), 256).reshape(1, 256, 256)
    interpreter.set_tensor(ia["index"], a)
    interpreter.set_tensor(ib["index"], b)
    interpreter.invoke()
    expected = interpreter.get_tensor(out["index"])

    def deq(x, detail):
        scale, zp = detail["quantization"]
        return _Dequantized(torch.from_numpy(x), torch.tensor(scale, dtype=torch.float32), torch.tensor(zp))

    scale_c, zp_c = out["quantization"]
    ours = XnnpackX86.add(deq(a, ia), deq(b, ib), torch.tensor(scale_c, dtype=torch.float32), zp_c, -128, 127)
    assert np.array_equal(ours.numpy().astype(np.int8), expected)  # all 65,536 pairs


@pytest.mark.slow
def test_integer_reference_is_bit_exact_with_litert_xnnpack(tmp_path):
    """A calibrated random MobileFaceNet converted to TFLite: LiteRT (XNNPACK) and the integer twin
    agree on every image to float precision; the float32 converted model does not have to."""
    pytest.importorskip("litert_torch")
    from edgekd.convert.exporters import export_tflite
    from edgekd.convert.manifest import Manifest, write_manifest
    from edgekd.models import default_preprocess
    from edgekd.runtime import load_embedder
    from edgekd.runtime.torch_backend import TorchEmbedder

    pre = default_preprocess("mobilefacenet_ms1m")
    converted, spec = _converted_student("tflite")
    path = export_tflite(converted, spec, tmp_path / "m.tflite", pre)
    write_manifest(
        Manifest(target="tflite", artifact=path.name, preprocess=pre, embedding_size=128), tmp_path
    )
    faces = np.random.default_rng(0).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
    runtime = load_embedder(path, threads=1).embed(faces)
    twin = TorchEmbedder(IntegerReference(converted, "litert-xnnpack-x86"), pre, name="twin").embed(faces)
    np.testing.assert_allclose(twin, runtime, rtol=1e-5, atol=1e-5 * np.abs(runtime).max())


def _openvino_twin_and_runtime(tmp_path, quantizer: str | None = None):
    pytest.importorskip("openvino")
    from edgekd.convert.exporters import export_openvino
    from edgekd.convert.manifest import Manifest, write_manifest
    from edgekd.models import default_preprocess
    from edgekd.runtime import load_embedder

    pre = default_preprocess("mobilefacenet_ms1m")
    converted, spec = _converted_student("openvino", quantizer, trained_bn=True)
    path = export_openvino(converted, spec, tmp_path / "m.xml", pre)
    manifest = Manifest(target="openvino", artifact=path.name, preprocess=pre, embedding_size=128)
    write_manifest(manifest, tmp_path)
    return converted, pre, load_embedder(path, threads=1)


def test_integer_reference_is_bit_exact_with_openvino(tmp_path):
    """The CPU plugin fuses every conv → FakeQuantize → residual Add → FakeQuantize into one int8
    convolution and drops the branch's rounding: the twin reproduces that, the float32 model can't."""
    from edgekd.runtime.torch_backend import TorchEmbedder

    converted, pre, runtime = _openvino_twin_and_runtime(tmp_path)
    faces = np.random.default_rng(0).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
    expected = runtime.embed(faces)
    twin = TorchEmbedder(IntegerReference(converted, OpenVinoCpuX86.name), pre, name="twin").embed(faces)
    np.testing.assert_allclose(twin, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    simulated = TorchEmbedder(converted, pre, name="float32").embed(faces)
    assert np.abs(simulated - expected).max() > 1e-3 * np.abs(expected).max()  # the floor the twin removes


@pytest.mark.slow  # ~70 s: three full-size conversions
def test_openvino_twin_refuses_graphs_it_cannot_reproduce():
    """X86InductorQuantizer leaves conv → residual add in float; the plugin runs that as a JIT
    subgraph the twin does not reproduce: IntegerReference refuses, parity falls back to float32."""
    graph, _ = _converted_student("openvino", "x86_inductor", trained_bn=True)
    with pytest.raises(UnsupportedPattern, match="no exact rule"):
        IntegerReference(graph, OpenVinoCpuX86.name)
    assert parity_reference(graph, OpenVinoCpuX86.name) is graph
    zero_bias, _ = _converted_student("openvino")  # a fresh BN folds to all-zero biases
    assert len(unsupported_ops(zero_bias, OpenVinoCpuX86)) > 40
    assert not unsupported_ops(_converted_student("openvino", trained_bn=True)[0], OpenVinoCpuX86)


def test_openvino_fused_add_needs_one_conv_branch():
    def deq(q):
        return _Dequantized(torch.tensor([q]), torch.tensor(0.1), torch.tensor(128))

    with pytest.raises(UnsupportedPattern, match="one conv branch"):
        OpenVinoCpuX86.add(deq(3), deq(4), torch.tensor(0.2), 128, 0, 255)


def _artifact(target: str, tmp_path):
    """A converted random MobileFaceNet for ``target``, exported with its manifest (trained-like BN
    statistics for OpenVINO, whose converter drops all-zero biases the twin doesn't model)."""
    from edgekd.convert.exporters import export_artifact
    from edgekd.convert.manifest import Manifest, write_manifest
    from edgekd.models import default_preprocess

    pre = default_preprocess("mobilefacenet_ms1m")
    converted, spec = _converted_student(target, trained_bn=target.startswith("openvino"))
    path = export_artifact(converted, spec, tmp_path, pre, "m", True, False)
    write_manifest(Manifest(target=target, artifact=path.name, preprocess=pre, embedding_size=128), tmp_path)
    return converted, spec, pre, path


def _twin(converted, spec, pre, isa):
    from edgekd.runtime.torch_backend import TorchEmbedder

    return TorchEmbedder(IntegerReference(converted, spec.converter.reference, isa), pre, name=isa)


FACES = np.random.default_rng(0).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)


def _close(a, b, runtime: str = "onnxruntime") -> bool:
    """Equal to float precision after L2 normalisation (the runner returns raw embeddings). OpenVINO's
    twin is bit-exact on most faces, not all (docs/convert.md: one depthwise conv, cause not found; a
    flipped rounding there moves a face's cosine to ~0.9999 on random weights, seen once in a slow
    run), so for it every face's cosine must be ≥ 0.9999, far above what saturation does (~0.9)."""
    a, b = l2_normalize(a), l2_normalize(b)
    if runtime == "openvino":
        return bool((a * b).sum(axis=1).min() >= 0.9999)
    return np.allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("target", ["onnx-vnni", pytest.param("openvino-vnni", marks=pytest.mark.slow)])
def test_eight_bit_twin_matches_the_runtime_on_this_hosts_isa(target, tmp_path):
    """8-bit weights: the twin of *this* host's ISA (exact on VNNI, int16 pair saturation without it)
    is what the runtime computes here, whichever kind of x86 host runs the suite."""
    from edgekd.isa import host_isa
    from edgekd.runtime import load_embedder

    converted, spec, pre, path = _artifact(target, tmp_path)
    runtime = load_embedder(path, threads=1).embed(FACES)
    assert _close(_twin(converted, spec, pre, host_isa()).embed(FACES), runtime, spec.runtime)


@pytest.mark.skipif(not can_emulate(X86_AVX2), reason="x86-avx2 not emulable here: needs qemu-user-static")
@pytest.mark.parametrize(
    ("target", "saturates"),
    [
        ("onnx", False),
        ("onnx-vnni", True),
        pytest.param("openvino", False, marks=pytest.mark.slow),
        pytest.param("openvino-vnni", True, marks=pytest.mark.slow),
    ],
)
def test_avx2_kernels_under_emulation_compute_the_avx2_twin(target, saturates, tmp_path):
    """ORT and OpenVINO on QEMU Haswell (AVX2, no VNNI): 7-bit artifacts compute exactly the network of
    a VNNI host; 8-bit ones compute another, which the saturating twin reproduces."""
    from edgekd.bench.emulation import emulated_embeddings

    converted, spec, pre, path = _artifact(target, tmp_path)
    avx2 = emulated_embeddings(path, FACES, X86_AVX2)  # OpenVINO: native, ONEDNN_MAX_CPU_ISA=AVX2
    assert _close(_twin(converted, spec, pre, X86_AVX2).embed(FACES), avx2, spec.runtime)
    assert _close(_twin(converted, spec, pre, X86_VNNI).embed(FACES), avx2, spec.runtime) != saturates


@pytest.mark.slow
@pytest.mark.skipif(not can_emulate(X86_AVX2), reason="x86-avx2 not emulable here: needs qemu-user-static")
def test_onednn_dispatch_limit_computes_what_qemu_haswell_computes(tmp_path):
    """The native AVX2 path of OpenVINO (oneDNN's ISA switch) is the AVX2 CPU's arithmetic: the same
    embeddings as the unmodified runtime under QEMU Haswell, on 8-bit weights where pairs saturate."""
    from edgekd.bench.emulation import emulated_embeddings

    _, _, _, path = _artifact("openvino-vnni", tmp_path)
    native = emulated_embeddings(path, FACES, X86_AVX2)
    assert _close(native, emulated_embeddings(path, FACES, X86_AVX2, qemu=True))
