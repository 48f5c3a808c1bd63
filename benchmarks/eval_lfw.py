"""Reference accuracies on LFW (10 folds, insightface protocol) of the teacher and the pretrained student.

    python benchmarks/eval_lfw.py [--lfw ../shared/data/lfw112] [--threads 2]

Checks the evaluator against published numbers (SFace 99.40 %, MobileFaceNet 98.90 % here), loads the
raw int8bq SFace file, times a full 6,000-pair evaluation, and verifies the .bin writer → reader route
gives the same accuracy as the folder + pairs.txt route. Writes results/eval_lfw.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

from edgekd.data import load_verification_set
from edgekd.data.verification_bin import write_verification_bin
from edgekd.eval import evaluate
from edgekd.eval.report import results_table
from edgekd.paths import shared_dir
from edgekd.runtime import load_embedder

MODELS = (
    "models/sface/sface_2021dec_fp32.onnx",
    "models/sface/face_recognition_sface_2021dec_int8bq.onnx",
    "models/mobilefacenet/mobilefacenet_ms1m.pt",
)


def main() -> None:
    shared = shared_dir()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lfw", type=Path, default=shared / "data/lfw112" if shared else None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.lfw is None or shared is None:
        sys.exit("needs ../shared (or EDGEKD_SHARED) with data/lfw112 and the models")

    vset = load_verification_set(args.lfw)
    results, timings = [], []
    for rel in MODELS:
        embedder = load_embedder(shared / rel, threads=args.threads)
        res = evaluate(embedder, vset, flip=True)
        results.append(res)
        timings.append((embedder.name, res.num_images, res.embed_seconds / 2))  # flip = 2 passes

    # .bin round trip: same pairs, written and read back, evaluated with the student
    with tempfile.TemporaryDirectory() as tmp:
        bin_path = Path(tmp) / "lfw.bin"
        write_verification_bin(bin_path, vset)
        bin_set = load_verification_set(bin_path)
        student = load_embedder(shared / MODELS[2], threads=args.threads)
        bin_res = evaluate(student, bin_set)
    folder_acc = results[2].metrics.accuracy
    same_folds = bin_res.metrics.fold_accuracies == results[2].metrics.fold_accuracies

    body = [
        f"Pairs: {vset.name}, {vset.num_pairs} pairs, 10 folds (threshold chosen on the other 9), "
        f"{args.threads} threads.",
        "",
        results_table(results),
        "",
        "| model | images | seconds (one pass, no flip) | images/s |",
        "|---|---|---|---|",
        *[f"| {n} | {k} | {s:.1f} | {k / s:.1f} |" for n, k, s in timings],
        "",
        f".bin round trip (MobileFaceNet, no flip): folder + pairs.txt {100 * folder_acc:.2f} %, "
        f"written .bin read back {100 * bin_res.metrics.accuracy:.2f} % "
        f"({'identical' if same_folds else 'DIFFERENT'} per-fold accuracies).",
        "",
        *[f"note: {n}" for n in results[0].metrics.notes],
    ]
    md = write_result(
        "eval_lfw",
        "LFW verification: teacher and pretrained student (insightface protocol)",
        "\n".join(body),
        {"results": [r.to_dict() for r in results], "bin_round_trip": bin_res.to_dict()},
    )
    print(md.read_text())


if __name__ == "__main__":
    main()
