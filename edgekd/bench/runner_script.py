"""The benchmark runner that runs next to the model: on a device over SSH, or locally in a subprocess.

Self-contained: it needs Python 3.9+, numpy and the artifact's runtime, and imports only its bundle
siblings (``latency.py``, ``memory.py`` and one backend such as ``device_ort.py``), never edgekd or torch —
:mod:`edgekd.bench.remote` copies exactly these files. Local runs execute the same files in a fresh
process, so local and remote numbers are measured identically and peak RSS is the model's alone.

    python runner_script.py --config job.json --out result.json

``job.json`` (paths relative to it): ``artifact``, ``backend`` (module name), ``threads``,
``providers``, ``warmup``, ``runs`` or ``seconds``, ``batch``, ``input`` (size, channel order, layout,
mean, std), optional ``images`` (an ``(N, H, W, 3)`` uint8 RGB ``.npy``), ``golden`` (the artifact's golden
faces, same format), ``hash`` (``{name: path}`` of files to sha256 here) and ``embed_batch``.
``result.json``: host facts, runtime, load / first-inference times, latency samples and statistics,
throughput at ``batch``, memory, the raw embeddings of ``images`` and ``golden`` (float32, base64) and
the sha256 of the ``hash`` files.
Exit status: 0 ok, 3 runtime not installed here, 4 bad artifact or job, 1 anything else.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

try:
    import numpy as np
except ImportError:  # the one dependency besides the runtime: say so instead of a traceback
    print("runtime not installed here: numpy (pip install numpy)", file=sys.stderr)
    sys.exit(3)

if __package__:  # imported as edgekd.bench.runner_script (tests)
    from . import latency, memory
else:  # run as a file from its bundle directory (device or local subprocess)
    import latency
    import memory

EXIT_RUNTIME_MISSING = 3
EXIT_BAD_INPUT = 4
RUNNER_VERSION = 1
# A copy of edgekd.info.CPU_FLAGS (this file runs on devices without edgekd); a test keeps them equal.
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
)


class JobError(Exception):
    """Bad job or artifact (exit status 4)."""


def preprocess(images: np.ndarray, spec: dict) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB → float32 batch, the arithmetic of edgekd's ``PreprocessSpec.apply``."""
    x = images.astype(np.float32)
    if spec["channel_order"] == "BGR":
        x = x[..., ::-1]
    x = (x - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    if spec["layout"] == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)


def host_facts() -> dict:
    """Where this ran: CPU model, cores, int8-relevant ISA flags, OS, Python."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware") and value.strip():
                model = value.strip()
            elif key in ("flags", "features"):
                flags.update(value.split())
    except OSError:
        pass
    return {
        "cpu": model,
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "features": [f for f in CPU_FLAGS if f in flags],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def _forward(model, batch: np.ndarray) -> np.ndarray:
    """Run any batch size on a model whose batch may be fixed (split, and pad the last chunk)."""
    step = model.max_batch
    if not step or len(batch) == step:
        return model.run(batch)
    outs = []
    for i in range(0, len(batch), step):
        chunk = batch[i : i + step]
        n = len(chunk)
        if n < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
        outs.append(model.run(chunk)[:n])
    return np.concatenate(outs)


def _import_backend(name: str):
    """The backend module: a bundle sibling on a device, or edgekd.bench's own file when imported."""
    if __package__:
        try:
            return importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
    return importlib.import_module(name)


def run_job(job: dict, base: Path, backend=None, clock=time.perf_counter) -> dict:
    """Measure one artifact as ``job`` says; ``backend`` (a module with ``Model``) overrides the job's."""
    rss_start = memory.rss_mb()
    if backend is None:
        backend = _import_backend(job["backend"])
    artifact = base / job["artifact"]
    if not artifact.is_file():
        raise JobError(f"artifact not found on this machine: {artifact}")
    spec, batch = job["input"], int(job.get("batch", 1))
    t0 = clock()
    try:
        model = backend.Model(str(artifact), int(job["threads"]), job.get("providers") or ())
    except ImportError:
        raise
    except Exception as exc:
        raise JobError(f"cannot load {artifact.name}: {exc}") from exc
    load_ms = (clock() - t0) * 1e3
    rss_loaded = memory.rss_mb()

    h, w = spec["size"]
    rng = np.random.default_rng(int(job.get("seed", 0)))  # random inputs, as benchmark_model uses
    one = preprocess(rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8), spec)
    timing = latency.measure(
        lambda: _forward(model, one),
        warmup=int(job.get("warmup", 5)),
        runs=job.get("runs"),
        seconds=job.get("seconds"),
        clock=clock,
        min_seconds=job.get("min_seconds"),
    )
    if batch > 1:
        many = preprocess(rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8), spec)
        batch_runs = max(3, -(-len(timing.samples_ms) // batch))  # about as many images as single-stream
        tput = latency.measure(lambda: _forward(model, many), warmup=1, runs=batch_runs, clock=clock)
        images_per_s = batch * len(tput.samples_ms) / tput.total_s if tput.total_s > 0 else None
        batch_stats = tput.stats().to_dict()
    else:
        images_per_s = len(timing.samples_ms) / timing.total_s if timing.total_s > 0 else None
        batch_stats = None
    peak = memory.peak_rss_mb()  # before embedding images, which would add the image array's pages

    result = {
        "runner_version": RUNNER_VERSION,
        "host": host_facts(),
        "runtime": model.info,
        "threads": int(job["threads"]),
        "max_batch": model.max_batch,
        "load_ms": round(load_ms, 3),
        "first_ms": round(timing.first_ms, 3),
        "warmup": timing.warmup,
        "latency": timing.stats().to_dict(),
        "samples_ms": [round(s, 4) for s in timing.samples_ms],
        "throughput": {"batch": batch, "images_per_s": images_per_s, "batch_latency": batch_stats},
        "memory": {"rss_start_mb": rss_start, "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak},
        "embeddings": None,
    }
    step = int(job.get("embed_batch", 64))
    if job.get("images"):
        t0 = time.perf_counter()
        result["embeddings"] = _embed(model, base / job["images"], spec, step)
        result["embed_seconds"] = round(time.perf_counter() - t0, 3)
    if job.get("golden"):  # the artifact's golden faces (edgekd.convert.golden): parity on this device
        result["golden_embeddings"] = _embed(model, base / job["golden"], spec, step)
    if job.get("hash"):  # {name: path}: the files as this device holds them
        result["sha256"] = {name: _sha256(base / path) for name, path in job["hash"].items()}
    return result


def _embed(model, path: Path, spec: dict, step: int) -> dict:
    """Raw embeddings of an ``(N, H, W, 3)`` uint8 ``.npy``, encoded for result.json."""
    h, w = spec["size"]
    images = np.load(path, mmap_mode="r")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h, w, 3):
        raise JobError(f"images must be (N, {h}, {w}, 3) uint8, got {images.dtype} {images.shape}")
    emb = np.concatenate(
        [
            _forward(model, preprocess(np.asarray(images[i : i + step]), spec))
            for i in range(0, len(images), step)
        ]
    ).astype(np.float32)
    return {
        "dtype": "float32",
        "shape": list(emb.shape),
        "base64": base64.b64encode(np.ascontiguousarray(emb).tobytes()).decode("ascii"),
    }


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def decode_embeddings(block: dict) -> np.ndarray:
    """The ``embeddings`` entry of a result back into an ``(N, D)`` float32 array."""
    raw = base64.b64decode(block["base64"])
    return np.frombuffer(raw, dtype=np.dtype(block["dtype"])).reshape(block["shape"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="edgekd benchmark runner (numpy + one runtime)")
    parser.add_argument("--config", required=True, type=Path, help="job JSON")
    parser.add_argument("--out", required=True, type=Path, help="where to write the result JSON")
    args = parser.parse_args(argv)
    try:
        job = json.loads(args.config.read_text())
        result = run_job(job, args.config.resolve().parent)
    except ImportError as exc:
        print(f"runtime not installed here: {exc}", file=sys.stderr)
        return EXIT_RUNTIME_MISSING
    except (JobError, OSError, ValueError, KeyError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
