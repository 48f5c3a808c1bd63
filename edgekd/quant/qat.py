"""PT2E quantization of a student: export → prepare (QAT or PTQ) → train/calibrate → freeze → convert.

The prepared model is a ``torch.fx.GraphModule``: ``.train()``/``.eval()`` do not switch its batch norms,
so mode changes go through :func:`set_mode` (torchao's ``move_exported_model_to_train/eval``). Conv–BN
pairs are rewritten by ``prepare_qat_pt2e`` so the fake-quantized weight is the BN-folded one; BN stays in
the graph until ``convert_pt2e`` folds it. :func:`freeze` stops BN statistics and/or observers, the usual
last phase of QAT (scales and BN stop moving while the weights settle).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.fx import GraphModule
from torchao.quantization.pt2e import (
    disable_observer,
    enable_observer,
    move_exported_model_to_eval,
    move_exported_model_to_train,
)
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
from torchao.quantization.pt2e.utils import _fuse_conv_bn_  # folds eval-mode conv+BN in an exported graph

from edgekd.errors import ModelError
from edgekd.quant.bias import quantize_bias_int32
from edgekd.quant.quantizers import build_quantizer
from edgekd.quant.spec import TargetSpec

# Batch dimension kept symbolic: a graph exported at batch 8 would otherwise refuse batch 1 (and 64).
MAX_BATCH = 4096
TRAINING_ATTR = "_edgekd_training"
BN_FROZEN = "_edgekd_bn_frozen"
OBSERVERS_FROZEN = "_edgekd_observers_frozen"


def example_input(size: int = 112, batch: int = 2) -> torch.Tensor:
    """A face batch for tracing (batch ≥ 2: BatchNorm1d heads reject batch 1 in training mode)."""
    return torch.randn(batch, 3, size, size)


def export_model(model: nn.Module, example: torch.Tensor, train: bool = True) -> GraphModule:
    """``torch.export`` with a dynamic batch; ``train`` records training-mode batch norms (for QAT)."""
    if not isinstance(model, GraphModule):  # prepared graphs refuse .train(); their mode is set_mode's
        model.train(train)
    dynamic = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},)
    try:
        return torch.export.export(model, (example,), dynamic_shapes=dynamic).module()
    except Exception as exc:  # torch.export raises many types; all mean "this model can't be traced"
        raise ModelError(f"torch.export failed on {type(model).__name__}: {exc}") from exc


def prepare(
    model: nn.Module, spec: TargetSpec, example: torch.Tensor, qat: bool = True, fold_bn: bool = False
) -> GraphModule:
    """Exported, annotated and prepared model, in training mode for QAT (eval mode for PTQ).

    ``fold_bn``: BN statistics frozen from the start, so fold every conv+BN into the conv now (exactly
    what torchao's QAT conv-BN pattern computes with frozen BN, minus three elementwise ops per conv:
    the fast path). Otherwise conv+BN get torchao's QAT rewrite and BN keeps learning statistics until
    :func:`freeze`.
    """
    graph = export_model(model, example, train=qat and not fold_bn)
    if fold_bn:
        _fuse_conv_bn_(graph)
        _drop_unused_attributes(graph)
    quantizer = build_quantizer(spec, is_qat=qat)
    prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)
    if fold_bn:
        setattr(prepared, BN_FROZEN, True)
        prepared._exported_training = False  # torchao's mode flag: the BN left is in inference form
    _out_of_place_activations(prepared)
    set_mode(prepared, train=qat)
    return prepared


# In-place activation → its out-of-place twin (same numbers; the quantizer has annotated the graph by now).
_OUT_OF_PLACE = {
    torch.ops.aten.relu_.default: torch.ops.aten.relu.default,
    torch.ops.aten.hardtanh_.default: torch.ops.aten.hardtanh.default,
}


def _out_of_place_activations(prepared: GraphModule) -> None:
    """Replace in-place ReLU/ReLU6 by out-of-place ones in the prepared graph.

    Where a quantizer observes a conv output *before* its ReLU6 (litert's does), the activation works
    in place on the fake quantizer's output, a permuted view (:mod:`edgekd.quant.fake_quant`); autograd
    then rebuilds the base tensor on every backward (CopySlices, one full copy per activation).
    """
    changed = False
    for node in prepared.graph.nodes:
        if node.op == "call_function" and node.target in _OUT_OF_PLACE:
            node.target = _OUT_OF_PLACE[node.target]
            changed = True
    if changed:
        prepared.recompile()


def _drop_unused_attributes(graph: GraphModule) -> None:
    """Delete parameters/buffers no node reads (the BN tensors folded away), so no optimizer or DDP
    bookkeeping carries dead weights."""
    used = {str(n.target) for n in graph.graph.nodes if n.op == "get_attr"}
    for name in [k for k, _ in graph.named_parameters()] + [k for k, _ in graph.named_buffers()]:
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(graph.get_submodule(owner) if owner else graph, leaf)


def strip_fake_quant(prepared: GraphModule) -> GraphModule:
    """A float copy of a prepared model: every observer/fake-quant node bypassed (the QAT weights, in
    float: the ``--float`` baseline of a QAT checkpoint, BN folded where the QAT run folded it)."""
    import copy

    graph = copy.deepcopy(prepared)
    for node in list(graph.graph.nodes):
        if node.op == "call_module" and "activation_post_process" in str(node.target):
            node.replace_all_uses_with(node.args[0])
            graph.graph.erase_node(node)
    graph.graph.eliminate_dead_code()
    graph.delete_all_unused_submodules()
    graph.recompile()
    return graph


def set_mode(model: nn.Module, train: bool) -> None:
    """``model.train(train)`` that also works on prepared GraphModules.

    Switches batch norm (and dropout) through torchao, and observers too: fake quantizers observe in
    any mode, so evaluating a QAT model mid-training would otherwise move its scales to the eval data.
    Frozen BN / observers (:func:`freeze`) stay frozen.
    """
    if not isinstance(model, GraphModule):
        model.train(train)
        return
    if not (train and getattr(model, BN_FROZEN, False)):
        (move_exported_model_to_train if train else move_exported_model_to_eval)(model)
    observe = train and not getattr(model, OBSERVERS_FROZEN, False)
    model.apply(enable_observer if observe else disable_observer)
    setattr(model, TRAINING_ATTR, train)


def is_training(model: nn.Module) -> bool:
    return getattr(model, TRAINING_ATTR, True) if isinstance(model, GraphModule) else model.training


def freeze(model: GraphModule, bn: bool = False, observers: bool = False) -> None:
    """Freeze BN statistics (BN runs in inference mode from now on) and/or stop observers updating scales."""
    if bn:
        setattr(model, BN_FROZEN, True)
        move_exported_model_to_eval(model)
    if observers:
        setattr(model, OBSERVERS_FROZEN, True)
        model.apply(disable_observer)


def calibrate(prepared: GraphModule, batches) -> None:
    """PTQ: run calibration batches through the observers."""
    set_mode(prepared, train=False)
    with torch.no_grad():
        for x in batches:
            prepared(x)


def convert(prepared: GraphModule, spec: TargetSpec) -> GraphModule:
    """The reference int8 model (quantize/dequantize ops, BN folded), in eval mode.

    ``fold_quantize`` follows the spec: OpenVINO and litert-torch fail on pre-folded int8 weights.
    For ONNX Runtime the conv/linear biases become int32 (:func:`~edgekd.quant.bias.quantize_bias_int32`):
    the bias its QLinearConv adds, so the reference computes what the artifact computes.
    The prepared model is not modified (converted from a copy), so training may go on.
    """
    import copy

    model = copy.deepcopy(prepared)
    move_exported_model_to_eval(model)
    converted = convert_pt2e(model, fold_quantize=spec.converter.fold_quantize)
    if spec.runtime == "onnxruntime":
        quantize_bias_int32(converted)
    move_exported_model_to_eval(converted)
    return converted
