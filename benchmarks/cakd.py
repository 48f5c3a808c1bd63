"""Cross-architecture KD (CAKD: URFM + APT) from a face ViT into MobileFaceNet, same budget, real faces.

    python benchmarks/cakd.py [--teacher-steps 300] [--apt-steps 40] [--steps 150] [--threads 2]

No pretrained face Transformer is available offline, so the benchmark first makes one:

1. **ViT teacher**: ``vit_face_tiny`` (patch 14: an 8x8 token grid, 128-d) trained from scratch to
   regress SFace's embeddings (``1 − cos``, SFace of the mirror image for flipped inputs) on the LFW
   identities outside folds 6-10. A few thousand images and a CPU budget make it a weak teacher;
   its accuracy is reported as measured.
2. **APT warm-up**: the ViT is frozen and 4 prompts per block are trained with the teacher's own
   training loss (the same SFace regression), so the prompted teacher starts as discriminative as it is.
3. **Students**: MobileFaceNet (MS1M weights) trained with CosFace only, CosFace + instance-level KD
   (``l2`` with a projection, against the plain ViT's cached embeddings) and CosFace + ``cakd``
   (URFM + MHSA losses on the student's last 7x7 map and the prompted ViT's 8x8 tokens + prompt
   outputs, prompts adapted online with the cakd loss plus the teacher's own loss). Same steps, batch,
   optimiser, seed, batch order and flips for every student.

Test on folds 6-10 (3,000 pairs, thresholds on the other folds). The per-step logic is here
(``student_step``), written before ``edgekd.train.trainer`` had an online teacher (``--method cakd``
there now does the same with an anchor loss as the prompts' own loss). Writes results/cakd.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_train_set, paired, quality_sets, score, write_result

from edgekd.data.identity_folder import IdentityFolderDataset
from edgekd.data.preprocess import PreprocessSpec
from edgekd.losses import LossSpec, build_objective
from edgekd.losses.objective import WeightedSum
from edgekd.losses.outputs import StudentOut, TeacherOut
from edgekd.models import create_model, default_preprocess, load_state_dict_file
from edgekd.models.apt import PromptedTeacher
from edgekd.models.taps import FeatureTap, default_taps
from edgekd.models.vit import ViTFace
from edgekd.paths import shared_dir
from edgekd.runtime import load_embedder
from edgekd.runtime.torch_backend import TorchEmbedder
from edgekd.train.teacher_cache import TeacherCache
from edgekd.train.trainer import lr_factor as warmup_cosine

VIT_PATCH = 14  # 112 / 14 = 8x8 tokens: a grid other than the student's 7x7, what URFM is for
NUM_PROMPTS = 4
PROJ = {"projection": True}
CAKD_OPTIONS = {"student_channels": 512, "teacher_channels": 192, "num_centres": 16, "gamma": 1.0}
METHODS: dict[str, list[LossSpec]] = {
    "none": [],
    "l2": [LossSpec("l2", 50.0, PROJ)],
    "cakd": [LossSpec("cakd", 5.0, CAKD_OPTIONS)],
}
TERM_LR = 1e-3  # cakd's projections/URFM/MHSA and the prompts: attention weights dislike head_lr 1e-2


class Batches:
    """The same random batches (indices + flip mask) for every run with the same seed."""

    def __init__(self, images: np.ndarray, batch_size: int, seed: int):
        self.images, self.batch_size, self.rng = images, batch_size, np.random.default_rng(seed)

    def next(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.rng.choice(len(self.images), self.batch_size, replace=False)
        flips = self.rng.random(len(idx)) < 0.5
        imgs = self.images[idx].copy()
        imgs[flips] = imgs[flips, :, ::-1]
        return idx, flips, imgs


def model_input(imgs: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    return torch.from_numpy(spec.apply(imgs)).contiguous(memory_format=torch.channels_last)


def flip_aware(emb: np.ndarray, emb_flip: np.ndarray, idx: np.ndarray, flips: np.ndarray) -> torch.Tensor:
    """Teacher embeddings of the images as fed: the mirror image's embedding where a sample was flipped."""
    out = emb[idx].copy()
    out[flips] = emb_flip[idx[flips]]
    return torch.from_numpy(np.ascontiguousarray(out, np.float32))


@dataclass(frozen=True)
class Budget:
    """One budget per phase of this benchmark (ViT teacher, APT warm-up, students): steps, batch, optimiser.

    The ViT teacher regresses SFace and the APT prompts warm up before the students train, which no
    ``edgekd distill`` run does, so those phases keep this benchmark's own loops."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-4
    head_lr: float = 1e-2
    weight_decay: float = 5e-4
    warmup_steps: int = 30
    grad_clip: float = 5.0
    flip: bool = True
    seed: int = 0


def lr_factor(step: int, budget: Budget) -> float:
    """The trainer's warm-up + cosine schedule."""
    return warmup_cosine(step, budget.steps, budget.warmup_steps)


def set_lr(opt: torch.optim.Optimizer, base: list[float], step: int, budget: Budget) -> None:
    for group, lr in zip(opt.param_groups, base, strict=True):
        group["lr"] = lr * lr_factor(step, budget)


def _centred(emb: np.ndarray, mean: np.ndarray) -> np.ndarray:
    out = emb - mean
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def cosine_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (1 - F.cosine_similarity(a, b, dim=1)).mean()


def make_vit_teacher(images, sface, sface_flip, spec, budget: Budget) -> tuple[ViTFace, list[float]]:
    """Step 1: a ViT trained from scratch to reproduce SFace's embedding directions."""
    torch.manual_seed(budget.seed)
    vit = create_model("vit_face_tiny", patch_size=VIT_PATCH, embedding_size=sface.shape[1])
    opt = torch.optim.AdamW(vit.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    batches, losses = Batches(images, budget.batch_size, budget.seed), []
    vit.train()
    for step in range(budget.steps):
        set_lr(opt, [budget.lr], step, budget)
        idx, flips, imgs = batches.next()
        loss = cosine_loss(vit(model_input(imgs, spec)), flip_aware(sface, sface_flip, idx, flips))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(vit.parameters(), budget.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            print(f"  vit step {step}: 1-cos {losses[-1]:.3f}", flush=True)
    return vit.eval(), losses


def warm_up_prompts(teacher: PromptedTeacher, images, sface, sface_flip, spec, budget: Budget) -> list[float]:
    """Step 2: prompts trained with the teacher's own loss, the frozen ViT untouched."""
    opt = torch.optim.AdamW(teacher.trainable_parameters(), lr=budget.lr, weight_decay=0.0)
    batches, losses = Batches(images, budget.batch_size, budget.seed + 1), []
    teacher.train()
    for step in range(budget.steps):
        set_lr(opt, [budget.lr], step, budget)
        idx, flips, imgs = batches.next()
        loss = cosine_loss(
            teacher(model_input(imgs, spec)).embedding, flip_aware(sface, sface_flip, idx, flips)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def embed_all(model: nn.Module, images: np.ndarray, spec: PreprocessSpec, batch: int = 128) -> np.ndarray:
    """Unit ``(N, D)`` embeddings of uint8 NHWC ``images`` (the ViT teacher's cache for instance KD)."""
    model.eval()
    with torch.inference_mode():
        out = [model(model_input(images[i : i + batch], spec)) for i in range(0, len(images), batch)]
    return F.normalize(torch.cat(out), dim=1).numpy()


class EmbeddingOnly(nn.Module):
    """PromptedTeacher → embedding, for evaluate()."""

    def __init__(self, teacher: PromptedTeacher):
        super().__init__()
        self.teacher, self.embedding_size = teacher, teacher.embedding_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.teacher(x).embedding


def student_step(
    tap: FeatureTap,
    objective: WeightedSum,
    teacher: PromptedTeacher | None,
    x_s: torch.Tensor,
    x_t: torch.Tensor,
    cached_teacher: torch.Tensor,
    sface_target: torch.Tensor,
    labels: torch.Tensor,
    step: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One step's loss. Online teacher (terms needing teacher features): the prompted ViT runs on the
    batch, its tokens feed ``cakd`` and its own SFace-regression loss keeps the prompts discriminative."""
    embedding, maps = tap(x_s)
    student = StudentOut(embedding=embedding, features=maps)
    if teacher is None:
        total, parts = objective(student, TeacherOut(embedding=cached_teacher), labels, step)
        return total, {k: float(v) for k, v in parts.items()}
    out = teacher(x_t)
    total, parts = objective(student, out.to_teacher_out(), labels, step)
    apt = cosine_loss(out.embedding, sface_target)
    return total + apt, {**{k: float(v) for k, v in parts.items()}, "apt_teacher": float(apt)}


def train_student(method, student, teacher, data, spec_s, spec_t, budget: Budget) -> dict:
    """Step 3 for one method: the same batches, optimiser and schedule for every method."""
    images, labels, vit_emb, vit_flip, sface, sface_flip = data
    torch.manual_seed(budget.seed)
    specs = [LossSpec("cosface"), *METHODS[method]]
    objective = build_objective(specs, student.embedding_size, int(labels.max()) + 1, vit_emb.shape[1])
    online = any(t.needs_teacher_features for t in objective.terms.values())
    tap = FeatureTap(student.to(memory_format=torch.channels_last), default_taps("mobilefacenet_ms1m"))
    kd_terms = [p for name, t in objective.terms.items() if name != "cosface" for p in t.parameters()]
    groups = [
        {"params": list(student.parameters()), "lr": budget.lr},
        {"params": list(objective.terms["cosface"].parameters()), "lr": budget.head_lr},
        {"params": kd_terms if not online else [], "lr": budget.head_lr},
        {"params": ([*kd_terms, *teacher.trainable_parameters()] if online else []), "lr": TERM_LR},
    ]
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, weight_decay=budget.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    batches, labels_t, log = Batches(images, budget.batch_size, budget.seed), torch.as_tensor(labels), []
    student.train()
    objective.train()
    teacher.train()
    start = time.perf_counter()
    for step in range(budget.steps):
        set_lr(opt, base, step, budget)
        idx, flips, imgs = batches.next()
        total, parts = student_step(
            tap,
            objective,
            teacher if online else None,
            model_input(imgs, spec_s),
            model_input(imgs, spec_t) if online else None,
            flip_aware(vit_emb, vit_flip, idx, flips),
            flip_aware(sface, sface_flip, idx, flips),
            labels_t[idx],
            step,
        )
        opt.zero_grad(set_to_none=True)
        total.backward()
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], budget.grad_clip)
        opt.step()
        log.append({"total": float(total.detach()), **parts})
        if step % 50 == 0:
            print(f"  {method} step {step}: {log[-1]}", flush=True)
    return {
        "specs": [s.to_dict() for s in specs],
        "final_losses": log[-1],
        "train_seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher-steps", type=int, default=300)
    parser.add_argument("--apt-steps", type=int, default=40)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".cache/teacher"))
    parser.add_argument("--name", default="cakd", help="result file name in benchmarks/results/")
    parser.add_argument(
        "--teacher-extra",
        type=Path,
        help="more identity folders for the ViT teacher only (e.g. ../shared/data/celeba112; SFace cached)",
    )
    parser.add_argument(
        "--teacher-ckpt",
        type=Path,
        help="ViT teacher state_dict: loaded if it exists, else trained and saved",
    )
    parser.add_argument("--teacher-only", action="store_true", help="stop after the ViT teacher's accuracy")
    parser.add_argument(
        "--teacher-center",
        action="store_true",
        help="ViT (and APT) targets: SFace embeddings minus their mean, renormalised (uncentred, a ViT "
        "from scratch settles on SFace's mean direction: 1-cos 0.70 for a constant output)",
    )
    args = parser.parse_args()
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (or EDGEKD_SHARED) with data/lfw112 and the models")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    lfw, sface_file = shared / "data/lfw112", shared / "models/sface/sface_2021dec_fp32.onnx"
    ds, images, labels = load_train_set(lfw, "6-10")
    test = quality_sets()
    sface_model = load_embedder(sface_file, threads=args.threads)
    cache = TeacherCache.open_or_build(sface_model, ds, args.cache, flip=True, teacher_file=sface_file)
    sface, sface_flip = np.array(cache.embeddings), np.array(cache.flip_embeddings)
    spec_t, spec_s = default_preprocess("vit_face_tiny"), default_preprocess("mobilefacenet_ms1m")
    timings: dict[str, float] = {}

    print("1. ViT teacher from SFace", flush=True)
    t = time.perf_counter()
    teacher_budget = Budget(
        args.teacher_steps,
        args.batch_size,
        lr=1e-3,
        weight_decay=0.05,
        warmup_steps=max(1, args.teacher_steps // 10),
        grad_clip=1.0,
    )
    t_images, t_sface, t_flip = images, sface, sface_flip
    if args.teacher_extra:
        extra = IdentityFolderDataset(args.teacher_extra)
        extra_cache = TeacherCache.open_or_build(
            sface_model, extra, args.cache, flip=True, teacher_file=sface_file
        )
        t_images = np.concatenate([images, np.stack([extra[i].image for i in range(len(extra))])])
        t_sface = np.concatenate([sface, np.array(extra_cache.embeddings)])
        t_flip = np.concatenate([sface_flip, np.array(extra_cache.flip_embeddings)])
    if args.teacher_center:  # regress SFace minus its mean direction: a constant output scores 0, not 0.3
        mean = np.concatenate([t_sface, t_flip]).mean(axis=0)
        sface, sface_flip, t_sface, t_flip = (_centred(e, mean) for e in (sface, sface_flip, t_sface, t_flip))
    if args.teacher_ckpt and args.teacher_ckpt.is_file():
        vit = create_model("vit_face_tiny", patch_size=VIT_PATCH, embedding_size=sface.shape[1])
        vit.load_state_dict(torch.load(args.teacher_ckpt, weights_only=True))
        meta = json.loads(args.teacher_ckpt.with_suffix(".json").read_text())
        vit, vit_losses, teacher_budget = vit.eval(), meta["losses"], Budget(**meta["budget"])
        print(f"   loaded {args.teacher_ckpt} ({teacher_budget.steps} steps)", flush=True)
    else:
        vit, vit_losses = make_vit_teacher(t_images, t_sface, t_flip, spec_t, teacher_budget)
        if args.teacher_ckpt:
            args.teacher_ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save(vit.state_dict(), args.teacher_ckpt)
            meta = {"losses": vit_losses, "budget": asdict(teacher_budget), "images": len(t_images)}
            args.teacher_ckpt.with_suffix(".json").write_text(json.dumps(meta))
    timings["vit_teacher_train"] = time.perf_counter() - t
    rows = [("teacher SFace (reference, ONNX)", score(sface_model, test), "")]
    rows.append(
        (
            f"ViT teacher (vit_face_tiny/{VIT_PATCH}, from SFace)",
            score(TorchEmbedder(vit, spec_t, "vit"), test),
            "",
        )
    )
    print(f"   ViT: {rows[-1][1]['lfw']['accuracy']:.2f} % (LFW 6-10)", flush=True)
    if args.teacher_only:
        return

    print("2. APT prompt warm-up", flush=True)
    t = time.perf_counter()
    torch.manual_seed(0)
    prompted = PromptedTeacher(vit, num_prompts=NUM_PROMPTS)
    apt_budget = Budget(args.apt_steps, args.batch_size, lr=1e-3, warmup_steps=max(1, args.apt_steps // 10))
    apt_losses = warm_up_prompts(prompted, images, sface, sface_flip, spec_t, apt_budget)
    timings["apt_warmup"] = time.perf_counter() - t
    rows.append(
        (
            f"ViT + APT prompts ({NUM_PROMPTS}/block, warmed up)",
            score(TorchEmbedder(EmbeddingOnly(prompted), spec_t, "apt"), test),
            "",
        )
    )
    prompts0 = prompted.prompts.detach().clone()
    vit_emb, vit_flip = embed_all(vit, images, spec_t), embed_all(vit, images[:, :, ::-1], spec_t)

    print("3. students", flush=True)
    init = load_state_dict_file(shared / "models/mobilefacenet/mobilefacenet_ms1m.pt")
    student0 = create_model("mobilefacenet_ms1m")
    student0.load_state_dict(init)
    rows.append(
        (
            "student, pretrained, no training",
            score(TorchEmbedder(student0, spec_s, "pretrained"), test),
            "",
        )
    )
    budget = Budget(steps=args.steps, batch_size=args.batch_size, warmup_steps=max(1, args.steps // 10))
    data = (images, labels, vit_emb, vit_flip, sface, sface_flip)
    per_method = {}
    for method in args.methods.split(","):
        with torch.no_grad():
            prompted.prompts.copy_(prompts0)  # every method starts from the same warmed-up prompts
        student = create_model("mobilefacenet_ms1m")
        student.load_state_dict(init)
        info = train_student(method, student, prompted, data, spec_s, spec_t, budget)
        res = score(TorchEmbedder(student, spec_s, method), test)
        per_method[method] = {**info, "scores": res}
        name = {"none": "CosFace only (no KD)", "l2": "CosFace + instance KD (l2, ViT embeddings)"}.get(
            method, "CosFace + CAKD (URFM + APT)"
        )
        rows.append((name, res, f"{info['train_seconds']:.0f}"))
        print(method, {k: round(v["accuracy"], 2) for k, v in res.items()}, flush=True)
    timings["total"] = time.perf_counter() - t0

    base = per_method.get("none", {}).get("scores")
    lines = [
        "| run | LFW 6-10 % | vs no KD | CFP-FP % | vs no KD | train wall s |",
        "|---|---|---|---|---|---|",
    ]
    for name, res, wall in rows:
        cells = []
        for key in ("lfw", "cfp_fp"):
            delta = paired(res[key], base and base[key]) if name.startswith("CosFace") else "-"
            cells += [f"{res[key]['accuracy']:.2f} ± {res[key]['std']:.2f}", delta]
        lines.append(f"| {name} | {' | '.join(cells)} | {wall} |")
    body = (
        f"Train: {len(ds)} LFW images of {int(labels.max()) + 1} identities not in folds 6-10 and not CFP "
        f"celebrities; test: LFW folds 6-10 ({test['lfw'].num_pairs} pairs) and CFP-FP "
        f"({test['cfp_fp'].num_pairs} pairs, 10 folds); `vs`: mean change in pp (folds better/worse). "
        f"ViT teacher: vit_face_tiny patch {VIT_PATCH}, "
        f"{teacher_budget.steps} steps x {teacher_budget.batch_size} on {len(t_images)} images "
        f"(LFW train{' + ' + str(args.teacher_extra) if args.teacher_extra else ''}) regressing SFace"
        f"{' minus its mean direction' if args.teacher_center else ''} "
        "(final 1-cos "
        f"{np.mean(vit_losses[-20:]):.3f}, {timings['vit_teacher_train']:.0f} s). APT: {NUM_PROMPTS} "
        f"prompts/block, {args.apt_steps} warm-up steps (final 1-cos {np.mean(apt_losses[-10:]):.3f}). "
        f"Students: {budget}. Whole run {timings['total'] / 60:.1f} min.\n\n" + "\n".join(lines)
    )
    md = write_result(
        args.name,
        "Cross-architecture KD: ViT teacher (from SFace) → MobileFaceNet, CAKD vs instance KD vs none",
        body,
        {
            "teacher_budget": asdict(teacher_budget),
            "apt_budget": asdict(apt_budget),
            "budget": asdict(budget),
            "vit_patch": VIT_PATCH,
            "num_prompts": NUM_PROMPTS,
            "term_lr": TERM_LR,
            "timings_s": timings,
            "methods": per_method,
            "references": {name: res for name, res, _ in rows[:4]},
        },
    )
    print(md.read_text())


if __name__ == "__main__":
    main()
