"""Every KD method under the same budget, init and data, on real faces.

    python benchmarks/kd_methods.py [--steps 300] [--methods none,kd,gkd,...] [--threads 2]

Teacher SFace (fp32 ONNX); student MobileFaceNet initialised from ../shared's MS1M weights; training on
LFW + celeba112 (``recipes.base_config``: LFW folds 6-10's identities and the CFP celebrities held out of
both); test on LFW folds 6-10 (3,000 pairs, 5-fold threshold selection) and CFP-FP (10 folds), per fold
against the no-KD run. Every method = CosFace margin loss + its KD term(s) (``edgekd distill --method M``),
trained by the same ``Distiller`` with the same steps, batch, optimiser, seed, heads-first phase (the
first third of the steps on a frozen backbone) and flip augmentation (the teacher embedding of the
flipped image comes from the cache). ``cakd`` needs a ViT teacher and has its own benchmark (cakd.py).
Writes results/kd_methods.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import held_out_names, paired, quality_sets, score, write_result
from recipes import base_config, student_scores
from recipes import train as train_run

from edgekd.losses.methods import METHODS as KD_METHODS
from edgekd.losses.methods import as_config, method_losses
from edgekd.losses.teacher_logits import centre_logits, class_centres
from edgekd.paths import shared_dir
from edgekd.runtime import load_embedder
from edgekd.train.batches import build_train_set
from edgekd.train.teacher_cache import TeacherCache

METHODS = [name for name in KD_METHODS if name != "cakd"]  # cakd: a ViT teacher, see cakd.py


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--head-only-steps", type=int, default=None, help="default: a third of --steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".cache/teacher"))
    parser.add_argument("--name", default="kd_methods", help="result file name in benchmarks/results/")
    parser.add_argument("--out", type=Path, default=Path("runs/kd_methods"))
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or EDGEKD_SHARED) with data/lfw112 and the models")
    torch.set_num_threads(args.threads)
    teacher_file = shared / "models/sface/sface_2021dec_fp32.onnx"
    base = base_config(shared, args.steps, args.threads)
    head_only = args.steps // 3 if args.head_only_steps is None else args.head_only_steps
    base.update(batch_size=args.batch_size, cache_dir=str(args.cache))
    base["optim"] = {**base["optim"], "head_only_steps": head_only}
    train_set = build_train_set(
        base["data"], base["exclude_pairs"], exclude_folds="6-10", exclude_names=held_out_names()
    )
    ds, labels, num_classes = train_set.dataset, train_set.labels, train_set.num_classes
    teacher = load_embedder(teacher_file, threads=args.threads)
    # the entry the trainer opens (same teacher file, dataset fingerprint and flip)
    cache = TeacherCache.open_or_build(teacher, ds, args.cache, flip=True, teacher_file=teacher_file)
    t_emb = np.array(cache.embeddings)
    centres = class_centres(t_emb, labels, num_classes)
    singletons = int((np.bincount(labels) == 1).sum())
    # how much "dark knowledge" the teacher's class-centre logits carry: mass on the target class at T=4
    soft = torch.softmax(centre_logits(torch.from_numpy(t_emb), centres, 64.0) / 4.0, dim=1)
    target_mass = float(soft[torch.arange(len(labels)), torch.from_numpy(labels)].mean())
    sets = quality_sets()
    rows = {"teacher SFace (reference)": (score(teacher, sets), 0.0)}
    pretrained = student_scores(None, sets)
    rows["student, pretrained, no training"] = (pretrained, 0.0)
    per_method = {}
    for method in args.methods.split(","):
        specs = method_losses(method)
        cfg = {**base, "losses": as_config(specs), "out": str(args.out / method)}
        ckpt, wall = train_run(cfg)  # the trainer `edgekd distill` runs
        scores = student_scores(ckpt, sets)
        rows[f"CosFace + {method}" if method != "none" else "CosFace only (no KD)"] = (scores, wall)
        per_method[method] = {"specs": as_config(specs), "train_seconds": wall, "scores": scores}
        print(method, {k: round(v["accuracy"], 2) for k, v in scores.items()}, f"{wall:.0f} s", flush=True)

    lines = [
        "| run | LFW 6-10 % | vs no KD | vs pretrained | CFP-FP % | vs no KD | vs pretrained "
        "| train wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    no_kd = per_method.get("none", {}).get("scores")
    for name, (s, wall) in rows.items():
        cells = []
        for key in ("lfw", "cfp_fp"):
            cells += [
                f"{s[key]['accuracy']:.2f} ± {s[key]['std']:.2f}",
                paired(s[key], no_kd and no_kd[key]),
                paired(s[key], pretrained[key]),
            ]
        lines.append(f"| {name} | {' | '.join(cells)} | {wall:.0f} |")
    body = (
        f"Train: {len(ds)} LFW + CelebA images of {num_classes} identities, not in LFW folds 6-10 and "
        f"not CFP celebrities; test: LFW folds 6-10 ({sets['lfw'].num_pairs} pairs, thresholds on the "
        f"other 4 folds) and CFP-FP ({sets['cfp_fp'].num_pairs} pairs, 10 folds). `vs`: mean change in pp "
        f"(folds better/worse). Every method through `Distiller` (what `edgekd distill` runs): "
        f"{args.steps} steps x {args.batch_size} ({head_only} heads-only steps on a frozen backbone first), "
        "AdamW lr 1e-4 (heads 1e-2), 30 warm-up steps, cosine, flip with the teacher's flipped embedding.\n"
        f"{singletons} of {num_classes} training identities have one image; the teacher's class-centre "
        f"logits put on average {target_mass:.2f} of their T=4 probability on the target class.\n\n"
        + "\n".join(lines)
    )
    md = write_result(
        args.name,
        "KD methods, same budget (SFace → MobileFaceNet, LFW + CelebA)",
        body,
        {
            "budget": {"steps": args.steps, "batch_size": args.batch_size, "optim": base["optim"]},
            "data": base["data"],
            "methods": per_method,
            "references": {name: s for name, (s, _) in list(rows.items())[:2]},
        },
    )
    print(md.read_text())


if __name__ == "__main__":
    main()
