"""The distilled student as int8 artifacts: ``distill-qat`` per target, converted, scored on LFW and CFP-FP.

    python benchmarks/recipe_int8.py [--recipe l2] [--targets onnx,openvino,tflite] [--steps 100]

Input: the float student of ``benchmarks/recipes.py``'s run ``--recipe`` (runs/recipes/<recipe>/last.pt).
Per target, in a fresh process (litert-torch's JAX and NNCF's fork don't mix):
1. ``Distiller`` (what ``edgekd distill-qat --target T`` runs) from that student, with the student itself
   as the teacher (L2 to its own float embeddings: same space, no projection, no margin head), on the
   same held-out-clean training data; observers freeze at 70 % of the steps;
2. the fake-quant model scored on LFW folds 6-10 and CFP-FP;
3. ``edgekd convert`` (parity on 256 LFW faces against the twin of this host's ISA);
4. the int8 artifact scored on LFW folds 6-10 and CFP-FP in its runtime, on this host.
Writes results/<name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import child_result, paired, quality_sets, score, write_result

SELF_KD = [{"name": "l2", "weight": 50.0}]


def qat_config(recipe_ckpt: Path, target: str, steps: int, out: Path) -> dict:
    from edgekd.train.checkpoint import read_checkpoint

    cfg = dict(read_checkpoint(recipe_ckpt)["config"])
    cfg.update(
        student_init=str(recipe_ckpt),
        teacher=str(recipe_ckpt),
        teacher_preprocess=None,
        losses=SELF_KD,
        steps=steps,
        optim={**cfg["optim"], "lr": 2e-5, "warmup_steps": max(1, steps // 10), "head_only_steps": 0},
        qat={"target": target, "freeze_bn_step": 0, "freeze_observers_step": int(steps * 0.7)},
        out=str(out / target),
        checkpoint_every=steps,
        val_pairs=None,
    )
    return cfg


def one_target(args: argparse.Namespace) -> dict:
    """Train, score, convert and score again, for ``args.one``."""
    import torch

    from edgekd.config import from_dict
    from edgekd.convert.pipeline import convert_checkpoint
    from edgekd.isa import host_isa
    from edgekd.models import default_preprocess
    from edgekd.paths import shared_dir
    from edgekd.runtime import load_embedder
    from edgekd.runtime.torch_backend import TorchEmbedder
    from edgekd.train.checkpoint import load_student
    from edgekd.train.config import DistillConfig
    from edgekd.train.trainer import Distiller

    torch.set_num_threads(args.threads)
    recipe = args.runs / args.recipe / "last.pt"
    cfg = from_dict(DistillConfig, qat_config(recipe, args.one, args.steps, args.out), "recipe_int8.py")
    trainer = Distiller(cfg, progress=False)
    result = trainer.run()
    sets = quality_sets()
    student = load_student(result.last_checkpoint)
    fq = score(TorchEmbedder(student.model, default_preprocess(student.arch), name="fake-quant"), sets)
    converted = convert_checkpoint(
        str(result.last_checkpoint),
        out=str(Path(cfg.out) / "artifact"),
        parity_data=str(shared_dir() / "data/lfw112"),
        threads=args.threads,
    )
    manifest = json.loads(Path(converted.manifest).read_text())
    int8 = score(load_embedder(converted.artifact, threads=args.threads), sets)
    return {
        "target": args.one,
        "train_seconds": result.seconds,
        "fake_quant": fq,
        "int8": int8,
        "artifact": str(converted.artifact),
        "parity": manifest.get("parity"),
        "isa": host_isa(runtime=args.one),
    }


def _parity(p: dict | None) -> str:
    if not p:
        return "-"
    verdict = "" if p.get("passed") else " FAIL"
    return f"{p['mean_cosine']:.5f} / {p['min_cosine']:.5f}{verdict}"


def table(rows: list[dict], float_kd: dict, pretrained: dict | None) -> str:
    lines = [
        "| target (ISA) | model | LFW 6-10 % | CFP-FP % | CFP-FP vs fake-quant | CFP-FP vs float KD "
        "| CFP-FP vs pretrained | parity mean / min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label, s in (("fake-quant (PyTorch)", r["fake_quant"]), ("int8 artifact", r["int8"])):
            lfw, cfp = s["lfw"], s["cfp_fp"]
            lines.append(
                f"| {r['target']} ({r['isa']}) | {label} | {lfw['accuracy']:.2f} ± {lfw['std']:.2f} "
                f"| {cfp['accuracy']:.2f} ± {cfp['std']:.2f} | {paired(cfp, r['fake_quant']['cfp_fp'])} "
                f"| {paired(cfp, float_kd['cfp_fp'])} "
                f"| {paired(cfp, pretrained and pretrained['cfp_fp'])} "
                f"| {_parity(r['parity']) if label == 'int8 artifact' else ''} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="l2", help="a run of benchmarks/recipes.py")
    parser.add_argument("--targets", default="onnx,openvino,tflite")
    parser.add_argument("--steps", type=int, default=100, help="QAT steps per target")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--out", type=Path, default=Path("runs/recipes_int8"))
    parser.add_argument("--name", default="recipe_int8")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child: one target
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_target(args)), flush=True)
        return
    recipes = json.loads((args.runs / "recipes.json").read_text())
    if args.recipe not in recipes:
        sys.exit(f"run {args.recipe!r} is not in {args.runs / 'recipes.json'}: run benchmarks/recipes.py")
    rows = []
    for target in args.targets.split(","):
        flags = ["--recipe", args.recipe, "--steps", str(args.steps), "--threads", str(args.threads)]
        flags += ["--runs", str(args.runs), "--out", str(args.out), "--one", target]
        rows.append(child_result([str(Path(__file__).resolve()), *flags]))
        print(target, {k: round(v["accuracy"], 2) for k, v in rows[-1]["int8"].items()}, flush=True)
    float_kd = recipes[args.recipe]["scores"]
    pretrained = recipes.get("pretrained", {}).get("scores")
    body = (
        f"Float student: `benchmarks/recipes.py` run `{args.recipe}` (LFW {float_kd['lfw']['accuracy']:.2f}, "
        f"CFP-FP {float_kd['cfp_fp']['accuracy']:.2f}). QAT: {args.steps} steps of `Distiller` per target "
        "from it, batch 64, AdamW lr 2e-5, L2 to its own float embeddings, BN folded, observers frozen "
        "at 70 %; then `edgekd convert` and the artifact in its runtime on this host (ISA in the first "
        "column). `vs`: mean change in pp (CFP-FP folds better/worse).\n\n"
        + table(rows, float_kd, pretrained)
    )
    write_result(args.name, f"Distilled student ({args.recipe}) as int8 artifacts", body, {"rows": rows})


if __name__ == "__main__":
    main()
