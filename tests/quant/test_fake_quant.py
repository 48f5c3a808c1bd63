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


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU6(),
        torch.nn.Conv2d(16, 8, 1),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 56 * 56, 32),
    ).eval()


def _prepared_and_converted(target: str):
    from edgekd.quant import convert, set_mode

    prepared = prepare(_tiny_net(), load_target(target), example_input(), fold_bn=True)
    set_mode(prepared, train=True)
    with torch.no_grad():
        for _ in range(3):
            prepared(torch.randn(4, 3, 112, 112))
    set_mode(prepared, train=False)
    return prepared, convert(prepared, load_target(target))


def test_calculate_qparams_returns_what_the_fake_quantization_applied():
    prepared, _ = _prepared_and_converted("onnx")
    fakes = [m for m in prepared.modules() if isinstance(m, LayoutAwareFakeQuantize)]
    assert any(m.is_per_channel for m in fakes) and not all(m.is_per_channel for m in fakes)
    for m in fakes:
        scale, zero_point = m.calculate_qparams()
        assert torch.equal(scale, m.scale) and torch.equal(zero_point.to(m.zero_point.dtype), m.zero_point)


def _weight_fakes():
    from torchao.quantization.pt2e.observer import MovingAveragePerChannelMinMaxObserver

    kwargs = dict(
        observer=MovingAveragePerChannelMinMaxObserver,
        quant_min=-127,
        quant_max=127,
        dtype=torch.qint8,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
    )
    return FusedMovingAvgObsFakeQuantize(**kwargs), LayoutAwareFakeQuantize(**kwargs)


def test_weights_get_a_symmetric_grid_even_when_a_channel_has_one_sign():
    torch.manual_seed(0)
    w = torch.randn(3, 8, 3, 3)
    w[0] = w[0].abs() + 0.1  # all positive
    w[1] = -w[1].abs() - 0.1  # all negative
    stock, ours = _weight_fakes()
    y = ours(w)
    absmax = w.abs().amax(dim=(1, 2, 3))
    assert torch.equal(ours.zero_point, torch.zeros(3, dtype=ours.zero_point.dtype))
    torch.testing.assert_close(ours.scale, absmax / 127, rtol=1e-6, atol=0)
    q = torch.round(y / ours.scale.reshape(-1, 1, 1, 1))
    assert q.abs().max() <= 127 and torch.allclose(q * ours.scale.reshape(-1, 1, 1, 1), y)
    # torch's fused kernel: an affine grid for the one-signed channels (what QAT trained before)
    stock(w)
    assert stock.zero_point[0] != 0 and stock.zero_point[1] != 0 and stock.zero_point[2] == 0


def test_weight_fake_quant_gradient_is_straight_through():
    _, ours = _weight_fakes()
    w = torch.randn(4, 6, 1, 1, requires_grad=True)
    ours(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # in range everywhere: the observed min/max


def test_converted_model_is_the_fake_quant_model():
    """Same int8 network: the outputs agree to float32 rounding, not to a re-quantization's noise."""
    prepared, converted = _prepared_and_converted("openvino")
    x = torch.randn(8, 3, 112, 112)
    with torch.no_grad():
        a, b = prepared(x), converted(x)
    cos = torch.nn.functional.cosine_similarity(a, b)
    assert cos.min() > 0.99999, cos.min()


def test_unobserved_fake_quant_falls_back_to_the_observer():
    fake = LayoutAwareFakeQuantize(
        observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8
    )
    scale, _ = fake.calculate_qparams()  # nothing observed: the observer's default, not a stale buffer
    assert torch.equal(scale, fake.activation_post_process.calculate_qparams()[0])


def test_a_weight_never_observed_is_observed_before_its_first_fake_quantization():
    _, ours = _weight_fakes()
    ours.disable_observer()  # an eval pass before any training step
    w = torch.randn(4, 6)
    y = ours(w)
    torch.testing.assert_close(ours.scale, w.abs().amax(dim=1) / 127, rtol=1e-6, atol=0)
    assert (y - w).abs().max() <= ours.scale.max() / 2 + 1e-7  # quantized, not clamped to garbage
