"""Which rule does OpenVINO use to fold a PT2E per-channel weight quantization into int8 constants?

    python benchmarks/openvino_weights.py [--method "qat+kd(sface)"]

Input: the QAT checkpoint of ``benchmarks/qat.py`` for the openvino target and its artifact from
``benchmarks/convert.py`` (runs/bench_convert/openvino/qat/model.xml). For every weight tensor, the
IR's int8 constant and its per-channel scale constant are compared with candidate rules computed from
the PT2E converted model's float weights, scales and zero points: the evidence for the weight rule
of edgekd's OpenVINO integer twin (``OpenVinoCpuX86`` in edgekd/quant/runtime_arithmetic.py; see
docs/convert.md). Writes results/openvino_weights.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

REPO = Path(__file__).resolve().parents[1]


def weight_rules(w, s, zp, qmin: int, qmax: int) -> dict:
    """Candidate int8 values and scale constants (numpy, float32 unless said)."""
    import numpy as np

    f32 = np.float32
    shape = (-1,) + (1,) * (w.ndim - 1)
    s = s.astype(f32).reshape(shape)
    lo = ((f32(qmin) - zp.astype(f32).reshape(shape)) * s).astype(f32)
    hi = ((f32(qmax) - zp.astype(f32).reshape(shape)) * s).astype(f32)
    values = {
        "round(w / s), float64": np.round(w.astype(np.float64) / s),
        "round(w * (1/s)), float32 (PT2E)": np.round(w * (f32(1) / s)),
        "FakeQuantize: round((w - lo) / (hi - lo) * 255) + qmin, float32": np.round(
            ((w - lo) / (hi - lo) * f32(qmax - qmin)).astype(f32)
        )
        + qmin,
    }
    values = {k: np.clip(v, qmin, qmax) for k, v in values.items()}
    from_range = ((hi - lo) / f32(qmax - qmin)).astype(f32).ravel()
    scales = {"s (PT2E)": s.ravel(), "(hi - lo) / 255, float32": from_range}
    return {"values": values, "scales": scales}


def ir_weights(xml: Path) -> list[tuple]:
    """(int8 constant, scale constant) of every weight in the IR: Constant(i8) → Convert → Multiply."""
    import openvino as ov

    out = []
    for op in ov.Core().read_model(str(xml)).get_ordered_ops():
        if op.get_type_name() != "Convert" or op.input_value(0).get_node().get_type_name() != "Constant":
            continue
        consumer = next(iter(op.output(0).get_target_inputs())).get_node()
        scale = [consumer.input_value(k).get_node() for k in range(2)]
        scale = next(n for n in scale if n.get_type_name() == "Constant")
        out.append((op.input_value(0).get_node().get_data(), scale.get_data().ravel()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="qat+kd(sface)")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs")
    args = parser.parse_args()
    import torch

    from edgekd.quant import convert, set_mode
    from edgekd.train.checkpoint import load_student

    student = load_student(args.runs_dir / "bench_qat" / f"openvino-{args.method}" / "last.pt")
    ref = convert(student.model, student.target)
    set_mode(ref, train=False)
    params = dict(ref.named_parameters()) | dict(ref.named_buffers())
    ir = ir_weights(args.runs_dir / "bench_convert/openvino/qat/model.xml")
    used: set[int] = set()
    value_miss: dict[str, int] = {}
    scale_miss: dict[str, int] = {}
    total_w = total_s = 0
    quantize = torch.ops.quantized_decomposed.quantize_per_channel.default
    for node in (n for n in ref.graph.nodes if n.target == quantize):
        w, s, zp = (params[a.target].detach().numpy() for a in node.args[:3])
        rules = weight_rules(w, s, zp, int(node.args[4]), int(node.args[5]))
        # the IR keeps its own order: match by shape and value (the closest constant not yet used)
        ref_vals = rules["values"]["round(w / s), float64"]
        j = min(
            (k for k, (q, _) in enumerate(ir) if k not in used and q.shape == w.shape),
            key=lambda k: int((ir[k][0] != ref_vals).sum()),
        )
        used.add(j)
        q_ir, s_ir = ir[j]
        for name, v in rules["values"].items():
            value_miss[name] = value_miss.get(name, 0) + int((v != q_ir).sum())
        for name, v in rules["scales"].items():
            scale_miss[name] = scale_miss.get(name, 0) + int((v != s_ir).sum())
        total_w += q_ir.size
        total_s += s_ir.size
    rows = ["| constant | rule | elements that differ from the IR |", "|---|---|---|"]
    what = f"int8 weight ({total_w:,} in {len(used)} tensors)"
    rows += [f"| {what} | {k} | {v} |" for k, v in value_miss.items()]
    rows += [f"| per-channel scale ({total_s:,}) | {k} | {v} |" for k, v in scale_miss.items()]
    body = (
        f"Checkpoint `openvino-{args.method}`, artifact `runs/bench_convert/openvino/qat/model.xml`. "
        "A rule with 0 differences is the one OpenVINO applied.\n\n" + "\n".join(rows)
    )
    payload = {"weights": total_w, "scales": total_s, "value_miss": value_miss, "scale_miss": scale_miss}
    print(write_result("openvino_weights", "OpenVINO's int8 weight folding vs PT2E", body, payload))


if __name__ == "__main__":
    main()
