"""Named intermediate feature maps of a student, for feature-level losses (e.g. ``cakd``).

:class:`FeatureTap` wraps a model and returns ``(embedding, {name: feature map})``. It uses forward hooks
that live only for the duration of one call, so the wrapped model is unchanged (same module names,
same state_dict keys, the same graph for QAT and export) and the tapped tensors are the very tensors
the model computed, not a recomputation. It survives ``torch.export.export``: the maps become extra
graph outputs.

Tap a layer whose output is not modified in place afterwards (e.g. not a conv followed by an
``inplace=True`` activation): a hook sees the tensor, and an in-place op would change it after the fact.
A module called several times per forward gives its last output.

>>> import torch
>>> from edgekd.models import create_model
>>> tap = FeatureTap(create_model("mobilefacenet_ms1m"), default_taps("mobilefacenet_ms1m"))
>>> emb, maps = tap(torch.zeros(2, 3, 112, 112))
>>> emb.shape, maps["last_map"].shape
(torch.Size([2, 128]), torch.Size([2, 512, 7, 7]))
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType

import torch.utils._pytree as pytree
from torch import Tensor, fx, nn

from edgekd.errors import ModelError, did_you_mean

# The default tap of each registered student: its last spatial map, the one the embedding head reads.
# mobilefacenet*: the 1x1 conv to 512 channels before the GDC (7x7); iresnet*: the BN after layer4 (7x7);
# ViTs have no pixel map (their tokens come from PromptedTeacher / forward_features instead).
# name → {tap name: dotted module path}
DEFAULT_TAPS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "mobilefacenet": {"last_map": "conv2"},
        "mobilefacenet_large": {"last_map": "conv2"},
        "mobilefacenet_ms1m": {"last_map": "conv2"},
        "iresnet18": {"last_map": "bn2"},
        "iresnet50": {"last_map": "bn2"},
        "iresnet100": {"last_map": "bn2"},
    }
)


def default_taps(name: str) -> dict[str, str]:
    """The default ``{tap name: module path}`` of a registered student, or ModelError listing the known.

    >>> default_taps("mobilefacenet")
    {'last_map': 'conv2'}
    """
    if name not in DEFAULT_TAPS:
        raise ModelError(
            f"no default feature tap for model '{name}'; known: {', '.join(sorted(DEFAULT_TAPS))}."
            f"{did_you_mean(name, DEFAULT_TAPS)} Pass the layers explicitly: FeatureTap(model, "
            "{'last_map': '<module path>'})"
        )
    return dict(DEFAULT_TAPS[name])


class FeatureTap(nn.Module):
    """``forward(x) -> (model(x), {name: output of the module at path})`` for ``layers`` name → path.

    A path that names no module raises ModelError listing the valid paths (and the closest one).
    ``embedding_size`` is the wrapped model's.
    """

    def __init__(self, model: nn.Module, layers: Mapping[str, str]):
        super().__init__()
        if not layers:
            raise ModelError("FeatureTap needs at least one layer: {name: dotted module path}")
        modules = dict(model.named_modules())
        for name, path in layers.items():
            if not path or path not in modules:
                valid = [p for p in modules if p]
                raise ModelError(
                    f"feature tap '{name}': model {type(model).__name__} has no module '{path}'."
                    f"{_close_matches(path, valid)} Valid module paths: {', '.join(valid)}"
                )
        self.model = model
        self.layers = dict(layers)
        self.embedding_size = getattr(model, "embedding_size", None)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        captured: dict[str, Tensor] = {}
        handles = [
            self.model.get_submodule(path).register_forward_hook(partial(_store, captured, name))
            for name, path in self.layers.items()
        ]
        try:
            embedding = self.model(x)
        finally:
            for handle in handles:
                handle.remove()
        return embedding, {name: captured[name] for name in self.layers}


class EmbeddingOnly(nn.Module):
    """``forward(x) -> tapped(x)[0]``: a :class:`FeatureTap` (or its exported/prepared graph) seen as a
    plain embedder, for code that expects ``(N, D)`` (validation, evaluation).

    ``train()``/``eval()`` only set this wrapper's flag: a prepared QAT graph refuses ``.train()``, and its
    mode is switched by its owner through :func:`edgekd.quant.set_mode`.
    """

    def __init__(self, tapped: nn.Module):
        super().__init__()
        self.tapped = tapped
        self.embedding_size = getattr(tapped, "embedding_size", None)

    def train(self, mode: bool = True) -> EmbeddingOnly:
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.tapped(x)[0]


def drop_tapped_outputs(graph: fx.GraphModule) -> fx.GraphModule:
    """Make an exported :class:`FeatureTap` graph (outputs ``(embedding, {name: map})``) return only the
    embedding, in place, and return it.

    Unlike a wrapper module, the result is still the same ``GraphModule`` (same parameters, fake-quant
    modules and state_dict keys), which is what QAT conversion (``convert_pt2e``, ONNX/TFLite export) needs.
    The tapped maps stay computed where the embedding reads them; only the extra outputs go.
    """
    codegen = graph.graph._codegen
    info = getattr(codegen, "pytree_info", None)
    output = next(n for n in graph.graph.nodes if n.op == "output")
    flat = output.args[0]
    if info is None or not isinstance(flat, tuple | list) or len(flat) < 2:
        raise ModelError(
            "drop_tapped_outputs expects a torch.export graph of a FeatureTap, whose outputs are "
            f"(embedding, {{name: map}}); got outputs {output.args}"
        )
    output.args = ((flat[0],),)
    codegen.pytree_info = info._replace(out_spec=pytree.treespec_leaf())
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return graph


def _close_matches(path: str, valid: list[str]) -> str:
    """Up to three close paths: module paths nest (``conv2``, ``conv2.2``), so one guess is often not it."""
    matches = difflib.get_close_matches(path, valid, n=3, cutoff=0.6)
    return f" Close matches: {', '.join(repr(m) for m in matches)}." if matches else ""


def _store(captured: dict[str, Tensor], name: str, module: nn.Module, inputs: object, output: Tensor) -> None:
    captured[name] = output
