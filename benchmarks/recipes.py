"""Which distillation recipe moves CFP-FP? Every variant through the trainer users run, same budget.

    python benchmarks/recipes.py [--variants cosface,l2,...] [--steps 600] [--name recipes]

Teacher SFace (fp32 ONNX), student MobileFaceNet from ../shared's MS1M weights, trained by
``edgekd.train.trainer.Distiller`` (what ``edgekd distill`` runs) on LFW (identities of folds 6-10 and
the 172 CFP celebrities held out) + celeba112 (285 identities, 2-30 images each). Every trained student
(float) is scored on LFW folds 6-10 and CFP-FP (10 folds), per fold against the same-budget CosFace-only
run and against the pretrained student. Trained checkpoints are reused when their config matches, so an
interrupted benchmark continues where it stopped. Writes results/<name>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import held_out_names, paired, quality_sets, score, write_result

from edgekd.paths import shared_dir

L2 = {"name": "l2", "weight": 50.0, "params": {"projection": True}}
RPSD = {"name": "rpsd", "weight": 5.0, "params": {"projection": True, "bank_size": 4096}}
ILED = {"name": "iled", "weight": 50.0, "params": {"projection": True, "mode": "power"}}
GKD = {"name": "gkd", "weight": 1.0, "params": {"T": 4.0, "tau": 0.93, "ramp_steps": 100}}
KD = {"name": "kd", "weight": 1.0, "params": {"T": 4.0}}

LPFT = {"head_only_steps": 100}  # heads first on a frozen backbone, then everything
# half the samples shown turned (edgekd.data.augment), as one of 2 cached views of 30-60 degrees of yaw
POSE = {"pose_views": 2, "pose_prob": 0.5, "pose_max_yaw": 60.0}

# name -> (what it tests, config overrides on top of base_config); "steps" None = the --steps budget
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # the recipe `make demo` shipped (LFW only, 30 steps of batch 32), in float, and what fixes it
    "demo": ("make demo's recipe (LFW only)", {"lfw_only": True, "steps": 30, "batch_size": 32}),
    "demo-low-lr": (
        "demo, lr 1e-5 / head 1e-3",
        {"lfw_only": True, "steps": 30, "batch_size": 32, "optim": {"lr": 1e-5, "head_lr": 1e-3}},
    ),
    "demo-kd-only": (
        "demo without the fresh margin head",
        {"lfw_only": True, "steps": 30, "batch_size": 32, "losses": [L2]},
    ),
    "demo-qat": (
        "make demo's run: distill-qat --target onnx (fake-quant model)",
        {"lfw_only": True, "steps": 30, "batch_size": 32, "qat": {"target": "onnx"}},
    ),
    "demo-lpft": (
        "demo, heads first (20 of 30 steps), lr 1e-5",
        {
            "lfw_only": True,
            "steps": 30,
            "batch_size": 32,
            "optim": {"lr": 1e-5, "head_only_steps": 20},
        },
    ),
    "demo-qat-lpft": (
        "make demo's run now: distill-qat --target onnx, heads first, lr 1e-5 (fake-quant model)",
        {
            "lfw_only": True,
            "steps": 30,
            "batch_size": 32,
            "qat": {"target": "onnx"},
            "optim": {"lr": 1e-5, "head_only_steps": 20},
        },
    ),
    "demo-qat-lpft-calib": (
        "demo-qat-lpft with 16 calibration batches (512 faces) before the first step",
        {
            "lfw_only": True,
            "steps": 30,
            "batch_size": 32,
            "qat": {"target": "onnx", "calib_batches": 16},
            "optim": {"lr": 1e-5, "head_only_steps": 20},
        },
    ),
    # the budget runs on LFW + CelebA, heads first (100 steps) then everything
    "cosface": ("no KD: CosFace only", {"losses": ["cosface"], "optim": LPFT}),
    "cosface+l2": ("CosFace + L2 (projected)", {"losses": ["cosface", L2], "optim": LPFT}),
    "l2": ("L2 only (no margin head)", {"losses": [L2], "optim": LPFT}),
    "l2-no-lpft": ("L2 only, backbone trained from step 0", {"losses": [L2]}),
    "rpsd": ("RPSD only (pair similarities, memory bank)", {"losses": [RPSD], "optim": LPFT}),
    "l2+rpsd": ("L2 + RPSD (no margin head)", {"losses": [L2, RPSD], "optim": LPFT}),
    "cosface+gkd": ("CosFace + GKD (class centres)", {"losses": ["cosface", GKD], "optim": LPFT}),
    "cosface+iled+rpsd": ("CosFace + ILED + RPSD", {"losses": ["cosface", ILED, RPSD], "optim": LPFT}),
    # pose views the teacher embeds too: the no-KD baseline sees the same turned faces
    "cosface+pose": ("no KD, pose views", {"losses": ["cosface"], "optim": LPFT, **POSE}),
    "cosface+l2+pose": ("CosFace + L2, pose views", {"losses": ["cosface", L2], "optim": LPFT, **POSE}),
    "cosface+gkd+pose": ("CosFace + GKD, pose views", {"losses": ["cosface", GKD], "optim": LPFT, **POSE}),
}


def base_config(shared: Path, steps: int, threads: int) -> dict[str, Any]:
    data = shared / "data"
    return {
        "student": "mobilefacenet_ms1m",
        "student_init": "mobilefacenet_ms1m",
        "teacher": "sface",
        "data": [str(data / "lfw112"), str(data / "celeba112")],
        "exclude_pairs": str(data / "lfw112"),
        "exclude_folds": "6-10",
        "exclude_names": held_out_names(),
        "steps": steps,
        "batch_size": 64,
        "optim": {"lr": 1e-4, "head_lr": 1e-2, "warmup_steps": 30},
        "checkpoint_every": 10_000,
        "log_every": 50,
        "threads": threads,
        "cache_dir": ".cache/teacher",
    }


def variant_config(name: str, base: dict[str, Any], out: Path) -> dict[str, Any]:
    overrides = dict(VARIANTS[name][1])
    cfg = {**base, "out": str(out / name)}
    if overrides.pop("lfw_only", False):
        cfg["data"] = cfg["data"][:1]
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def train(cfg: dict[str, Any]) -> tuple[Path, float]:
    """Train (or reuse a finished run of exactly this config); returns the checkpoint and seconds."""
    from edgekd.config import from_dict, to_dict
    from edgekd.train.checkpoint import read_checkpoint
    from edgekd.train.config import DistillConfig
    from edgekd.train.trainer import Distiller

    config = from_dict(DistillConfig, cfg, source="recipes.py")
    last, stamp = Path(config.out) / "last.pt", Path(config.out) / "seconds.json"
    if last.is_file() and stamp.is_file():
        ckpt = read_checkpoint(last)
        if ckpt["config"] == to_dict(config) and ckpt["step"] == config.steps:
            return last, json.loads(stamp.read_text())["seconds"]
    start = time.perf_counter()
    result = Distiller(config, progress=True).run()
    seconds = time.perf_counter() - start
    stamp.write_text(json.dumps({"seconds": seconds}))
    return result.last_checkpoint, seconds


def student_scores(ckpt: Path | None, sets: dict) -> dict:
    from edgekd.models import default_preprocess
    from edgekd.runtime import load_embedder
    from edgekd.runtime.torch_backend import TorchEmbedder
    from edgekd.train.checkpoint import load_student

    if ckpt is None:
        return score(load_embedder("mobilefacenet_ms1m", threads=None), sets)
    student = load_student(ckpt)
    return score(TorchEmbedder(student.model, default_preprocess(student.arch), name=student.arch), sets)


def no_kd_baseline(name: str) -> str:
    """The same-budget CosFace-only run a variant is compared with: the one that saw the same views."""
    return "cosface+pose" if name.endswith("+pose") else "cosface"


def table(rows: dict[str, dict]) -> str:
    pre = rows.get("pretrained")
    head = (
        "| run | data | steps | LFW 6-10 | vs no-KD | vs pretrained | CFP-FP | vs no-KD | vs pretrained "
        "| train s |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for name, r in rows.items():
        s = r["scores"]
        lfw, cfp = s["lfw"], s["cfp_fp"]
        base = rows.get(no_kd_baseline(name))
        b = base["scores"] if base else None
        p = pre["scores"] if pre else None
        lines.append(
            f"| {name}: {r['what']} | {r['data']} | {r['steps']} | {lfw['accuracy']:.2f} ± {lfw['std']:.2f} "
            f"| {paired(lfw, b and b['lfw'])} | {paired(lfw, p and p['lfw'])} "
            f"| {cfp['accuracy']:.2f} ± {cfp['std']:.2f} | {paired(cfp, b and b['cfp_fp'])} "
            f"| {paired(cfp, p and p['cfp_fp'])} | {r['seconds']:.0f} |"
        )
    return head + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variants",
        default="teacher,pretrained," + ",".join(VARIANTS),
        help="comma-separated; '' rewrites the table from the runs stored in --out/<name>.json",
    )
    parser.add_argument("--steps", type=int, default=600, help="the budget of the LFW+CelebA runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--name", default="recipes", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None or not (shared / "data/celeba112").is_dir():
        sys.exit("needs ../shared (or EDGEKD_SHARED) with data/lfw112, cfp112, celeba112 and the models")
    import torch

    torch.set_num_threads(args.threads)
    sets, base = quality_sets(), base_config(shared, args.steps, args.threads)
    partial = Path(args.out) / f"{args.name}.json"
    rows: dict[str, dict] = json.loads(partial.read_text()) if partial.is_file() else {}
    for name in filter(None, args.variants.split(",")):  # --variants '': the table of the stored runs
        if name == "pretrained":
            rows[name] = {"what": "pretrained student, no training", "data": "-", "steps": 0, "seconds": 0}
            rows[name]["scores"] = student_scores(None, sets)
        elif name == "teacher":
            from edgekd.runtime import load_embedder

            rows[name] = {"what": "SFace teacher (reference)", "data": "-", "steps": 0, "seconds": 0}
            rows[name]["scores"] = score(load_embedder("sface", threads=args.threads), sets)
        else:
            if name not in VARIANTS:
                sys.exit(f"unknown variant {name!r}; known: teacher, pretrained, {', '.join(VARIANTS)}")
            cfg = variant_config(name, base, args.out)
            ckpt, seconds = train(cfg)
            data = "+".join(Path(d).name for d in cfg["data"])
            rows[name] = {"what": VARIANTS[name][0], "data": data, "steps": cfg["steps"], "seconds": seconds}
            rows[name].update(config=cfg, scores=student_scores(ckpt, sets))
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(rows, indent=2))
        print(name, {k: round(v["accuracy"], 2) for k, v in rows[name]["scores"].items()}, flush=True)
    body = (
        "Teacher SFace, student MobileFaceNet (MS1M init), float students after `Distiller` training "
        "(batch 64 unless the variant says; AdamW, backbone lr 1e-4, heads 1e-2, 30 warm-up steps, cosine "
        "decay, flip augmentation with the teacher's flipped embedding). Training never sees a test "
        "identity: LFW folds 6-10 and the 172 CFP celebrities (cfp112/names.txt) are held out of LFW and "
        "CelebA. Test: LFW folds 6-10 (thresholds on the 4 other folds) and CFP-FP (10 folds). "
        "`vs`: mean change in pp and folds better/worse; a `+pose` run's no-KD baseline is `cosface+pose`, "
        "which saw the same turned faces.\n\n" + table(rows)
    )
    write_result(args.name, "Distillation recipes on CFP-FP (SFace → MobileFaceNet)", body, {"rows": rows})


if __name__ == "__main__":
    main()
