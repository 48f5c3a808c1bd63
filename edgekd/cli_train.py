"""``edgekd distill`` and ``edgekd distill-qat`` (registered on the main group by :mod:`edgekd.cli`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from edgekd.cli import _friendly, main

_TRAIN_OPTIONS: list[Callable[..., Any]] = [
    click.option(
        "-c", "--config", type=click.Path(dir_okay=False), help="YAML run config (see docs/train.md)."
    ),
    click.option("--teacher", help="Teacher: sface, an .onnx file or a PyTorch model.  [default: sface]"),
    click.option(
        "--teacher-arch",
        help="Architecture of a PyTorch teacher file (e.g. vit_face_tiny), when its keys don't identify it; "
        "builder options via -o teacher_options.patch_size=14.",
    ),
    click.option(
        "--student",
        help="Student architecture (mobilefacenet_ms1m, mobilefacenet, ...) or a state_dict file.",
    ),
    click.option(
        "--init", "student_init", help="Initial student weights (state_dict), e.g. a pretrained model."
    ),
    click.option(
        "--data",
        multiple=True,
        help="Training faces: identity-folder root (one folder per person), an insightface train.rec "
        "(+ .idx) or 'synthetic'; repeat to train on several (their identities stay distinct classes).",
    ),
    click.option("--exclude-pairs", help="Hold out the identities of these pairs (e.g. the LFW root)."),
    click.option(
        "--exclude-names",
        multiple=True,
        help="Hold out the identities named in this text file (every word of a line, e.g. CFP's "
        "names.txt: cfp_001 50_Cent); repeatable.",
    ),
    click.option("--val-pairs", help="Pairs evaluated every --val-every steps (LFW root, .bin, synthetic)."),
    click.option("--val-folds", help="Folds of --val-pairs, e.g. 6-10."),
    click.option(
        "--method",
        help="KD recipe: none, kd, gkd, l2, fc, iled, rpsd, iled+rpsd, cakd (margin loss + KD terms; "
        "overrides 'losses:'). cakd (cross-architecture KD, URFM + APT prompts) runs a PyTorch ViT "
        "teacher online: --teacher vit.pt --teacher-arch vit_face_tiny; ONNX teachers are refused.",
    ),
    click.option("--steps", type=int, help="Optimizer steps.  [default: 300]"),
    click.option(
        "-b", "--batch-size", type=int, help="Global batch (split over torchrun ranks).  [default: 64]"
    ),
    click.option("--out", help="Run folder: checkpoints, metrics.csv, tb/.  [default: runs/distill]"),
    click.option("--resume", type=click.Path(dir_okay=False), help="Continue exactly from this checkpoint."),
    click.option("-t", "--threads", type=int, help="Intra-op threads.  [default: all cores]"),
    click.option(
        "--device",
        help="cpu, cuda, cuda:N or auto (a GPU when CUDA is available; float runs in bf16 autocast there, "
        "QAT in fp32).  [default: auto]",
    ),
    click.option(
        "--workers",
        type=int,
        help="DataLoader processes decoding the next batches while the step runs (same batches as 0).  "
        "[default: 0]",
    ),
    click.option(
        "-o", "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key."
    ),
    click.option("--progress/--no-progress", default=True, help="Progress bar with loss and images/s."),
]


def _train_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_TRAIN_OPTIONS):
        fn = option(fn)
    return fn


def _run(target: str | None, method: str | None, profile: str | None = None, **options: Any) -> None:
    from edgekd.config import load_config
    from edgekd.losses.methods import as_config, method_losses
    from edgekd.train.config import DistillConfig
    from edgekd.train.trainer import distill

    config, overrides = options.pop("config"), options.pop("overrides")
    resume, progress = options.pop("resume"), options.pop("progress")
    if method:
        options["losses"] = as_config(method_losses(method))
    if target:
        overrides = (*overrides, f"qat.target={target}")
    if profile:
        overrides = (*overrides, f"qat.profile={profile}")
    cfg = load_config(DistillConfig, config, overrides, **options)
    result = distill(cfg, resume=resume, progress=progress)
    click.echo(f"trained {result.step} steps in {result.seconds:.0f} s; checkpoints in {result.out}")
    if result.best_metric is not None:
        click.echo(_validation_line(cfg, 100 * result.best_metric))
    if target:
        click.echo(f"next: edgekd convert --checkpoint {result.last_checkpoint} --target {target}")


def _validation_line(cfg: Any, accuracy: float) -> str:
    """The best validation accuracy with what it means: on which pairs, and what chance is."""
    where = f"{cfg.val_pairs}" + (f" folds {cfg.val_folds}" if cfg.val_folds else "")
    line = f"best verification accuracy {accuracy:.2f} % on {where} (same person or not; chance is 50 %)"
    if cfg.val_pairs == "synthetic" and not cfg.student_init:
        line += (
            f". A student trained from random weights for {cfg.steps} steps on synthetic faces is expected "
            "near chance: this run shows the pipeline works, not a face model. Real faces: DATA=<LFW "
            "folder> or ../shared, and --init mobilefacenet_ms1m"
        )
    return line


@main.command("distill")
@_train_options
@_friendly
def distill_cmd(**options: Any) -> None:
    """Train a student with knowledge distillation, in float (no quantization).

    \b
    The teacher's embeddings are computed once and cached; losses come from the config or --method.
    Multi-process: torchrun --nproc-per-node 2 -m edgekd distill ...
    --method cakd runs a prompted ViT teacher on every batch instead (no cache).
    Example:
      edgekd distill --data ../shared/data/lfw112 --exclude-pairs ../shared/data/lfw112 \\
        --val-pairs ../shared/data/lfw112 --val-folds 6-10 --init mobilefacenet_ms1m.pt --method l2
    """
    _run(None, **options)


@main.command("distill-qat")
@click.option(
    "--target",
    required=True,
    help="Runtime whose int8 arithmetic the fake quantization mirrors: onnx, openvino, tflite "
    "(exact on every x86-64 and ARM64 CPU), onnx-vnni, openvino-vnni (8-bit weights: exact only on "
    "VNNI x86 and ARM64), or a target spec .yaml.",
)
@click.option(
    "--profile",
    help="Device the artifact ships to (x86, x86-vnni, rpi4, ...): refused before training when the "
    "target's int8 arithmetic is not exact on its ISA (e.g. onnx-vnni on x86 without VNNI).",
)
@_train_options
@_friendly
def distill_qat_cmd(target: str, profile: str | None, **options: Any) -> None:
    """Distillation combined with quantization-aware training for one target runtime.

    \b
    The student is exported (torch.export) and prepared with the target's PT2E quantizer (PReLU
    included); conv-BN pairs are folded into the fake-quantized weights; BN statistics and observers
    freeze at qat.freeze_bn_step / qat.freeze_observers_step. Checkpoints keep the target spec, so
    `edgekd convert` produces the matching int8 artifact.
    Example:
      edgekd distill-qat --target onnx --init mobilefacenet_ms1m.pt --method l2 --steps 300
      edgekd distill-qat --target onnx --init mobilefacenet_ms1m.pt --method cakd \
        --teacher vit.pt --teacher-arch vit_face_tiny -o teacher_options.patch_size=14
    """
    _run(target, profile=profile, **options)
