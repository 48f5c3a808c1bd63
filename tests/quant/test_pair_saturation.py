"""The x86-without-VNNI accumulator: u8×s8 pairs in saturating int16, in each runtime's pair order."""

from __future__ import annotations

import functools

import pytest
import torch

from edgekd.quant.runtime_arithmetic import _Dequantized, pair_saturated_accumulator

MLAS = functools.partial(pair_saturated_accumulator, pairs_span_taps=True)
ONEDNN = functools.partial(pair_saturated_accumulator, pairs_span_taps=False)


def _x(q: torch.Tensor, zp: int = 0) -> _Dequantized:
    return _Dequantized(q, torch.tensor(0.05), torch.tensor(zp))


def test_a_pair_of_maximal_products_saturates_at_int16():
    x, w = _x(torch.tensor([[255, 255, 255, 255]])), torch.tensor([[127.0, 127, 127, -1]])
    # (255·127 + 255·127) = 64770 → 32767; (255·127 − 255) = 32130 is exact
    assert MLAS(x, w, None, True, ()).tolist() == [[32767 + 32130]]


def test_mlas_pairs_span_taps_where_onednn_pads_each_tap():
    """A 3-channel stem: MLAS pairs the flattened (kh, kw, ic) axis, so (tap 0 ch 2, tap 1 ch 0) is one
    pair that saturates; oneDNN zero-pads each tap's channels to an even count, so it doesn't."""
    x = _x(torch.full((1, 3, 1, 2), 255))
    w = torch.zeros(1, 3, 1, 2, dtype=torch.float64)
    w[0, 2, 0, 0] = w[0, 0, 0, 1] = 127
    assert MLAS(x, w, None, False, (1, 0, 1, 1)).flatten().tolist() == [32767]
    assert ONEDNN(x, w, None, False, (1, 0, 1, 1)).flatten().tolist() == [2 * 255 * 127]


def test_the_zero_point_is_removed_after_the_raw_products_and_pads_with_itself():
    """Raw u8 values enter the pairs (200·120·2 = 48000 saturates although (q − zp) is small), padding
    holds the zero point, and ``zp·Σw`` is subtracted exactly afterwards."""
    x = _x(torch.full((1, 2, 1, 1), 200), zp=190)
    w = torch.full((1, 2, 3, 3), 120.0, dtype=torch.float64)
    exact = torch.nn.functional.conv2d(torch.full((1, 2, 1, 1), 10.0, dtype=torch.float64), w, None, 1, 1)
    got = MLAS(x, w, None, False, (1, 1, 1, 1))
    assert exact.item() == 2 * 10 * 120  # padding contributes 0 = (zp − zp)
    assert got.item() == 9 * 32767 - 190 * 120 * 18  # every tap's pair saturates, padding included


@pytest.mark.parametrize("rule", [MLAS, ONEDNN], ids=["mlas", "onednn"])
@pytest.mark.parametrize(
    ("cin", "k", "stride", "pad", "groups", "cout"),
    [(3, 3, 2, 1, 1, 8), (16, 1, 1, 0, 1, 24), (8, 3, 1, 1, 8, 8), (8, 3, 1, 1, 2, 6)],
)
def test_seven_bit_weights_never_saturate_eight_bit_ones_do(rule, cin, k, stride, pad, groups, cout):
    gen = torch.Generator().manual_seed(cin + k)
    q, zp = torch.randint(0, 256, (2, cin, 9, 9), generator=gen), 37
    b = torch.randint(-1000, 1000, (cout,), generator=gen).double()
    args = (stride, pad, 1, groups)
    for bound in (63, 127):
        w = torch.randint(-bound, bound + 1, (cout, cin // groups, k, k), generator=gen).double()
        exact = torch.nn.functional.conv2d(q.double() - zp, w, b, *args).round().long()
        same = torch.equal(rule(_x(q, zp), w, b, False, args), exact)
        # depthwise widens to 32 bits: exact at any width; elsewhere 8-bit pairs leave int16
        assert same == (bound == 63 or groups == cin)
