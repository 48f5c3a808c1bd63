"""``edgekd bench``: latency, memory and accuracy of artifacts, measured here or on a device, plus a
roofline estimate for the chosen device profile.

Pipeline per artifact: the format (:func:`edgekd.formats.get_format`, by file suffix) → a job for the
self-contained runner (threads and execution providers from the profile) → run locally in a fresh
process or on ``--remote`` over SSH → accuracy on ``--pairs`` through :func:`edgekd.eval.evaluate` →
the profile's estimate from the artifact's op list (:mod:`edgekd.bench.roofline`).

>>> run = bench(["model.onnx"], "x86", pairs="../shared/data/lfw112", folds="6-10")  # doctest: +SKIP
>>> print(report.markdown(run.to_dict()))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.bench import report
from edgekd.bench.profiles import Profile, RuntimeChoice, list_profiles, load_profile
from edgekd.config import from_dict
from edgekd.errors import ConfigError, ModelError, UnsupportedTargetError
from edgekd.formats import ArtifactFormat, get_format, suffixes

__all__ = ["BenchOptions", "BenchRun", "bench", "list_profiles", "load_profile", "report"]

log = logging.getLogger(__name__)

DEFAULT_RUNS = 50
HIGH_CV = 0.10  # std/mean above which the timings are called noisy
EMBED_BATCH = 64  # images per forward pass when embedding pairs (accuracy does not depend on it)
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class BenchOptions:
    """What ``edgekd bench`` was asked; validated once here (unknown keys and bad values are errors)."""

    artifacts: tuple[str, ...]
    profile: str
    pairs: str | None = None
    folds: str | None = None
    runs: int | None = None  # default DEFAULT_RUNS when neither runs nor seconds is given
    seconds: float | None = None
    min_seconds: float | None = None  # and time at least this long (MLPerf / benchmark_app minimum duration)
    warmup: int = 5
    batch: int = 8
    preprocess: str | None = None
    remote: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None
    remote_python: str = "python3"
    connect_timeout_s: int = 10
    timeout_s: float = 1800.0
    emulate: bool = False  # run on the profile's ISA under emulation (edgekd.bench.emulation)
    skip_hash: bool = False  # don't compare the artifact's sha256 with its manifest
    no_golden: bool = False  # don't run the golden faces (parity on the device)
    allow_mismatch: bool = False  # report hash/parity failures without failing the command

    def __post_init__(self) -> None:
        if not self.artifacts:
            raise ConfigError("no artifact given: use --artifact PATH (repeat for several)")
        if self.runs is not None and self.seconds is not None:
            raise ConfigError("give --runs or --seconds, not both")
        if (self.runs is not None and self.runs < 1) or (self.seconds is not None and self.seconds <= 0):
            raise ConfigError(f"--runs must be >= 1 and --seconds > 0, got {self.runs}, {self.seconds}")
        if self.min_seconds is not None and self.min_seconds < 0:
            raise ConfigError(f"--min-seconds must be >= 0, got {self.min_seconds}")
        if self.warmup < 0 or self.batch < 1:
            raise ConfigError(f"--warmup must be >= 0 and --batch >= 1, got {self.warmup}, {self.batch}")
        if self.emulate and self.remote:
            raise ConfigError("give --remote (a real device) or --emulate (this host emulating it), not both")
        if self.connect_timeout_s < 1 or self.timeout_s <= 0:
            raise ConfigError("timeouts must be positive")


@dataclass
class BenchRun:
    """All results of one ``bench`` call; :meth:`to_dict` is the JSON format the reports read."""

    options: BenchOptions
    profile: Profile
    where: str
    measured_on: str
    results: list[dict]
    pairs: dict | None = None
    notes: list[str] = field(default_factory=list)
    host: dict = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        """Hash and on-device parity failures, one line each, named by artifact."""
        return [f"{r['name']}: {f}" for r in self.results for f in r.get("failures", [])]

    def to_dict(self) -> dict:
        from edgekd.config import to_dict

        return {
            "edgekd_bench": report.FORMAT_VERSION,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "where": self.where,
            "measured_on": self.measured_on,
            "profile": {
                "name": self.profile.name,
                "description": self.profile.description,
                "threads": self.profile.threads,
            },
            "options": {**to_dict(self.options), "runs": _runs(self.options)},
            "pairs": self.pairs,
            "results": self.results,
            "notes": self.notes,
            "failures": self.failures,
            "host": self.host,
        }


def _runs(opts: BenchOptions) -> int | None:
    return opts.runs if opts.runs is not None or opts.seconds is not None else DEFAULT_RUNS


def _format(path: Path) -> ArtifactFormat:
    """The artifact's format (:mod:`edgekd.formats`) by its suffix, or an error naming the known ones."""
    suffix = path.suffix.lower()
    if suffix not in suffixes():
        raise UnsupportedTargetError(
            f"{path}: no benchmark runner for '{suffix or '(none)'}' files; known: {', '.join(suffixes())} "
            "(edgekd convert makes them)"
        )
    return get_format(suffix)


def _precision(ops) -> str:
    macs = sum(op.macs for op in ops)
    int8 = sum(op.macs for op in ops if op.precision == "int8")
    if macs and int8 / macs > 0.95:
        return "int8"
    if int8:
        return f"mixed ({100 * int8 / macs:.0f} % int8 MACs)"
    return "fp32 (int8 weights)" if any(op.weight_only_int8 for op in ops) else "fp32"


def _measured_on(host: dict) -> str:
    return f"{host['cpu']} ({host['machine']}, {host['logical_cores']} logical cores)"


def _estimates(fmt, path: Path, profile: Profile, batch: int, dynamic_batch: bool) -> tuple[dict, list[str]]:
    """The profile's estimate (batch 1, and batch ``batch`` for throughput) and one per known profile."""
    from edgekd.bench.roofline import estimate

    try:
        ops = fmt.op_list(path, 1)
    except ModelError as exc:
        return {"precision": "unknown"}, [f"no estimate: {exc}"]
    choice = profile.runtime_for(fmt.runtime) or RuntimeChoice(fmt.runtime)
    unit = choice.unit
    est = estimate(ops, profile.unit_for(choice), 1, unit)
    precision = _precision(ops)
    out: dict[str, Any] = {"precision": precision, "estimate": est.to_dict()}
    slow = profile.int8_not_faster(fmt.runtime) if precision != "fp32" else None
    notes = [*est.notes, *([slow] if slow else [])]
    if batch > 1 and dynamic_batch:
        try:
            est_b = estimate(fmt.op_list(path, batch), profile.unit_for(choice), batch, unit)
            out["estimate"]["images_per_s_at_batch"] = round(1e3 * batch / est_b.latency_ms, 2)
        except ModelError as exc:
            notes.append(f"no estimate at batch {batch}: {exc}")
    by_profile, units = {}, {}
    for name in list_profiles():
        other = load_profile(name)
        c = other.runtime_for(fmt.runtime)
        if c:
            by_profile[name] = round(estimate(ops, other.unit_for(c), 1, c.unit).latency_ms, 3)
            units[name] = c.unit
    out["estimates_by_profile"] = by_profile
    out["estimate_units"] = units  # where each profile's runtime for this format computes (cpu / gpu)
    return out, notes


def bench(
    artifacts: list[str] | tuple[str, ...], profile: str, progress: bool = False, **options: Any
) -> BenchRun:
    """Benchmark ``artifacts`` with ``profile``'s settings; options as :class:`BenchOptions` (``None`` =
    default). Runs here unless ``remote="user@host[:port]"``.

    >>> run = bench(["sface.onnx"], "rpi4", pairs="synthetic", runs=20)  # doctest: +SKIP
    >>> run.results[0]["latency"]["p50_ms"], run.results[0]["estimate"]["latency_ms"]  # doctest: +SKIP
    (12.4, 85.5)
    """
    from edgekd.bench.remote import RemoteTarget

    values = {"artifacts": tuple(str(a) for a in artifacts), "profile": profile}
    values.update({k: v for k, v in options.items() if v is not None})
    opts = from_dict(BenchOptions, values, source="bench options")
    prof = load_profile(opts.profile)
    planned = []
    for ref in opts.artifacts:
        path = Path(ref)
        if not path.is_file():
            raise ModelError(f"artifact not found: {path}")
        fmt = _format(path)
        if prof.runtime_for(fmt.runtime) is None:
            runtimes = ", ".join(c.runtime for c in prof.runtimes)
            raise UnsupportedTargetError(
                f"profile {prof.name} lists no {fmt.runtime} runtime for {path.name} "
                f"(its runtimes: {runtimes})"
            )
        planned.append((path, fmt))
    target: Any = None
    if opts.emulate:
        target = _emulated_device(prof, planned)
    elif opts.remote:
        target = RemoteTarget.parse(
            opts.remote,
            identity=Path(opts.ssh_key).expanduser() if opts.ssh_key else None,
            known_hosts=Path(opts.known_hosts).expanduser() if opts.known_hosts else None,
            python=opts.remote_python,
            connect_timeout_s=opts.connect_timeout_s,
            timeout_s=opts.timeout_s,
        )
    else:
        for path, fmt in planned:
            if importlib.util.find_spec(fmt.module) is None:
                raise UnsupportedTargetError(
                    f"{fmt.module} (needed to run {path.suffix} artifacts) is not installed on this host: "
                    f"pip install -c constraints.txt {fmt.module}, or measure on a device with "
                    "--remote USER@HOST"
                )

    vset, pairs = None, None
    if opts.pairs:
        from edgekd.data import load_verification_set

        vset = load_verification_set(opts.pairs, opts.folds)
        pairs = {
            "name": vset.name,
            "folds": opts.folds or "all",
            "num_pairs": vset.num_pairs,
            "num_folds": len(np.unique(vset.folds)),
        }

    with tempfile.TemporaryDirectory(prefix="edgekd-bench-") as tmp:
        work = Path(tmp)
        images = images_path = None
        if vset is not None and target is not None:
            from edgekd.bench.accuracy import dataset_images

            images = dataset_images(vset.images, progress)
            images_path = work / "images.npy"
            np.save(images_path, images)
        results, run_notes, measured_on = [], [], None
        for i, (path, fmt) in enumerate(planned):
            sub = work / f"a{i}"
            sub.mkdir()
            result = _bench_one(path, fmt, prof, opts, target, vset, images, images_path, sub, progress)
            measured_on = measured_on or result["measured_on"]
            results.append(result)
    where = f"ssh {target.label}" if isinstance(target, RemoteTarget) else target.label if target else "local"
    if target is None:
        run_notes += _host_notes(prof, results[0] if results else None)
    if isinstance(target, EmulatedDevice):
        run_notes.append(
            f"emulated {target.isa} ({target.how}): accuracy and parity are the {target.isa} kernels' real "
            "numbers; latency is instruction-level emulation, not a device latency, and is not reported"
        )
    run_notes += _int8_speed_notes(results)
    from edgekd.info import host_info

    return BenchRun(opts, prof, where, measured_on or "?", results, pairs, run_notes, host_info())


def _host_notes(prof: Profile, result: dict | None) -> list[str]:
    """Say plainly when this host is not the profile's device (the usual case for local runs)."""
    if result is None:
        return []
    host = result["host"]
    arch = _ARCH.get(host["machine"].lower(), host["machine"])
    notes = []
    if arch != prof.cpu.arch or host["logical_cores"] != prof.cpu.cores:
        notes.append(
            f"this host is not a {prof.name} device: measured columns are this host's numbers "
            f"({host['cpu']}); the estimate column is for {prof.name}"
        )
    missing = [f for f in prof.cpu.isa if f not in host["features"] and arch == prof.cpu.arch]
    if missing:
        notes.append(
            f"this host lacks the profile's {', '.join(missing)}: int8 speed here is not {prof.name}'s"
        )
    return notes


@dataclass(frozen=True)
class EmulatedDevice:
    """The profile's ISA run on this host under emulation: the runner's Python under QEMU (an ARM64
    root for Pis and Jetsons, QEMU Haswell for x86 without VNNI)."""

    isa: str
    cpu: str | None
    how: str

    @property
    def label(self) -> str:
        return f"emulated {self.isa}" + (f" ({self.cpu})" if self.cpu else "")


def _emulated_device(prof: Profile, planned: list) -> EmulatedDevice:
    """The emulator for ``prof``'s ISA, checked for every planned format before any work."""
    from edgekd.bench.emulation import emulator

    isa = prof.cpu.int8_isa
    for _, fmt in planned:
        emu = emulator(isa, fmt.backend, prof.cpu.qemu_cpu)
        emu.command()  # not installed / not built: the error says how to get it
    return EmulatedDevice(isa, prof.cpu.qemu_cpu, emu.how)


def _int8_speed_notes(results: list[dict]) -> list[str]:
    """When one run holds float and int8 artifacts of a format, say plainly if int8 was not faster."""
    notes = []
    for fmt in sorted({r["format"] for r in results}):
        same = [r for r in results if r["format"] == fmt and r.get("latency") and not r.get("emulated")]
        floats = [r for r in same if r.get("precision") == "fp32"]
        for r in (r for r in same if r.get("precision") == "int8"):
            for f in floats:
                ratio = f["latency"]["p50_ms"] / r["latency"]["p50_ms"]
                if ratio <= 1.0:
                    notes.append(
                        f"measured: int8 {r['name']} is not faster than float {f['name']} on this host "
                        f"({fmt}: ×{ratio:.2f}, p50 {r['latency']['p50_ms']:.2f} vs "
                        f"{f['latency']['p50_ms']:.2f} ms)"
                    )
    return notes


def _bench_one(path, fmt, prof, opts, target, vset, images, images_path, work, progress) -> dict:
    from edgekd.bench.bundle import bundle_files, run_local
    from edgekd.bench.remote import run_remote

    run_path, notes = fmt.prepare(path, work)
    spec = fmt.preprocess(path, opts.preprocess)
    choice = prof.runtime_for(fmt.runtime)
    threads = prof.threads
    local = target is None or isinstance(target, EmulatedDevice)
    if local and threads > (os.cpu_count() or threads):
        threads = os.cpu_count() or threads
        notes.append(
            f"{prof.name} uses {prof.threads} threads; this host has {threads} logical cores: ran {threads}"
        )
    job = {
        "artifact": str(run_path.resolve()),
        "backend": fmt.backend,
        "threads": threads,
        "providers": list(choice.providers),
        "warmup": opts.warmup,
        "runs": _runs(opts),
        "seconds": opts.seconds,
        "min_seconds": opts.min_seconds,
        "batch": opts.batch,
        "input": spec.to_dict(),
        "embed_batch": EMBED_BATCH,
        "seed": 0,
    }
    golden, sent, failures = _golden_job(path, run_path, job, opts)
    log.info("benchmarking %s (%s) %s", path.name, fmt.name, f"on {target.label}" if target else "locally")
    if isinstance(target, EmulatedDevice):
        # emulated time is not a latency: a token timing run, then the images and golden faces
        job.update(warmup=0, runs=2, seconds=None, min_seconds=None, batch=1)
        job["images"] = str(images_path.resolve()) if images_path else None
        res = run_local(job, fmt.backend, fmt.module, opts.timeout_s, emulate=target.isa, cpu=target.cpu)
        res["emulated"] = True
        res["host"] = {**res["host"], "cpu": f"{target.label} on {res['host']['cpu']}"}
    elif target is not None:
        res = run_remote(target, job, bundle_files(fmt.backend), run_path, images_path, fmt.module)
    else:
        res = run_local(job, fmt.backend, fmt.module, opts.timeout_s)
    device_parity, device_failures = _device_checks(path, sent, res, golden, target)
    failures += device_failures
    runtime = res["runtime"]
    if runtime.get("providers_missing"):
        notes.append(
            f"profile prefers {', '.join(runtime['providers_missing'])}: not in this onnxruntime build; "
            f"ran on {', '.join(runtime['providers'])}"
        )
    cv = res["latency"].get("cv")
    if cv is not None and cv > HIGH_CV:
        notes.append(
            f"latency varies a lot (coefficient of variation {100 * cv:.0f} %, as trtexec warns above "
            f"{100 * HIGH_CV:.0f} %): a busy or throttling machine; p50 is the robust number, or re-run "
            "with --min-seconds 60 on a quiet host"
        )
    if res.get("max_batch") and job["batch"] > 1:
        notes.append(
            f"static batch {res['max_batch']}: batch {opts.batch} ran as {res['max_batch']}-image calls"
        )

    accuracy = None
    if vset is not None:
        from edgekd.eval import evaluate

        if target is not None:
            from edgekd.bench.accuracy import ReplayEmbedder
            from edgekd.bench.runner_script import decode_embeddings

            embedder = ReplayEmbedder(path.name, decode_embeddings(res["embeddings"]), images, spec)
            accuracy = evaluate(embedder, vset, batch_size=EMBED_BATCH, progress=False).to_dict()
            accuracy["embed_seconds"] = res.get("embed_seconds")
        else:
            from edgekd.runtime import load_embedder

            embedder = load_embedder(path, threads=threads, preprocess=opts.preprocess)
            accuracy = evaluate(embedder, vset, batch_size=EMBED_BATCH, progress=progress).to_dict()

    est, est_notes = _estimates(fmt, path, prof, opts.batch, res.get("max_batch") is None)
    res.pop("embeddings", None)
    return {
        "artifact": str(path),
        "name": path.name,
        "format": fmt.name,
        "size_bytes": path.stat().st_size,
        "measured_on": _measured_on(res["host"]),
        **res,
        "accuracy": accuracy,
        "device_parity": device_parity,
        "failures": failures,
        **est,
        "notes": notes + est_notes,
    }


def _golden_job(
    path: Path, run_path: Path, job: dict, opts: BenchOptions
) -> tuple[Any, dict[str, str], list[str]]:
    """Add the golden faces and the files to hash to ``job``; check the artifact against its manifest's
    sha256 here first. Returns (golden or None, the sha256 the device must see, failures so far)."""
    from edgekd.convert.golden import artifact_files, artifact_sha256, hash_mismatches, read_golden

    golden = None if opts.no_golden else read_golden(path)
    sent = artifact_sha256(run_path)  # what the runner must hash where it runs
    failures = []
    if golden is not None and golden.artifact_sha256 and not opts.skip_hash:
        here = sent if run_path == path else artifact_sha256(path)
        changed = hash_mismatches(golden.artifact_sha256, here)
        if changed:
            failures.append(
                f"sha256 of {', '.join(changed)} differs from manifest.json: not the artifact convert "
                "checked (re-run edgekd convert, or --skip-hash to measure it anyway)"
            )
    if golden is not None:
        job["golden"] = str(golden.faces.resolve())
    job["hash"] = {p.name: str(p.resolve()) for p in artifact_files(run_path)}
    return golden, sent, failures


def _device_checks(
    path: Path, sent: dict[str, str], res: dict, golden, target
) -> tuple[dict | None, list[str]]:
    """The files arrived intact (device sha256 = ``sent``) and compute the golden embeddings."""
    from edgekd.bench.runner_script import decode_embeddings
    from edgekd.convert.golden import golden_parity, hash_mismatches

    failures = []
    if res.get("sha256") is not None:
        changed = hash_mismatches(sent, res["sha256"])
        if changed:
            failures.append(f"{', '.join(changed)} arrived altered on the device (sha256 differs)")
    if golden is None or res.get("golden_embeddings") is None:
        return None, failures
    where = f"{target.label}" if target is not None else "this host"
    report = golden_parity(decode_embeddings(res["golden_embeddings"]), golden, f"{path.name} on {where}")
    if not report.passed:
        failures.append(
            f"parity on {where}: mean cosine {report.mean_cosine:.5f} (≥ {report.mean_threshold}), min "
            f"{report.min_cosine:.5f} (≥ {report.min_threshold}) against {golden.reference}: this device "
            "does not compute the network convert checked"
        )
    return report.to_dict(), failures


def compare_files(paths: list[str | Path]) -> tuple[list[dict], str]:
    """Read several ``--json`` results; returns them and a side-by-side Markdown table."""
    if len(paths) < 1:
        raise ConfigError("--compare needs at least one result file (written by edgekd bench --json)")
    runs = [report.read_json(p) for p in paths]
    return runs, report.compare(runs, [Path(p).name for p in paths])
