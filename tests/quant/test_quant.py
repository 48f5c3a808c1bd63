"""Target specs, quantizers (PReLU annotation, litert shim), QAT prepare/freeze/convert."""

from __future__ import annotations

import collections
import copy
import operator

import pytest
import torch
from torch import nn
from torchao.quantization.pt2e import move_exported_model_to_eval as move_to_eval
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

from edgekd.errors import ConfigError, UnsupportedTargetError
from edgekd.models import create_model
from edgekd.quant import convert, example_input, freeze, list_targets, load_target, prepare, set_mode
from edgekd.quant.annotator import PRELU, WEIGHTED

TARGETS = ["onnx", "onnx-vnni", "openvino", "openvino-vnni", "tflite"]
FQ = "activation_post_process"
DQ_PER_CHANNEL = torch.ops.quantized_decomposed.dequantize_per_channel.default


def tiny(act: str = "prelu") -> nn.Module:
    torch.manual_seed(0)
    return create_model("mobilefacenet", width=0.25, blocks=(1, 1, 1, 1), embedding_size=32, act=act)


def ops(gm: torch.fx.GraphModule) -> collections.Counter:
    return collections.Counter(str(n.target) for n in gm.graph.nodes if n.op == "call_function")


@pytest.fixture(
    scope="module",
    params=[
        "onnx",
        pytest.param("openvino", marks=pytest.mark.slow),
        pytest.param("tflite", marks=pytest.mark.slow),
    ],
)
def prepared(request):
    spec = load_target(request.param)
    model = prepare(tiny(), spec, example_input(batch=4))
    with torch.no_grad():
        for _ in range(3):  # observers see data; BN statistics move
            model(example_input(batch=8))
    return spec, model


def test_shipped_targets_mirror_their_runtimes():
    assert list_targets() == sorted(TARGETS)
    onnx, ov, tfl = (load_target(t) for t in ("onnx", "openvino", "tflite"))
    # ORT fuses QLinearConv only with u8 activations; TFLite's int8 spec: s8 asymmetric activations
    assert (onnx.activations.dtype, onnx.activations.quant_min, onnx.activations.quant_max) == (
        "uint8",
        0,
        255,
    )
    assert (tfl.activations.dtype, tfl.activations.quant_min, tfl.activations.quant_max) == (
        "int8",
        -128,
        127,
    )
    # weights: symmetric per-channel; 7-bit for ORT/OpenVINO (no int16 pair saturation on x86 without
    # VNNI), narrow [-127, 127] for TFLite; the -vnni variants keep ORT's and OpenVINO's 8-bit ranges
    assert all(s.weights.qscheme == "per_channel_symmetric" for s in (onnx, ov, tfl))
    assert (tfl.weights.quant_min, onnx.weights.quant_min, ov.weights.quant_min) == (-127, -63, -63)
    vnni = [load_target(t).weights for t in ("onnx-vnni", "openvino-vnni")]
    assert [(w.quant_min, w.quant_max) for w in vnni] == [(-127, 127), (-128, 127)]
    assert onnx.converter.fold_quantize  # ORT reads folded int8 initializers
    assert not ov.converter.fold_quantize and not tfl.converter.fold_quantize


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(UnsupportedTargetError, match=r"unknown target 'tflit'.*tflite"):
        load_target("tflit")
    with pytest.raises(UnsupportedTargetError, match="not found"):
        load_target("/nonexistent/spec.yaml")


def test_user_spec_file_is_validated(tmp_path):
    text = (load_target.__globals__["targets_dir"]() / "onnx.yaml").read_text()
    good = tmp_path / "mine.yaml"
    good.write_text(text.replace("name: onnx", "name: mine"))
    assert load_target(good).name == "mine"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("quant_max: 255", "quant_max: 300"))
    with pytest.raises(ConfigError, match=r"uint8 range must lie in \[0, 255\]"):
        load_target(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(text + "\nweight_bits: 8\n")
    with pytest.raises(ConfigError, match='unknown key "weight_bits"'):
        load_target(typo)
    unknown_reference = tmp_path / "ref.yaml"
    unknown_reference.write_text(text.replace("reference: onnxruntime-mlas-x86", "reference: bit-magic"))
    with pytest.raises(ConfigError, match="onnxruntime-mlas-x86"):  # the allowed values are listed
        load_target(unknown_reference)


def _fq_inputs(gm: torch.fx.GraphModule, node: torch.fx.Node) -> list[bool]:
    return [
        isinstance(a, torch.fx.Node) and a.op == "call_module" and FQ in str(a.target) for a in node.args[:2]
    ]


def test_every_prelu_is_quantized_on_every_target(prepared):
    spec, model = prepared
    prelus = [n for n in model.graph.nodes if n.target in PRELU]
    assert prelus
    for node in prelus:
        assert _fq_inputs(model, node) == [True, True], (
            f"{spec.name}: {node.name} input/alpha not fake-quantized"
        )
        users = list(node.users)
        assert all(u.op == "call_module" and FQ in str(u.target) for u in users), (
            f"{spec.name}: {node.name} output float"
        )


def test_fake_quant_follows_the_spec(prepared):
    spec, model = prepared
    fqs = [m for name, m in model.named_modules() if FQ in name]
    acts = [m for m in fqs if m.qscheme == torch.per_tensor_affine]
    weights = [m for m in fqs if m.qscheme == torch.per_channel_symmetric]
    assert acts and weights
    assert {(m.quant_min, m.quant_max) for m in acts} == {
        (spec.activations.quant_min, spec.activations.quant_max)
    }
    assert {(m.quant_min, m.quant_max) for m in weights} == {(spec.weights.quant_min, spec.weights.quant_max)}


def test_conversion_folds_conv_bn_and_keeps_no_float_conv(prepared):
    spec, model = prepared
    converted = convert(model, spec)
    counts = ops(converted)
    assert counts["aten.batch_norm.default"] == 1  # only the BatchNorm1d head; every conv BN folded
    weighted = [n for n in converted.graph.nodes if n.target in WEIGHTED]
    dq = [n for n in converted.graph.nodes if n.target == DQ_PER_CHANNEL]
    assert sum(n.args[6] != torch.int32 for n in dq) == len(weighted)  # one per-channel weight each
    # ONNX Runtime's QLinearConv adds an int32 bias (act scale × weight scale): the reference does too
    biased = [n for n in weighted if len(n.args) > 2 and n.args[2] is not None]
    int32_bias = [n for n in dq if n.args[6] == torch.int32]
    assert len(int32_bias) == (len(biased) if spec.runtime == "onnxruntime" else 0)
    assert all(n.args[2].target == DQ_PER_CHANNEL for n in biased) == (spec.runtime == "onnxruntime")
    x = example_input(batch=3)
    set_mode(model, train=False)
    with torch.no_grad():
        cos = nn.functional.cosine_similarity(model(x), converted(x))
    assert cos.min() > 0.9  # random weights: only a sanity bound; fidelity is measured on real faces


def test_prepared_model_switches_batch_norm_mode():
    spec = load_target("onnx")
    model = prepare(tiny("relu6"), spec, example_input(batch=4))
    x = example_input(batch=4)
    set_mode(model, train=False)
    with torch.no_grad():
        a, b = model(x), model(x[:2])
    torch.testing.assert_close(a[:2], b, atol=1e-5, rtol=1e-4)  # eval: each image independent of its batch
    set_mode(model, train=True)
    with torch.no_grad():
        c = model(x[:2])
    assert not torch.allclose(b, c, atol=1e-3)  # train: batch statistics


def test_freeze_stops_bn_statistics_and_scales():
    spec = load_target("onnx")
    model = prepare(tiny("relu6"), spec, example_input(batch=4))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = model(torch.randn(4, 3, 112, 112)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    freeze(model, bn=True, observers=True)
    set_mode(model, train=True)  # must not unfreeze BN
    buffers = {k: v.clone() for k, v in model.named_buffers() if "running" in k or k.endswith(".scale")}
    assert any(k.endswith(".scale") for k in buffers) and any("running_mean" in k for k in buffers)
    step()
    step()
    for k, v in model.named_buffers():
        if k in buffers:
            torch.testing.assert_close(v, buffers[k], msg=f"{k} changed after freeze")


def test_litert_shim_is_idempotent_and_lets_prepare_run():
    litert = pytest.importorskip("litert_torch.quantize.pt2e_quantizer_utils")
    from edgekd.quant import litert_shim

    litert_shim.apply()
    first = litert._get_aten_graph_module_for_pattern
    litert_shim.apply()
    assert litert._get_aten_graph_module_for_pattern is first
    model = prepare(tiny("relu6"), load_target("tflite"), example_input(batch=2))
    assert ops(model)["aten.conv2d.default"] > 0


def test_int32_bias_is_the_rounded_float_bias():
    spec = load_target("onnx")
    model = prepare(tiny(), spec, example_input(batch=4))
    with torch.no_grad():
        for _ in range(3):
            model(example_input(batch=8))
    converted = convert(model, spec)  # int32 biases
    plain = copy.deepcopy(model)
    move_to_eval(plain)
    plain = convert_pt2e(plain, fold_quantize=True)  # float biases
    x = example_input(batch=3)
    with torch.no_grad():  # random weights, embeddings a few steps wide: a sanity bound only
        assert nn.functional.cosine_similarity(plain(x), converted(x)).min() > 0.9

    def biases(gm):
        return [n.args[2] for n in gm.graph.nodes if n.target in WEIGHTED and len(n.args) > 2 and n.args[2]]

    pairs = list(zip(biases(plain), biases(converted), strict=True))
    assert pairs and all(b.target == DQ_PER_CHANNEL and b.args[6] == torch.int32 for _, b in pairs)
    for f, b in pairs:
        bias = operator.attrgetter(str(f.target))(plain)
        q, scale = (operator.attrgetter(str(a.target))(converted) for a in b.args[:2])
        assert q.dtype == torch.int32 and scale.dtype == torch.float32 and (scale > 0).all()
        assert ((q * scale.double() - bias.double()).abs() <= 0.5001 * scale).all()  # round(b / scale)
