"""The layout-aware fake quantizer computes what torch's fused one computes, without the NCHW copy."""

from __future__ import annotations

import torch
from torchao.quantization.pt2e.fake_quantize import FusedMovingAvgObsFakeQuantize
from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver

from edgekd.models import create_model
from edgekd.quant import example_input, load_target, prepare
from edgekd.quant.fake_quant import LayoutAwareFakeQuantize


def _pair() -> tuple[FusedMovingAvgObsFakeQuantize, LayoutAwareFakeQuantize]:
    kwargs = dict(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8)
    return FusedMovingAvgObsFakeQuantize(**kwargs), LayoutAwareFakeQuantize(**kwargs)


def test_channels_last_input_gives_identical_values_grads_and_scales():
    torch.manual_seed(0)
    stock, ours = _pair()
    for step in range(3):  # several steps: the moving-average observer state must evolve identically
        x = (torch.randn(4, 16, 9, 9) * (step + 1)).contiguous(memory_format=torch.channels_last)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = stock(a), ours(b)
        assert torch.equal(ya, yb)
        assert yb.is_contiguous(memory_format=torch.channels_last)  # no layout change downstream
        g = torch.randn_like(ya)
        ya.backward(g), yb.backward(g)
        assert torch.equal(a.grad, b.grad)
        assert torch.equal(stock.scale, ours.scale) and torch.equal(stock.zero_point, ours.zero_point)
    # the values are really quantized: at most 256 levels
    assert torch.unique(yb).numel() <= 256


def test_other_layouts_go_through_unchanged():
    stock, ours = _pair()
    for x in (torch.randn(2, 8, 5, 5), torch.randn(3, 7), torch.randn(2, 1, 4, 4)):
        assert torch.equal(stock(x), ours(x))


def test_prepared_graph_has_no_in_place_activation_on_fake_quant_outputs():
    """litert observes conv outputs before ReLU6: the ReLU6 must not work in place on that view."""
    model = prepare(create_model("mobilefacenet_ms1m"), load_target("onnx"), example_input(), fold_bn=True)
    inplace = {torch.ops.aten.relu_.default, torch.ops.aten.hardtanh_.default}
    assert not [n for n in model.graph.nodes if n.target in inplace]
    fq = [m for n, m in model.named_modules() if n.startswith("activation_post_process") and "." not in n]
    assert fq and all(isinstance(m, LayoutAwareFakeQuantize) for m in fq)
    x = example_input(batch=2).contiguous(memory_format=torch.channels_last)
    model(x).sum().backward()  # trains through the permuted views
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
