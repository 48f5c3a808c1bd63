"""PTQ vs QAT vs QAT+KD for every target, on real faces; plus QAT vs float step time.

    python benchmarks/qat.py [--targets onnx,openvino,tflite] [--steps 100] [--batch 32] [--threads 2]

Student: MobileFaceNet initialised from ../shared's MS1M weights (the float reference). Train on every
LFW image of the identities not in folds 6-10, test on folds 6-10 (3,000 pairs). Per target:
- PTQ: the target's quantizer with observers, 512 training images for calibration, converted (int8
  reference model: quantize/dequantize ops, BN folded);
- QAT: ``edgekd distill-qat`` with the CosFace margin loss only;
- QAT+KD (SFace): + L2 embedding distillation from SFace (learned projection);
- QAT+KD (self): L2 distillation from the float student itself only (same space, no projection, no
  margin head).
Accuracy is the fake-quant model's (eval mode), as training sees it. Step time: one optimizer step of
the float student and of the QAT-prepared one, same batch, interleaved, median of 5.
Writes results/qat.{md,json}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import held_out_names, paired, quality_sets, score, write_result

from edgekd.config import load_config
from edgekd.losses.methods import as_config, method_losses
from edgekd.models import create_model, default_preprocess, load_state_dict_file
from edgekd.paths import shared_dir
from edgekd.quant import calibrate, convert, example_input, load_target, prepare, set_mode
from edgekd.runtime.torch_backend import TorchEmbedder
from edgekd.train.batches import build_train_set, load_images
from edgekd.train.config import DistillConfig
from edgekd.train.trainer import Distiller

ARCH = "mobilefacenet_ms1m"
# Self-distillation recovers the float model's function: its own embeddings are the target (same
# space, no projection), without a margin head trained from scratch pulling the backbone around.
SELF_KD = [{"name": "l2", "weight": 50.0}]


def accuracy(model: torch.nn.Module, sets: dict, name: str) -> dict:
    """LFW folds 6-10 and CFP-FP scores (with per-fold accuracies) of the model in eval mode."""
    set_mode(model, train=False)
    return score(TorchEmbedder(model, default_preprocess(ARCH), name), sets)


def float_student(weights: Path) -> torch.nn.Module:
    model = create_model(ARCH)
    model.load_state_dict(load_state_dict_file(weights))
    return model.eval()


def ptq(target: str, weights: Path, lfw: Path, n_calib: int) -> torch.nn.Module:
    data = build_train_set(str(lfw), str(lfw), exclude_folds="6-10", exclude_names=held_out_names())
    idx = np.random.default_rng(0).choice(len(data.dataset), n_calib, replace=False)
    spec = load_target(target)
    prepared = prepare(float_student(weights), spec, example_input(batch=2), qat=False)
    flips = np.zeros(32, bool)
    calibrate(prepared, (load_images(data.dataset, idx[i : i + 32], flips, default_preprocess(ARCH))
                         for i in range(0, n_calib, 32)))  # fmt: skip
    return convert(prepared, spec)


def qat_run(target: str, method: str, weights: Path, lfw: Path, args, out: Path) -> Distiller:
    teacher, losses = "sface", as_config(method_losses("none" if method == "qat" else "l2"))
    if method == "qat+kd(self)":
        teacher, losses = str(weights), SELF_KD
    cfg = load_config(
        DistillConfig,
        None,
        [],
        student=ARCH,
        student_init=str(weights),
        teacher=teacher,
        data=str(lfw),
        exclude_pairs=str(lfw),
        exclude_folds="6-10",
        exclude_names=held_out_names(),
        losses=losses,
        steps=args.steps,
        batch_size=args.batch,
        optim={"lr": args.lr, "warmup_steps": max(1, args.steps // 10)},
        qat={"target": target, "freeze_bn_step": 0, "freeze_observers_step": int(args.steps * 0.7)},
        out=str(out / f"{target}-{method}"),
        cache_dir=str(args.cache),
        threads=args.threads,
        checkpoint_every=args.steps,
        log_every=10,
    )
    trainer = Distiller(cfg, progress=True)
    trainer.run()
    return trainer


def step_times(target: str, batch: int, reps: int = 5) -> dict:
    """Median seconds of one AdamW step, float vs QAT-prepared, interleaved (same batch, same load)."""
    model_f = create_model(ARCH).to(memory_format=torch.channels_last)
    model_f.train()
    for m in model_f.modules():  # same BN treatment as the QAT run (frozen from step 0)
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    model_q = prepare(create_model(ARCH), load_target(target), example_input(batch=2), fold_bn=True)
    x = torch.randn(batch, 3, 112, 112).contiguous(memory_format=torch.channels_last)
    opts = [torch.optim.AdamW(m.parameters(), 1e-5) for m in (model_f, model_q)]

    def one(model: torch.nn.Module, opt: torch.optim.Optimizer) -> float:
        start = time.perf_counter()
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - start

    one(model_f, opts[0]), one(model_q, opts[1])  # warm-up
    times: list[list[float]] = [[], []]
    for _ in range(reps):
        for i, model in enumerate((model_f, model_q)):
            times[i].append(one(model, opts[i]))
    f, q = statistics.median(times[0]), statistics.median(times[1])
    return {"float_s": f, "qat_s": q, "ratio": q / f}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="onnx,openvino,tflite")
    parser.add_argument("--methods", default="qat,qat+kd(sface),qat+kd(self)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--calib", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".cache/teacher"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_qat"))
    parser.add_argument("--name", default="qat", help="result file stem in benchmarks/results/")
    parser.add_argument("--step-times-only", action="store_true", help="only the float vs QAT step time")
    parser.add_argument("--reps", type=int, default=5, help="interleaved step-time repetitions")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shared = shared_dir()
    if shared is None:
        sys.exit("needs ../shared (LFW + pretrained MobileFaceNet); set EDGEKD_SHARED")
    lfw, weights = shared / "data/lfw112", shared / "models/mobilefacenet/mobilefacenet_ms1m.pt"
    if args.step_times_only:
        return step_time_table(args)
    sets = quality_sets()
    rows, payload = [], {"args": {k: str(v) for k, v in vars(args).items()}, "targets": {}}
    ref = accuracy(float_student(weights), sets, "float")
    rows.append(f"| float student (reference) | - | {_cells(ref, ref, None)} | |")
    payload["float"] = ref
    for target in args.targets.split(","):
        res: dict = {"step_time": step_times(target, args.batch, args.reps)}
        res["ptq"] = accuracy(ptq(target, weights, lfw, args.calib), sets, f"ptq-{target}")
        for method in args.methods.split(","):
            trainer = qat_run(target, method, weights, lfw, args, args.out)
            res[method] = {**accuracy(trainer.student, sets, method), "train_s": trainer_seconds(trainer)}
        payload["targets"][target] = res
        st = res["step_time"]
        for name in ["ptq", *args.methods.split(",")]:
            r = res[name]
            extra = f"{r['train_s']:.0f} s" if "train_s" in r else ""
            no_kd = res.get("qat") if "kd" in name else None
            rows.append(f"| {name} | {target} | {_cells(r, ref, no_kd)} | {extra} |")
        rows.append(
            f"| step time float / QAT | {target} | {st['float_s']:.2f} s / {st['qat_s']:.2f} s "
            f"(×{st['ratio']:.2f}) | | |"
        )
        write(rows, payload, args)  # after every target: partial results survive an interruption


def step_time_table(args) -> None:
    """Float vs QAT optimizer-step time per target, all targets in one run (same machine state)."""
    rows, payload = [], {}
    for target in args.targets.split(","):
        st = payload[target] = step_times(target, args.batch, args.reps)
        rows.append(f"| {target} | {st['float_s']:.3f} | {st['qat_s']:.3f} | ×{st['ratio']:.2f} |")
    body = (
        f"One AdamW step of {ARCH}, batch {args.batch}, {args.threads} threads; float (BN frozen) vs QAT "
        f"(BN folded, fake quantization per target), interleaved, median of {args.reps}.\n\n"
        "| target | float s | QAT s | QAT / float |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    write_result(args.name, "QAT vs float training step time", body, payload)


def _cells(r: dict, ref: dict, no_kd: dict | None) -> str:
    """Accuracy, change vs the float student and vs QAT without KD, on LFW 6-10 then CFP-FP."""
    cells = []
    for key in ("lfw", "cfp_fp"):
        cells += [
            f"{r[key]['accuracy']:.2f} ± {r[key]['std']:.2f}",
            paired(r[key], ref[key]),
            paired(r[key], no_kd and no_kd[key]),
        ]
    return " | ".join(cells)


def trainer_seconds(trainer: Distiller) -> float:
    return float(getattr(trainer, "seconds", 0.0))


def write(rows: list[str], payload: dict, args) -> None:
    body = (
        f"Student {ARCH} (pretrained, MS1M) → fake-quant accuracy on LFW folds 6-10 (3,000 pairs) and "
        "CFP-FP (3,500 pairs, 10 folds); training holds out LFW folds 6-10 and the CFP celebrities. `vs`: "
        "mean change in pp (folds better/worse) against the float student and against QAT without KD. "
        f"QAT runs: {args.steps} steps, batch {args.batch}, AdamW lr {args.lr}, BN frozen from step 0, "
        f"observers frozen at 70 % of the steps; PTQ: {args.calib} calibration images.\n\n"
        "| model | target | LFW 6-10 % | vs float | vs QAT (no KD) | CFP-FP % | vs float | vs QAT (no KD) "
        "| train wall |\n|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    write_result(args.name, "PTQ vs QAT vs QAT+KD per target (fake-quant accuracy)", body, payload)


if __name__ == "__main__":
    main()
