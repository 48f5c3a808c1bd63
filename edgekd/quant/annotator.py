"""edgekd's PT2E annotator, and the PReLU annotation every target adds to its quantizer.

Stock quantizers annotate conv/linear/add but never ``aten.prelu``, so a PReLU network keeps a float
island (dequantize → prelu → quantize) after every conv; on ONNX Runtime that island costs more than the
int8 conv saves. :class:`PReLUQuantizer` wraps any quantizer and annotates the PReLUs it left alone.

:class:`EdgeKDQuantizer` is the full annotator of the ``edgekd`` quantizer kind (ONNX Runtime and
OpenVINO): every conv/linear → [batch norm] → [ReLU/ReLU6] chain gets quantized input, per-channel
weight and quantized output, and every residual add quantized inputs and output. That is the QDQ shape
ORT's optimizer fuses into QLinearConv/QLinearAdd, and the one OpenVINO's CPU plugin fuses into an int8
conv with a sum post-op (bit-exact twin: :mod:`edgekd.quant.runtime_arithmetic`). X86InductorQuantizer
leaves conv outputs before an add unquantized, which ORT then runs in float (measured: 13 of 51 convs)
and OpenVINO as a float conv plus a JIT add.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec, Quantizer

aten = torch.ops.aten
ANNOTATION = "quantization_annotation"

WEIGHTED = {aten.conv2d.default, aten.conv1d.default, aten.linear.default}
BATCH_NORM = {aten.batch_norm.default, aten._native_batch_norm_legit.default}
ACTIVATIONS = {aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default}
ADDS = {aten.add.Tensor, aten.add_.Tensor}
PRELU = {aten.prelu.default}


def module_path(node: Node) -> str:
    """Dotted path of the module a node came from (``""`` for the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def is_annotated(node: Node) -> bool:
    annotation = node.meta.get(ANNOTATION)
    return annotation is not None and annotation._annotated


def _annotate(
    node: Node, inputs: dict[Node, QuantizationSpec | None], output: QuantizationSpec | None
) -> None:
    node.meta[ANNOTATION] = QuantizationAnnotation(
        input_qspec_map=inputs, output_qspec=output, _annotated=True
    )


def _mark(nodes: Iterable[Node]) -> None:
    """Claim nodes inside a fused chain (no quantizer of their own)."""
    for node in nodes:
        node.meta[ANNOTATION] = QuantizationAnnotation(_annotated=True)


def _single_user(node: Node, targets: set) -> Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0].target in targets else None


def _chain_end(node: Node) -> list[Node]:
    """``node`` → optional batch norm → optional ReLU/ReLU6: the nodes one fused int8 kernel computes."""
    chain = [node]
    bn = _single_user(node, BATCH_NORM)
    if bn is not None:
        chain.append(bn)
    act = _single_user(chain[-1], ACTIVATIONS)
    if act is not None:
        chain.append(act)
    return chain


def _is_tensor_node(arg: object) -> bool:
    return isinstance(arg, Node) and isinstance(arg.meta.get("val"), torch.Tensor)


RELU6 = {aten.hardtanh.default, aten.hardtanh_.default}
CONV = {aten.conv2d.default, aten.conv1d.default}


def annotate_conv_relu6(
    model: GraphModule,
    act: QuantizationSpec,
    weight: QuantizationSpec,
    skip: Callable[[Node], bool] = lambda n: False,
) -> int:
    """Claim every conv → ReLU6 (hardtanh 0..6) as one partition: quantized input and weight on the conv,
    the output quantized after the ReLU6 only. TFLite runs that as one CONV_2D with a fused RELU6;
    litert's own annotator fuses only ReLU and observes the conv output too, which costs a second
    fake quantization per layer in QAT and a separate requantizing activation at run time. Returns the count.
    """
    count = 0
    for node in model.graph.nodes:
        if node.target not in RELU6 or tuple(node.args[1:3]) != (0.0, 6.0) or is_annotated(node):
            continue
        conv = node.args[0]
        if not (isinstance(conv, Node) and conv.target in CONV and len(conv.users) == 1):
            continue
        if is_annotated(conv) or skip(conv) or skip(node):
            continue
        _annotate(conv, {conv.args[0]: act, conv.args[1]: weight}, None)
        _annotate(node, {}, act)
        count += 1
    return count


def annotate_add(node: Node, act: QuantizationSpec) -> None:
    """A residual add with quantized inputs and output (after its ReLU, if one follows): the shape
    ORT fuses into QLinearAdd and TFLite runs as an int8 ADD."""
    a, b = node.args[0], node.args[1]
    relu = _single_user(node, ACTIVATIONS)
    _annotate(node, {a: act, b: act}, None if relu is not None else act)
    if relu is not None:
        _annotate(relu, {}, act)


def annotate_adds(model: GraphModule, act: QuantizationSpec, skip: Callable[[Node], bool]) -> int:
    """:func:`annotate_add` on every unclaimed tensor + tensor add; returns the count.

    litert-torch finds adds through ``get_source_partitions``, which sees none in torch 2.13's exported
    graphs (measured: 0 of 12 MobileFaceNet adds): TFLite then computes every residual add in float
    (DEQUANTIZE → ADD → QUANTIZE) and the add → add edge carries no quantization at all.
    """
    count = 0
    for node in model.graph.nodes:
        tensors = all(_is_tensor_node(a) for a in node.args[:2])
        if node.target in ADDS and tensors and not is_annotated(node) and not skip(node):
            annotate_add(node, act)
            count += 1
    return count


class PReLUQuantizer(Quantizer):
    """``base``'s annotation, plus quantized input/output (and slope) on every PReLU it left float."""

    def __init__(
        self,
        base: Quantizer,
        act: QuantizationSpec,
        alpha: QuantizationSpec | None,
        skip: Callable[[Node], bool] = lambda n: False,
    ):
        super().__init__()
        self.base, self.act, self.alpha, self.skip = base, act, alpha, skip

    def transform_for_annotation(self, model: GraphModule) -> GraphModule:
        return self.base.transform_for_annotation(model)

    def annotate(self, model: GraphModule) -> GraphModule:
        model = self.base.annotate(model) or model
        for node in model.graph.nodes:
            if node.target in PRELU and not is_annotated(node) and not self.skip(node):
                x, alpha = node.args[0], node.args[1]
                inputs: dict[Node, QuantizationSpec | None] = {x: self.act}
                if self.alpha is not None and isinstance(alpha, Node):
                    inputs[alpha] = self.alpha
                _annotate(node, inputs, self.act)
        return model

    def validate(self, model: GraphModule) -> None:
        self.base.validate(model)

    def prepare_obs_or_fq_callback(self, model, edge_or_node_to_obs_or_fq) -> None:
        self.base.prepare_obs_or_fq_callback(model, edge_or_node_to_obs_or_fq)


class EdgeKDQuantizer(Quantizer):
    """Annotates conv/linear chains and adds with ``act``/``weight`` specs; bias stays float.

    ``skip(node)`` → True keeps the node in float (target specs' ``keep_float`` module prefixes).
    """

    def __init__(
        self, act: QuantizationSpec, weight: QuantizationSpec, skip: Callable[[Node], bool] = lambda n: False
    ):
        super().__init__()
        self.act, self.weight, self.skip = act, weight, skip

    def annotate(self, model: GraphModule) -> GraphModule:
        for node in list(model.graph.nodes):
            if node.target in WEIGHTED and not is_annotated(node) and not self.skip(node):
                self._annotate_weighted(node)
        annotate_adds(model, self.act, self.skip)
        return model

    def _annotate_weighted(self, node: Node) -> None:
        x, w = node.args[0], node.args[1]
        chain = _chain_end(node)
        out = self.act if len(chain) == 1 else None
        _annotate(node, {x: self.act, w: self.weight}, out)
        if len(chain) > 1:
            _mark(chain[1:-1])
            _annotate(chain[-1], {}, self.act)

    def validate(self, model: GraphModule) -> None:
        return None
