"""How far apart are equally valid computations of one int8 network? (LFW folds 6-10)

    python benchmarks/int8_draws.py [--targets onnx,tflite] [--method "qat+kd(sface)"] [--all]

The acceptance of ``edgekd convert`` compares the int8 artifact's accuracy with the fake-quant model's.
Both compute the same int8 network (same weights, scales, zero points), in different arithmetic:
- fake-quant (PyTorch): the QAT model in eval mode, float32 fake quantization (with ``--all`` also in
  contiguous memory: another float32 summation order);
- converted (float32): the PT2E converted model (``dequantize → op → quantize``) in float32;
- integer twin: the converted model in the target runtime's integer arithmetic (with ``--all`` also the
  other runtime's; :mod:`edgekd.quant.integer_reference`); the target's own twin is bit-exact to its artifact
  (parity 1.00000 in ``results/convert.md``), so its accuracy *is* the artifact's.
Per computation: accuracy, and the mean / min per-image cosine to the fake-quant model (256 faces).
Input: the QAT checkpoints of ``benchmarks/qat.py``. Writes results/int8_draws.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

REPO = Path(__file__).resolve().parents[1]
TWINS = {"onnx": "onnxruntime-mlas-x86", "tflite": "litert-xnnpack-x86"}


class _Contiguous:
    """A module wrapper feeding contiguous (NCHW) memory: another float32 summation order."""

    def __new__(cls, module):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                object.__setattr__(self, "inner", module)  # converted graphs refuse .eval()

            def forward(self, x):
                return self.inner(x.contiguous())

        return Wrapper()


def computations(target: str, ckpt: Path, all_rows: bool) -> tuple[dict, object]:
    from edgekd.models import default_preprocess
    from edgekd.quant import convert, set_mode
    from edgekd.quant.integer_reference import IntegerReference
    from edgekd.train.checkpoint import load_student

    student = load_student(ckpt)
    set_mode(student.model, train=False)
    converted = convert(student.model, student.target)
    set_mode(converted, train=False)
    own = TWINS[target]
    models = {
        "fake-quant (PyTorch)": student.model,
        "converted (float32)": converted,
        f"integer twin {own} (= the artifact)": IntegerReference(converted, own),
    }
    if all_rows:
        models["fake-quant (PyTorch, contiguous memory)"] = _Contiguous(student.model)
        models |= {f"integer twin {o}": IntegerReference(converted, o) for o in TWINS.values() if o != own}
    return models, default_preprocess(student.arch)


def one_target(target: str, args) -> dict:
    import numpy as np

    from edgekd.convert.images import face_images
    from edgekd.data import load_verification_set
    from edgekd.eval import evaluate
    from edgekd.paths import shared_dir
    from edgekd.runtime.torch_backend import TorchEmbedder

    lfw = shared_dir() / "data/lfw112"
    vset = load_verification_set(lfw, "6-10")
    ckpt = args.runs_dir / f"{target}-{args.method}" / "last.pt"
    models, pre = computations(target, ckpt, args.all)
    faces = face_images(lfw, count=args.faces, seed=2)
    rows, base = [], None
    for name, model in models.items():
        embedder = TorchEmbedder(model, pre, name)
        emb = embedder.embed(faces)
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        base = emb if base is None else base
        cos = (emb * base).sum(1)
        acc = evaluate(embedder, vset, progress=False)
        rows.append(
            {
                "computation": name,
                "accuracy": 100 * acc.metrics.accuracy,
                "cos_mean": float(cos.mean()),
                "cos_min": float(cos.min()),
            }
        )
        print(f"{target:7s} {name:48s} {rows[-1]['accuracy']:.2f}  cos {cos.mean():.5f}", flush=True)
    return {"checkpoint": str(ckpt), "rows": rows}


def table(results: dict) -> str:
    out = [
        "| target | computation | accuracy % | Δ vs fake-quant, pp | cos to fake-quant mean / min |",
        "|---|---|---|---|---|",
    ]
    for target, res in results.items():
        ref = res["rows"][0]["accuracy"]
        for r in res["rows"]:
            out.append(
                f"| {target} | {r['computation']} | {r['accuracy']:.2f} | {r['accuracy'] - ref:+.2f} | "
                f"{r['cos_mean']:.5f} / {r['cos_min']:.5f} |"
            )
        accs = [r["accuracy"] for r in res["rows"]]
        out.append(f"| {target} | spread (max − min) | {max(accs) - min(accs):.2f} | | |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="onnx,tflite")
    parser.add_argument("--method", default="qat+kd(sface)")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs/bench_qat")
    parser.add_argument("--faces", type=int, default=256)
    parser.add_argument("--all", action="store_true", help="also contiguous memory and the other twin")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    results = {t: one_target(t, args) for t in args.targets.split(",")}
    body = (
        f"QAT checkpoints `{args.method}` of `benchmarks/qat.py`; accuracy on LFW folds 6-10 (3,000 pairs: "
        f"0.1 pp = 3 pairs); cosine on {args.faces} LFW faces. Every row computes the same int8 network "
        "(same weights, scales and zero points); they differ only in arithmetic: float32 fake "
        "quantization, the converted model in float32, a runtime's integer arithmetic. The target's own "
        "twin is bit-exact to its artifact.\n\n" + table(results)
    )
    print(write_result("int8_draws", "Equally valid computations of one int8 network", body, results))


if __name__ == "__main__":
    main()
