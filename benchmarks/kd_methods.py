"""Every KD method under the same budget, init and data, on real faces.

    python benchmarks/kd_methods.py [--steps 300] [--methods none,kd,gkd,...] [--threads 2]

Teacher SFace (fp32 ONNX); student MobileFaceNet initialised from ../shared's MS1M weights; training on
every LFW image of the identities that do NOT occur in folds 6-10; test on folds 6-10 (3,000 pairs,
5-fold threshold selection). Every method = CosFace margin loss + its KD term(s), same steps, batch,
optimiser, seed and flip augmentation (the teacher embedding of the flipped image comes from the cache).
Writes results/kd_methods.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

from edgekd.data import load_verification_set
from edgekd.data.identity_folder import IdentityFolderDataset
from edgekd.data.lfw import identities_in_pairs
from edgekd.eval import evaluate
from edgekd.losses import build_objective
from edgekd.losses.methods import MARGIN
from edgekd.losses.methods import METHODS as KD_METHODS
from edgekd.losses.teacher_logits import centre_logits, class_centres
from edgekd.models import create_model, default_preprocess, load_state_dict_file
from edgekd.paths import shared_dir
from edgekd.runtime import load_embedder
from edgekd.runtime.torch_backend import TorchEmbedder
from edgekd.train.loop import Budget, train
from edgekd.train.teacher_cache import TeacherCache

METHODS = {name: list(specs) for name, specs in KD_METHODS.items()}


def load_train_set(lfw: Path, test_folds: str) -> tuple[IdentityFolderDataset, np.ndarray, np.ndarray]:
    test = load_verification_set(lfw, test_folds)
    ds = IdentityFolderDataset(lfw, exclude=identities_in_pairs(test))
    images = np.stack([ds[i].image for i in range(len(ds))])  # (N, 112, 112, 3): ~6.9k faces fit in RAM
    return ds, images, ds.labels()


def paired_delta(metrics, base: list[float] | None) -> str:
    """Mean accuracy change against the no-KD run, and on how many test folds it is better/worse: with
    3,000 pairs one pair is 0.03 pp, so a difference smaller than the fold std needs the per-fold view."""
    if base is None:
        return "-"
    diff = np.array(metrics.fold_accuracies) - np.array(base)
    return f"{100 * diff.mean():+.2f} ({int((diff > 0).sum())}/{int((diff < 0).sum())})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".cache/teacher"))
    parser.add_argument("--name", default="kd_methods", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or EDGEKD_SHARED) with data/lfw112 and the models")
    torch.set_num_threads(args.threads)
    lfw, teacher_file = shared / "data/lfw112", shared / "models/sface/sface_2021dec_fp32.onnx"
    student_file = shared / "models/mobilefacenet/mobilefacenet_ms1m.pt"

    ds, images, labels = load_train_set(lfw, "6-10")
    num_classes = int(labels.max()) + 1
    teacher = load_embedder(teacher_file, threads=args.threads)
    cache = TeacherCache.open_or_build(teacher, ds, args.cache, flip=True, teacher_file=teacher_file)
    t_emb, t_flip = np.array(cache.embeddings), np.array(cache.flip_embeddings)  # into RAM
    centres = class_centres(t_emb, labels, num_classes)
    singletons = int((np.bincount(labels) == 1).sum())
    # how much "dark knowledge" the teacher's class-centre logits carry: mass on the target class at T=4
    soft = torch.softmax(centre_logits(torch.from_numpy(t_emb), centres, 64.0) / 4.0, dim=1)
    target_mass = float(soft[torch.arange(len(labels)), torch.from_numpy(labels)].mean())
    test = load_verification_set(lfw, "6-10")
    spec = default_preprocess("mobilefacenet_ms1m")
    budget = Budget(steps=args.steps, batch_size=args.batch_size)

    rows = [("teacher SFace (reference)", evaluate(teacher, test, progress=False), 0.0)]
    init = load_state_dict_file(student_file)
    student0 = create_model("mobilefacenet_ms1m")
    student0.load_state_dict(init)
    rows.append(
        (
            "student, pretrained, no training",
            evaluate(TorchEmbedder(student0, spec, "pretrained"), test, progress=False),
            0.0,
        )
    )
    per_method = {}
    for method in args.methods.split(","):
        specs = [MARGIN, *METHODS[method]]
        student = create_model("mobilefacenet_ms1m")
        student.load_state_dict(init)
        objective = build_objective(specs, student.embedding_size, num_classes, teacher_dim=t_emb.shape[1])
        objective.set_teacher_centres(centres)
        start = time.perf_counter()
        log = train(student, objective, images, labels, t_emb, t_flip, spec, budget)
        wall = time.perf_counter() - start
        res = evaluate(TorchEmbedder(student, spec, method), test, progress=False)
        rows.append((f"CosFace + {method}" if method != "none" else "CosFace only (no KD)", res, wall))
        per_method[method] = {
            "specs": [s.to_dict() for s in specs],
            "final_losses": log.losses[-1],
            "train_seconds": wall,
            "metrics": res.metrics.to_dict(),
        }
        print(f"{method}: {100 * res.metrics.accuracy:.2f} % in {wall:.0f} s", flush=True)

    lines = [
        "| run | accuracy % (folds 6-10) | Δ vs no KD, pp (folds better/worse) | TAR % @ FAR 1e-3 "
        "| train wall s |",
        "|---|---|---|---|---|",
    ]
    base = per_method.get("none", {}).get("metrics", {}).get("fold_accuracies")
    for name, res, wall in rows:
        m = res.metrics
        tar = m.tar_at_far.get(1e-3)
        lines.append(
            f"| {name} | {100 * m.accuracy:.2f} ± {100 * m.accuracy_std:.2f} | {paired_delta(m, base)} | "
            f"{'n/a' if tar is None else f'{100 * tar[0]:.2f}'} | {wall:.0f} |"
        )
    body = (
        f"Train: {len(ds)} LFW images of {num_classes} identities not in folds 6-10; test: folds 6-10 "
        f"({test.num_pairs} pairs, thresholds on the other 4 folds). Budget per method: {budget}.\n"
        f"{singletons} of {num_classes} training identities have one image; the teacher's class-centre "
        f"logits put on average {target_mass:.2f} of their T=4 probability on the target class.\n\n"
        + "\n".join(lines)
    )
    md = write_result(
        args.name,
        "KD methods, same budget (SFace → MobileFaceNet, LFW)",
        body,
        {
            "budget": budget.__dict__,
            "methods": per_method,
            "references": {name: res.metrics.to_dict() for name, res, _ in rows[:2]},
        },
    )
    print(md.read_text())


if __name__ == "__main__":
    main()
