"""Training throughput on this machine: the data pipeline alone, then float and QAT steps, 0/1/2 workers.

    python benchmarks/train_throughput.py [--data DIR] [--steps 12] [--batch 64] [--threads 2]

Data: an identity-folder root (default ../shared/data/lfw112, JPEG 112x112) or ``synthetic``. Student
MobileFaceNet (MS1M architecture), CosFace only (no teacher: the step is the student's own cost).
- pipeline: decoded steps per second from ``decoded_steps`` with 0, 1, 2 workers (no training);
- float / QAT (onnx target): full optimizer steps with the same loaders, after 2 warm-up steps.
GPU rows: measured only where CUDA exists; otherwise they say "not measured". Writes
results/train_throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result


def pipeline_rate(data: str, batch: int, steps: int, workers: int) -> float:
    from edgekd.distributed import DistInfo
    from edgekd.train.batches import build_train_set
    from edgekd.train.pipeline import StepBatches, decoded_steps

    train = build_train_set(data)
    batches = StepBatches(train.dataset, 0, batch, True, DistInfo())
    it = decoded_steps(batches, 0, steps + 2, workers=workers)
    next(it), next(it)  # workers started, first batches in flight
    start = time.perf_counter()
    n = sum(len(d.indices) for d in it)
    return n / (time.perf_counter() - start)


def step_rate(data: str, batch: int, steps: int, workers: int, threads: int, target: str | None) -> float:
    import tempfile

    from edgekd.config import load_config
    from edgekd.train.config import DistillConfig
    from edgekd.train.trainer import Distiller

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            DistillConfig,
            None,
            [],
            data=data,
            losses=["cosface"],
            steps=steps + 2,
            batch_size=batch,
            workers=workers,
            threads=threads,
            qat={"target": target},
            out=tmp,
            checkpoint_every=10_000,
        )
        trainer = Distiller(cfg, progress=False)
        trainer.run(max_steps=2)  # warm-up (graph preparation, allocator, first batches)
        start = time.perf_counter()
        trainer.run()
        return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="identity-folder root or 'synthetic' [default: ../shared lfw112]")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", default="0,1,2")
    args = parser.parse_args()
    import torch

    from edgekd.paths import shared_dir

    torch.set_num_threads(args.threads)
    data = args.data or (str(shared_dir() / "data/lfw112") if shared_dir() else "synthetic")
    workers = [int(w) for w in args.workers.split(",")]
    rows, payload = [], {"data": data, "batch": args.batch, "steps": args.steps, "rows": []}
    for kind in ("pipeline", "float", "qat-onnx"):
        for w in workers:
            if kind == "pipeline":
                rate = pipeline_rate(data, args.batch, args.steps * 2, w)
            else:
                target = "onnx" if kind == "qat-onnx" else None
                rate = step_rate(data, args.batch, args.steps, w, args.threads, target)
            payload["rows"].append({"kind": kind, "device": "cpu", "workers": w, "img_s": rate})
            rows.append(f"| {kind} | cpu | {w} | {rate:.1f} |")
            print(rows[-1], flush=True)
    gpu = "not measured: no CUDA device on this machine" if not torch.cuda.is_available() else None
    rows.append(f"| float / qat | gpu | - | {gpu or 'see JSON'} |")
    body = (
        f"Data `{data}`, batch {args.batch}, {args.threads} intra-op threads, {args.steps} timed steps "
        "after 2 warm-up steps. `pipeline`: decode + flip only (images/s); `float`/`qat-onnx`: whole "
        "optimizer steps of MobileFaceNet with CosFace (images/s). Workers decode the next steps while "
        "the step runs; the batches are identical for every worker count (tests/train/test_trainer.py).\n\n"
        "| what | device | workers | images/s |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    write_result(
        "train_throughput", "Training throughput (data pipeline, float and QAT steps)", body, payload
    )


if __name__ == "__main__":
    main()
