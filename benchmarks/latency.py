"""Latency of float and int8 artifacts on all three runtimes, x86 profile, on this machine.

    python benchmarks/latency.py [--artifacts artifacts/] [--runs 100] [--pairs DIR --folds 6-10]

One row per case below (runtime × precision). Cases whose file does not exist yet (edgekd's own int8
artifacts and the OpenVINO / TFLite exports arrive with later stages), or whose runtime has no runner
yet, are listed as "not yet available" — no number is made up. The measured rows come from
``edgekd.bench.bench`` (the same runner as ``edgekd bench``); the estimate column is the x86 profile's
roofline, not a measurement. Writes results/latency.{md,json,png} and appends results/latency.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, write_result

from edgekd.bench import bench, report
from edgekd.formats import suffixes
from edgekd.paths import shared_dir

REPO = Path(__file__).resolve().parents[1]
PROFILE = "x86"

# runtime, precision, where the file comes from ("shared:" = ../shared, else relative to --artifacts),
# and what produces it
CASES = (
    ("onnxruntime", "fp32", "shared:models/sface/sface_2021dec_fp32.onnx", "SFace teacher (fp32)"),
    (
        "onnxruntime",
        "int8 weights",
        "shared:models/sface/face_recognition_sface_2021dec_int8bq.onnx",
        "SFace as published (int8 block-quantized weights)",
    ),
    ("onnxruntime", "fp32", "student_fp32.onnx", "edgekd convert --target onnx"),
    ("onnxruntime", "int8", "student_int8.onnx", "edgekd convert --target onnx (QDQ int8)"),
    ("openvino", "fp32", "student_fp32.xml", "edgekd convert --target openvino"),
    ("openvino", "int8", "student_int8.xml", "edgekd convert --target openvino (int8)"),
    ("tflite", "fp32", "student_fp32.tflite", "edgekd convert --target tflite"),
    ("tflite", "int8", "student_int8.tflite", "edgekd convert --target tflite (int8)"),
)


def resolve(ref: str, artifacts: Path) -> Path | None:
    if ref.startswith("shared:"):
        root = shared_dir()
        return root / ref.removeprefix("shared:") if root else None
    return artifacts / ref


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--artifacts", type=Path, default=REPO / "artifacts", help="folder of edgekd's exports"
    )
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pairs", help="also measure accuracy on these pairs (e.g. ../shared/data/lfw112)")
    parser.add_argument("--folds", help="fold selection for --pairs, e.g. 6-10")
    args = parser.parse_args()

    rows, runnable = [], []
    for runtime, precision, ref, source in CASES:
        path = resolve(ref, args.artifacts)
        if path is None or not path.is_file():
            status = f"not yet available ({source})"
        elif path.suffix not in suffixes():
            status = f"not yet available: no {runtime} runner in edgekd.bench yet ({path.name})"
        else:
            status = "measured"
            runnable.append(str(path))
        rows.append((runtime, precision, path, status))

    run = (
        bench(
            runnable,
            PROFILE,
            runs=args.runs,
            warmup=args.warmup,
            batch=args.batch,
            pairs=args.pairs,
            folds=args.folds,
        ).to_dict()
        if runnable
        else None
    )
    by_path = {r["artifact"]: r for r in run["results"]} if run else {}

    header = [
        "runtime",
        "precision",
        "artifact",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean ± std ms",
        f"img/s @ {args.batch}",
        "load ms",
        "first ms",
        "peak RSS MB",
        "accuracy %",
        f"estimate {PROFILE} ms",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for runtime, precision, path, status in rows:
        r = by_path.get(str(path))
        if r is None:
            lines.append(f"| {runtime} | {precision} | {status} |" + " — |" * (len(header) - 3))
            continue
        lat = r["latency"]
        acc = r["accuracy"]["metrics"] if r.get("accuracy") else None
        cells = [
            runtime,
            precision,
            path.name,
            f"{lat['p50_ms']:.2f}",
            f"{lat['p90_ms']:.2f}",
            f"{lat['p99_ms']:.2f}",
            f"{lat['mean_ms']:.2f} ± {lat['std_ms']:.2f}",
            f"{r['throughput']['images_per_s']:.1f}",
            f"{r['load_ms']:.0f}",
            f"{r['first_ms']:.1f}",
            f"{r['memory']['peak_rss_mb']:.0f}",
            f"{100 * acc['accuracy']:.2f} ± {100 * acc['accuracy_std']:.2f}" if acc else "—",
            f"{r['estimate']['latency_ms']:.1f}" if r.get("estimate") else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")

    body = []
    if run:
        first = run["results"][0]
        body += [
            f"**Measured on {run['measured_on']}**, {first['threads']} threads (profile `{PROFILE}` wants "
            f"{run['profile']['threads']}), {first['runtime']['runtime']} {first['runtime']['version']} "
            f"{', '.join(first['runtime']['providers'])}; {args.warmup} warm-up + {args.runs} timed runs at "
            "batch 1 (single-stream), throughput at batch "
            f"{args.batch}. The estimate column is the `{PROFILE}` profile's roofline (4 cores @ 3.0 GHz, "
            "AVX2), not this machine and not a measurement (docs/profiles.md).",
            "",
        ]
    body += ["\n".join(lines)]
    if run:
        notes = [f"{r['name']}: {n}" for r in run["results"] for n in r["notes"]] + run["notes"]
        body += ["", *[f"- {n}" for n in notes], "", "![latency distribution](latency.png)"]
        RESULTS.mkdir(parents=True, exist_ok=True)
        report.plot_latency([run], RESULTS / "latency.png")
    payload = {
        "profile": PROFILE,
        "cases": [
            {"runtime": rt, "precision": pr, "artifact": str(p) if p else None, "status": st}
            for rt, pr, p, st in rows
        ],
        "bench": run,
    }
    md = write_result("latency", f"Latency on this machine, profile {PROFILE}", "\n".join(body), payload)
    if run:  # one JSON line per measured artifact, appended: the history of this benchmark
        stamp = json.loads((RESULTS / "latency.json").read_text())
        with open(RESULTS / "latency.jsonl", "a") as f:
            for r in run["results"]:
                f.write(
                    json.dumps(
                        {
                            "date": stamp["date"],
                            "git": stamp["git"],
                            "machine": stamp["machine"],
                            "packages": {k: v for k, v in stamp["host"]["packages"].items() if v},
                            "artifact": r["name"],
                            "profile": PROFILE,
                            "threads": r["threads"],
                            "warmup": args.warmup,
                            "runs": args.runs,
                            "p50_ms": r["latency"]["p50_ms"],
                            "p90_ms": r["latency"]["p90_ms"],
                            "images_per_s": r["throughput"]["images_per_s"],
                        }
                    )
                    + "\n"
                )
    print(md.read_text())


if __name__ == "__main__":
    main()
