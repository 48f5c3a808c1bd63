"""Float, PTQ and QAT artifacts per target: accuracy, parity, int8 share, size and batch-1 latency.

    python benchmarks/convert.py [--targets onnx,openvino,tflite] [--runs 200] [--method "qat+kd(sface)"]

Input: the QAT checkpoints written by ``benchmarks/qat.py`` (runs/bench_qat/<target>-<method>/last.pt).
Per target, in one process (each target in its own: litert-torch's JAX and NNCF's fork don't mix):
- QAT: ``edgekd convert`` of the checkpoint (parity vs the PT2E converted model, int8 share);
- float: ``--float`` of the same checkpoint (its weights, fake quantization removed);
- PTQ: ``--ptq`` of the pretrained float student with 512 LFW training faces, the runtime's own tool
  (ORT quantize_static, NNCF, litert-torch's PT2E quantizer);
- accuracy on LFW folds 6-10 of each artifact and of the checkpoint's fake-quant model;
- latency: one face at batch 1, 1 thread, median of ``--runs`` calls (OpenVINO float with the f32
  precision hint), float, PTQ and QAT interleaved in blocks in the same process.
Writes results/convert.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import child_result, interleaved_samples, paired, quality_sets, score, write_result

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 10  # latency blocks per artifact, interleaved


def artifact_size(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def one_target(target: str, args) -> dict:
    import numpy as np

    from edgekd.convert.images import face_images
    from edgekd.convert.pipeline import convert_checkpoint
    from edgekd.errors import ConversionError
    from edgekd.paths import shared_dir
    from edgekd.runtime import load_embedder
    from edgekd.runtime.torch_backend import TorchEmbedder
    from edgekd.train.checkpoint import load_student

    shared = shared_dir()
    lfw, weights = shared / "data/lfw112", shared / "models/mobilefacenet/mobilefacenet_ms1m.pt"
    sets = quality_sets()
    ckpt = args.runs_dir / f"{target}-{args.method}" / "last.pt"
    out = args.out / target
    res: dict = {"checkpoint": str(ckpt)}
    student = load_student(ckpt)
    from edgekd.models import default_preprocess

    res["fake_quant"] = score(
        TorchEmbedder(student.model, default_preprocess(student.arch), "fake-quant"), sets
    )
    face = face_images(lfw, count=1, seed=3)
    singles = {}
    for mode, kw, src in (
        ("float", {"float_": True}, ckpt),
        ("ptq", {"ptq": True, "calib": lfw, "num_calib": args.calib}, weights),
        ("qat", {}, ckpt),
    ):
        try:
            result = convert_checkpoint(
                src, target, out / mode, parity_data=lfw, num_parity=args.parity, threads=1, **kw
            )
            artifact, failed = result.artifact, None
        except ConversionError as exc:  # checks failed: the artifact and its manifest are still there
            artifact, failed = None, str(exc).splitlines()[0]
        manifest = json.loads((out / mode / "manifest.json").read_text())
        artifact = artifact or out / mode / manifest["artifact"]
        checks = {
            "parity": manifest["parity"],
            "parity_float": manifest["extra"].get("parity_vs_float_simulation"),
            "int8": manifest["int8_share"],
        }
        singles[mode] = load_embedder(artifact, threads=1)
        res[mode] = {
            "artifact": str(artifact),
            **score(load_embedder(artifact, threads=2), sets),
            "size_bytes": artifact_size(artifact),
            "failed": failed,
            **checks,
        }
    # Latency interleaved in blocks, so float and int8 see the same machine state (2 shared cores).
    samples = interleaved_samples(singles, face, args.runs, ROUNDS)
    for mode, values in samples.items():
        res[mode]["latency_ms"] = float(np.median(values))
        res[mode]["latency_runs"] = len(values)
    return res


def _acc(s: dict) -> str:
    return f"{s['accuracy']:.2f} ± {s['std']:.2f}"


def table(results: dict) -> str:
    rows = [
        "| target | artifact | LFW 6-10 % | vs fake-quant | CFP-FP % | vs fake-quant "
        "| parity mean / min cos (reference) "
        "| vs float32 model | int8 MACs | size KB | latency ms (b1, 1 thr) | int8 speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target, res in results.items():
        fq = res["fake_quant"]
        rows.append(
            f"| {target} | QAT fake-quant (PyTorch) | {_acc(fq['lfw'])} | | {_acc(fq['cfp_fp'])} "
            "| | | | | | | |"
        )
        for mode in ("float", "ptq", "qat"):
            r = res[mode]
            p, i8 = r["parity"], r["int8"]
            parity = f"{p['mean_cosine']:.5f} / {p['min_cosine']:.5f} ({p['reference']})" + (
                " FAIL" if r["failed"] and mode == "qat" else ""
            )
            pf = r.get("parity_float")
            floor = f"{pf['mean_cosine']:.5f} / {pf['min_cosine']:.5f}" if pf else ""
            share = f"{100 * i8['int8_share']:.1f} %" if i8 else "-"
            speed = f"×{res['float']['latency_ms'] / r['latency_ms']:.2f}" if mode != "float" else ""
            rows.append(
                f"| {target} | {mode} | {_acc(r['lfw'])} | {paired(r['lfw'], fq['lfw'])} "
                f"| {_acc(r['cfp_fp'])} | {paired(r['cfp_fp'], fq['cfp_fp'])} | {parity} | {floor} | {share} "
                f"| {r['size_bytes'] / 1024:.0f} | {r['latency_ms']:.2f} "
                f"| {speed} |"
            )
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="onnx,openvino,tflite")
    parser.add_argument("--method", default="qat+kd(sface)", help="which benchmarks/qat.py run to convert")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench_qat"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_convert"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--calib", type=int, default=512)
    parser.add_argument("--parity", type=int, default=256)
    parser.add_argument("--name", default="convert", help="result file stem in benchmarks/results/")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # internal: one target, JSON to stdout
    args = parser.parse_args()
    if args.single:
        print("RESULT " + json.dumps(one_target(args.single, args)))
        return
    results = {}
    for target in args.targets.split(","):
        results[target] = child_result([__file__, "--single", target, *sys.argv[1:]])
        body = (
            f"QAT checkpoints of `benchmarks/qat.py` ({args.method}); PTQ from the pretrained float student "
            f"({args.calib} LFW training faces); accuracy on LFW folds 6-10 (3,000 pairs) and CFP-FP (3,500 "
            "pairs, 10 folds), `vs`: mean change in pp (folds better/worse); parity on "
            f"{args.parity} LFW faces vs the PyTorch model each artifact came from (QAT: the converted model "
            "in the runtime's integer arithmetic where edgekd has it, else in float32, which is also "
            "reported; PTQ: vs the float model, reported, not enforced); latency: batch 1, 1 thread, "
            "median of "
            f"{args.runs} runs, this machine.\n\n" + table(results)
        )
        write_result(args.name, "Float vs PTQ vs QAT artifacts per runtime", body, {"results": results})


if __name__ == "__main__":
    main()
