"""Calibrating the roofline (:mod:`edgekd.bench.roofline`) against published latencies.

The anchors are XNNPACK's own end-to-end numbers on a Raspberry Pi 4 (64-bit OS, 4 threads). The networks
are rebuilt here as ONNX graphs with :mod:`onnx.helper` — shapes only, initializers without data, so
nothing is downloaded and nothing can run, but the roofline sees the same op list (MACs, bytes, int8 QDQ
sandwiches) as the real models. ``fit`` grid-searches the fp32 and int8 efficiencies and the per-op
overhead that minimise the squared log error; ``leave_one_out`` refits without each anchor in turn and
predicts it, the honest error for a model the fit has not seen.

    python -m edgekd.bench.calibration     # prints the tables of docs/profiles.md
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgekd.bench.profiles import ComputeUnit, load_profile
from edgekd.bench.roofline import OpCost, onnx_ops

# (network, precision, ms): XNNPACK README, "RPi 4 (BCM2711, ARM64)" column, end2end-bench, 4 threads,
# benchmarked 2022-02-08, INT8 = per-channel quantization (github.com/google/XNNPACK, README.md)
ANCHORS: tuple[tuple[str, str, float], ...] = (
    ("mobilenet_v1", "fp32", 77.0),
    ("mobilenet_v2", "fp32", 46.0),
    ("mobilenet_v3_large", "fp32", 40.0),
    ("mobilenet_v3_small", "fp32", 15.0),
    ("mobilenet_v1", "int8", 24.0),
    ("mobilenet_v2", "int8", 17.0),
)
ANCHOR_PROFILE = "rpi4"


class _Graph:
    """Builds a MobileNet-style graph; with ``int8`` every op sits in a QDQ sandwich with int8 weights."""

    def __init__(self, int8: bool, size: int = 224):
        self.int8 = int8
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.n = 0
        self.input = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def _init(self, dims: list[int], dtype: int = TensorProto.FLOAT) -> str:
        t = TensorProto(name=self._name("w"), data_type=dtype)  # dims only: the roofline needs no values
        t.dims.extend(dims)
        self.inits.append(t)
        return t.name

    def _weight(self, dims: list[int], dtype: int = TensorProto.INT8) -> str:
        if not self.int8:
            return self._init(dims)
        return self._node(
            "DequantizeLinear", [self._init(dims, dtype), self._init([]), self._init([], dtype)]
        )

    def _node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def _qdq(self, x: str) -> str:
        if not self.int8:
            return x
        q = self._node("QuantizeLinear", [x, self._init([]), self._init([], TensorProto.INT8)])
        return self._node("DequantizeLinear", [q, self._init([]), self._init([], TensorProto.INT8)])

    def _act(self, x: str, act: str | None) -> str:
        if act == "relu":
            return self._node("Relu", [x])
        if act == "relu6":
            return self._node("Clip", [x, self._init([]), self._init([])])
        if act == "hswish":
            return self._qdq(self._node("HardSwish", [x]))  # not fused by XNNPACK/ORT: its own op
        return x

    def conv(self, x: str, cin: int, cout: int, k: int = 1, s: int = 1, dw: bool = False, act=None) -> str:
        groups = cin if dw else 1
        w = self._weight([cout, cin // groups, k, k])
        b = self._weight([cout], TensorProto.INT32)
        y = self._node(
            "Conv", [x, w, b], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, group=groups
        )
        if act == "hswish":
            return self._act(self._qdq(y), act)
        return self._qdq(self._act(y, act))

    def add(self, a: str, b: str) -> str:
        return self._qdq(self._node("Add", [a, b]))

    def mul(self, a: str, b: str) -> str:
        return self._qdq(self._node("Mul", [a, b]))

    def gap(self, x: str) -> str:
        return self._qdq(self._node("GlobalAveragePool", [x]))

    def fc(self, x: str, cin: int, cout: int, act=None) -> str:
        flat = self._node("Flatten", [x])
        y = self._node(
            "Gemm", [flat, self._weight([cout, cin]), self._weight([cout], TensorProto.INT32)], transB=1
        )
        y = self._act(self._qdq(y), act) if act == "hswish" else self._qdq(y)
        return self._node(
            "Unsqueeze", [self._node("Unsqueeze", [y, self._const_axes(2)]), self._const_axes(3)]
        )

    def _const_axes(self, axis: int) -> str:
        name = self._name("axes")
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [1], [axis]))
        return name

    def model(self, x: str, name: str) -> onnx.ModelProto:
        flat = self._node("Flatten", [x])
        out = self._node("Softmax", [flat])
        graph = helper.make_graph(
            self.nodes,
            name,
            [self.input],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            initializer=self.inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v1(int8: bool = False) -> onnx.ModelProto:
    """MobileNet v1 1.0, 224×224 (569 M MACs)."""
    g = _Graph(int8)
    x, cin = g.conv(g._qdq("input"), 3, 32, 3, 2, act="relu6"), 32
    for cout, s in [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        *[(512, 1)] * 5,
        (1024, 2),
        (1024, 1),
    ]:
        x = g.conv(x, cin, cin, 3, s, dw=True, act="relu6")
        x, cin = g.conv(x, cin, cout, act="relu6"), cout
    return g.model(g.fc(g.gap(x), 1024, 1000), "mobilenet_v1")


def mobilenet_v2(int8: bool = False) -> onnx.ModelProto:
    """MobileNet v2 1.0, 224×224 (300 M MACs)."""
    g = _Graph(int8)
    x, cin = g.conv(g._qdq("input"), 3, 32, 3, 2, act="relu6"), 32
    # t: expansion, c: output channels, n: repeats, s: first stride
    for t, c, n, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            stride, hidden = (s if i == 0 else 1), cin * t
            y = g.conv(x, cin, hidden, act="relu6") if t != 1 else x
            y = g.conv(y, hidden, hidden, 3, stride, dw=True, act="relu6")
            y = g.conv(y, hidden, c)
            x, cin = (g.add(x, y) if stride == 1 and cin == c else y), c
    x = g.conv(x, 320, 1280, act="relu6")
    return g.model(g.fc(g.gap(x), 1280, 1000), "mobilenet_v2")


# k: kernel, e: expanded channels, c: output channels, se: squeeze-excite, a: activation, s: stride
_V3_LARGE = [
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2), (3, 200, 80, False, "hswish", 1), (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1), (3, 480, 112, True, "hswish", 1), (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2), (5, 960, 160, True, "hswish", 1), (5, 960, 160, True, "hswish", 1),
]  # fmt: skip
_V3_SMALL = [
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1),
]  # fmt: skip


def _mobilenet_v3(table, last: int, head: int, name: str, int8: bool) -> onnx.ModelProto:
    g = _Graph(int8)
    x, cin = g.conv(g._qdq("input"), 3, 16, 3, 2, act="hswish"), 16
    for k, e, c, se, act, s in table:
        y = g.conv(x, cin, e, act=act) if e != cin else x
        y = g.conv(y, e, e, k, s, dw=True, act=act)
        if se:
            squeeze = _divisible(e // 4)
            w = g.conv(g.conv(g.gap(y), e, squeeze, act="relu"), squeeze, e)
            y = g.mul(y, g._qdq(g._node("HardSigmoid", [w])))
        y = g.conv(y, e, c)
        x, cin = (g.add(x, y) if s == 1 and cin == c else y), c
    x = g.conv(x, cin, last, act="hswish")
    x = g.fc(g.gap(x), last, head, act="hswish")
    return g.model(g.fc(x, head, 1000), name)


def mobilenet_v3_large(int8: bool = False) -> onnx.ModelProto:
    """MobileNet v3 Large 1.0, 224×224 (217 M MACs)."""
    return _mobilenet_v3(_V3_LARGE, 960, 1280, "mobilenet_v3_large", int8)


def mobilenet_v3_small(int8: bool = False) -> onnx.ModelProto:
    """MobileNet v3 Small 1.0, 224×224 (56 M MACs)."""
    return _mobilenet_v3(_V3_SMALL, 576, 1024, "mobilenet_v3_small", int8)


NETWORKS = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_large": mobilenet_v3_large,
    "mobilenet_v3_small": mobilenet_v3_small,
}


@dataclass(frozen=True)
class Calibration:
    """Fitted constants and, per anchor, the published, fitted and leave-one-out latencies (ms)."""

    fp32_efficiency: float
    int8_efficiency: float
    overhead_us: float
    rows: list[dict]

    def errors(self, key: str = "fitted_ms") -> list[float]:
        return [r[key] / r["published_ms"] - 1 for r in self.rows]


def anchor_ops() -> list[list[OpCost]]:
    return [onnx_ops(NETWORKS[net](int8=(prec == "int8"))) for net, prec, _ in ANCHORS]


def _arrays(ops: list[OpCost]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    run = [op for op in ops if op.kind in ("compute", "memory")]
    return (
        np.array([op.macs for op in run], np.float64),
        np.array([op.bytes for op in run], np.float64),
        np.array([op.precision == "int8" for op in run]),
        len(run),
    )


# search grid: efficiencies 0.05..1.00, overhead 0..200 µs
EFF_GRID = np.round(np.arange(0.05, 1.0001, 0.01), 2)
OVERHEAD_GRID = np.arange(0.0, 200.01, 1.0)


def _predict_grid(arrays, unit: ComputeUnit) -> np.ndarray:
    """ms for every (fp32 eff, int8 eff, overhead) on the grid: shape (E, E, O)."""
    macs, nbytes, int8, n_ops = arrays
    mem = nbytes / (unit.memory_gbs * 1e9)
    eff = EFF_GRID[:, None]
    t32 = np.maximum(2 * macs[None, ~int8] / (unit.fp32_gops * 1e9 * eff), mem[None, ~int8]).sum(axis=1)
    t8 = np.maximum(2 * macs[None, int8] / (unit.int8_gops * 1e9 * eff), mem[None, int8]).sum(axis=1)
    base = t32[:, None] + t8[None, :]  # (E32, E8)
    return 1e3 * (base[:, :, None] + n_ops * OVERHEAD_GRID[None, None, :] * 1e-6)


def fit(unit: ComputeUnit | None = None, use: list[int] | None = None) -> tuple[float, float, float]:
    """(fp32 efficiency, int8 efficiency, overhead µs) minimising Σ log(pred/published)² over ``use``."""
    unit = unit or load_profile(ANCHOR_PROFILE).cpu
    grids = _grids(unit)
    use = list(range(len(ANCHORS))) if use is None else use
    return _argmin(sum(np.log(grids[i] / ANCHORS[i][2]) ** 2 for i in use))


def _argmin(loss: np.ndarray) -> tuple[float, float, float]:
    i32, i8, io = np.unravel_index(int(np.argmin(loss)), loss.shape)
    return float(EFF_GRID[i32]), float(EFF_GRID[i8]), float(OVERHEAD_GRID[io])


def fit_measured(measured: list[tuple[list[OpCost], float]], unit: ComputeUnit) -> tuple[float, float, float]:
    """(fp32 efficiency, int8 efficiency, overhead µs) that best predict ``measured`` (op list, ms) pairs
    on ``unit``: the anchors' fit, for a device someone measured (``benchmarks/x86_profile.py``)."""
    if not measured:
        raise ValueError("fit_measured needs at least one (op list, ms) measurement")
    return _argmin(sum(np.log(_predict_grid(_arrays(ops), unit) / ms) ** 2 for ops, ms in measured))


def fit_int8_efficiency(
    float_ops: list[OpCost], int8_ops: list[OpCost], unit: ComputeUnit, speedup: float
) -> float:
    """The int8 efficiency at which ``unit`` (its fp32 efficiency and overhead fixed) runs ``int8_ops``
    ``speedup`` times faster than ``float_ops``: a runtime measured only as a float/int8 ratio."""
    from dataclasses import replace

    from edgekd.bench.roofline import estimate

    target = estimate(float_ops, unit).latency_ms / speedup
    grid = np.round(np.arange(0.01, 1.0001, 0.01), 2)  # finer at the bottom: int8 may be slow
    errors = [
        abs(np.log(estimate(int8_ops, replace(unit, int8_efficiency=float(e))).latency_ms / target))
        for e in grid
    ]
    return float(grid[int(np.argmin(errors))])


_GRID_CACHE: dict[tuple, list[np.ndarray]] = {}


def _grids(unit: ComputeUnit) -> list[np.ndarray]:
    key = (unit.fp32_gops, unit.int8_gops, unit.memory_gbs)
    if key not in _GRID_CACHE:
        _GRID_CACHE[key] = [_predict_grid(_arrays(ops), unit) for ops in anchor_ops()]
    return _GRID_CACHE[key]


def calibrate(unit: ComputeUnit | None = None) -> Calibration:
    """Fit on all anchors, then refit without each one to predict it (leave-one-out)."""
    unit = unit or load_profile(ANCHOR_PROFILE).cpu
    grids = _grids(unit)

    def at(i: int, params: tuple[float, float, float]) -> float:
        e32, e8, o = params
        return float(
            grids[i][
                int(np.argmin(abs(EFF_GRID - e32))),
                int(np.argmin(abs(EFF_GRID - e8))),
                int(np.argmin(abs(OVERHEAD_GRID - o))),
            ]
        )

    params = fit(unit)
    rows = []
    for i, (net, prec, ms) in enumerate(ANCHORS):
        others = [j for j in range(len(ANCHORS)) if j != i]
        loo = fit(unit, others)
        rows.append(
            {
                "network": net,
                "precision": prec,
                "published_ms": ms,
                "fitted_ms": at(i, params),
                "loo_ms": at(i, loo),
            }
        )
    return Calibration(*params, rows)


def markdown(cal: Calibration) -> str:
    lines = [
        f"fitted: fp32 efficiency {cal.fp32_efficiency:.2f}, int8 efficiency {cal.int8_efficiency:.2f}, "
        f"overhead {cal.overhead_us:.1f} µs/op",
        "",
        "| network | precision | published ms | fitted ms | error | leave-one-out ms | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in cal.rows:
        lines.append(
            f"| {r['network']} | {r['precision']} | {r['published_ms']:.0f} | {r['fitted_ms']:.1f} | "
            f"{100 * (r['fitted_ms'] / r['published_ms'] - 1):+.0f} % | {r['loo_ms']:.1f} | "
            f"{100 * (r['loo_ms'] / r['published_ms'] - 1):+.0f} % |"
        )
    fitted, loo = cal.errors(), cal.errors("loo_ms")
    lines += [
        "",
        f"mean |error|: fitted {100 * np.mean(np.abs(fitted)):.0f} %, leave-one-out "
        f"{100 * np.mean(np.abs(loo)):.0f} % (max {100 * max(map(abs, loo)):.0f} %)",
    ]
    return "\n".join(lines)


def network_table() -> str:
    lines = ["| network | MACs (M) | executed ops | bytes fp32 (MB) |", "|---|---|---|---|"]
    for name, build in NETWORKS.items():
        ops = onnx_ops(build())
        run = [op for op in ops if op.kind in ("compute", "memory")]
        lines.append(
            f"| {name} | {sum(op.macs for op in ops) / 1e6:.0f} | {len(run)} | "
            f"{sum(op.bytes for op in run) / 1e6:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(network_table())
    print()
    print(markdown(calibrate()))
