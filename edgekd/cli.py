"""``edgekd`` command line: a thin layer that parses, validates and hands over to the library."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from edgekd import __version__
from edgekd.errors import EdgeKDError

log = logging.getLogger("edgekd")


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn edgekd's typed errors into ``error: ...`` and exit status 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeKDError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="edgekd")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """edgekd: distil a large face-recognition network into a small int8 CNN for edge devices.

    \b
    Stages:  distill-qat (train) → convert (int8 artifact) → bench (accuracy + latency)
    Today:   eval (verification accuracy of any model), bench (latency, accuracy and a
             roofline estimate per device profile), info (this host)
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


@main.command("eval")
@click.option(
    "-c", "--config", type=click.Path(dir_okay=False), help="YAML file with any of the options below."
)
@click.option(
    "-m",
    "--model",
    "models",
    multiple=True,
    help="Model file (.onnx, .pt state_dict) or known name (sface, sface_int8bq, "
    "mobilefacenet_ms1m). Repeat to compare models in one table.",
)
@click.option(
    "-p",
    "--pairs",
    help="LFW folder with pairs.txt, a pairs .txt, an insightface .bin, or "
    "'synthetic'.  [default: synthetic]",
)
@click.option(
    "--folds",
    help="Fold selection, e.g. '6-10' or '1,3'. Thresholds are chosen on the other "
    "selected folds.  [default: all]",
)
@click.option(
    "--flip/--no-flip", default=None, help="Also report the flip test (sum of image and mirror embeddings)."
)
@click.option("-t", "--threads", type=int, help="Intra-op threads for the runtime.  [default: all cores]")
@click.option("-b", "--batch-size", type=int, help="Images per forward pass.  [default: 64]")
@click.option(
    "--preprocess",
    help="Override the model's preprocessing: a preset (raw255, arcface, imagenet), optionally with "
    "overrides, or key=value items: 'arcface,order=BGR', 'mean=127.5,std=128,layout=NHWC' (keys: mean, "
    "std, order, layout, size). Needed only for foreign files that do not declare it; the layout follows "
    "the model's input shape.",
)
@click.option("--arch", help="Architecture of a raw .pt state_dict (detected from its keys if omitted).")
@click.option(
    "--device",
    help="Where PyTorch models run: cpu, cuda, cuda:N or auto (a GPU when present). Artifacts (.onnx, "
    ".xml, .tflite) always run on their runtime's CPU path.  [default: cpu]",
)
@click.option("--json", "json_path", help="Also write the results as JSON to this file.")
@click.option(
    "-o",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key, e.g. -o folds=6-10 (YAML values).",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar while embedding.")
@_friendly
def eval_cmd(
    config: str | None,
    models: tuple[str, ...],
    overrides: tuple[str, ...],
    progress: bool,
    json_path: str | None,
    **options: Any,
) -> None:
    """Face-verification accuracy of one or more models on a pair set (insightface protocol).

    \b
    Reports 10-fold accuracy (threshold chosen on the other folds), TAR@FAR, ROC AUC and EER.
    Example:
      edgekd eval -m sface -m mobilefacenet_ms1m -p ../shared/data/lfw112 --folds 6-10
    """
    from edgekd.config import EvalConfig, load_config
    from edgekd.data import load_verification_set
    from edgekd.device import resolve_device
    from edgekd.eval import evaluate
    from edgekd.eval.report import results_summary, write_json
    from edgekd.info import host_info
    from edgekd.runtime import load_embedder, place_on_device

    cfg = load_config(EvalConfig, config, overrides, model=models, json=json_path, **options)
    if not cfg.model:
        raise click.UsageError("no model given: use --model PATH (or 'model:' in the config)")
    resolve_device(cfg.device)  # a device that is not here fails before any model or pair is read
    vset = load_verification_set(cfg.pairs, cfg.folds)
    results = []
    for ref in cfg.model:
        embedder = load_embedder(ref, threads=cfg.threads, preprocess=cfg.preprocess, arch=cfg.arch)
        embedder = place_on_device(embedder, cfg.device)
        results.append(evaluate(embedder, vset, flip=cfg.flip, batch_size=cfg.batch_size, progress=progress))
    click.echo(results_summary(results))
    if cfg.json:
        write_json(results, cfg.json, extra={"config": _plain(cfg), "host": host_info()})
        click.echo(f"wrote {cfg.json}")


@main.command("bench")
@click.option(
    "-a", "--artifact", "artifacts", multiple=True, help="Artifact to benchmark (.onnx). Repeat to compare."
)
@click.option("--profile", help="Device profile: rpi4, rpi5, jetson-nano, jetson-orin-nano, x86, x86-vnni.")
@click.option("-p", "--pairs", help="Pair set for accuracy (as in edgekd eval): LFW folder, .bin, synthetic.")
@click.option("--folds", help="Fold selection for accuracy, e.g. '6-10'.  [default: all]")
@click.option("--runs", type=int, help="Timed runs after warm-up.  [default: 50]")
@click.option("--seconds", type=float, help="Time runs for this long instead of a fixed --runs.")
@click.option(
    "--min-seconds",
    type=float,
    help="And keep timing until this long has passed (MLPerf/benchmark_app minimum duration, e.g. 60).",
)
@click.option("--warmup", type=int, help="Untimed warm-up runs.  [default: 5]")
@click.option("-b", "--batch", type=int, help="Batch size for the throughput measurement.  [default: 8]")
@click.option(
    "--preprocess",
    help="Override the artifact's preprocessing: a preset (raw255, arcface, imagenet) and/or key=value "
    "items, e.g. 'arcface,order=BGR' (as in edgekd eval).",
)
@click.option("--remote", metavar="USER@HOST[:PORT]", help="Measure on this device over SSH.")
@click.option(
    "--emulate",
    is_flag=True,
    default=None,
    help="Run on the profile's CPU under emulation here (QEMU: an ARM64 root for Pis/Jetsons, built by "
    "`make arm64-device`; Haswell for x86): real accuracy and parity, no latency.",
)
@click.option("--ssh-key", type=click.Path(dir_okay=False), help="Private key for --remote.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="known_hosts file for --remote.")
@click.option("--remote-python", help="Python with numpy + the runtime on the device.  [default: python3]")
@click.option(
    "--skip-hash",
    is_flag=True,
    default=None,
    help="Measure an artifact whose sha256 differs from its manifest.",
)
@click.option(
    "--no-golden", is_flag=True, default=None, help="Don't check parity on the device (golden faces)."
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    default=None,
    help="Report hash/parity failures but exit 0 (default: exit 1 after the report).",
)
@click.option("--json", "json_path", help="Write the results as JSON (input of --compare).")
@click.option("--report", "report_path", help="Write a Markdown report with plots beside it.")
@click.option("--compare", is_flag=True, help="Compare result files given as arguments instead of measuring.")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=False, help="Progress bars while embedding pairs.")
@_friendly
def bench_cmd(
    compare: bool,
    files: tuple[str, ...],
    json_path: str | None,
    report_path: str | None,
    progress: bool,
    artifacts: tuple[str, ...],
    profile: str | None,
    **options: Any,
) -> None:
    """Latency, memory and accuracy of artifacts, plus a roofline estimate for a device profile.

    \b
    Measures here (or on --remote USER@HOST over SSH) with the profile's threads and providers;
    the estimate is the profile's roofline from the artifact's op list, not a measurement.
    Artifacts made by `edgekd convert` are checked where they run: their sha256 against
    manifest.json, and their golden faces against the embeddings convert recorded (parity).
    Examples:
      edgekd bench -a sface_fp32.onnx --profile rpi4 -p ../shared/data/lfw112 --folds 6-10
      edgekd bench -a model.onnx --profile rpi5 --remote pi@raspberrypi.local --json pi5.json
      edgekd bench --compare x86.json pi5.json --report compare.md
    """
    from edgekd.bench import bench, compare_files, report

    if compare:
        runs, table = compare_files(list(files))
        click.echo(table)
        if report_path:
            for path in report.write_report(runs, report_path, table):
                click.echo(f"wrote {path}")
        return
    if files:
        raise click.UsageError(f"unexpected arguments {' '.join(files)} (to compare result files: --compare)")
    if not profile:
        raise click.UsageError("no profile given: use --profile NAME (e.g. x86, rpi4)")
    result = bench(artifacts, profile, progress=progress, **options)
    run = result.to_dict()
    body = report.markdown(run)
    click.echo(body)
    if json_path:
        click.echo(f"wrote {report.write_json(run, json_path)}")
    if report_path:
        for path in report.write_report([run], report_path, body):
            click.echo(f"wrote {path}")
    if json_path:
        click.echo(
            "next: measure on the device (add --remote USER@HOST --json dev.json), then: "
            f"edgekd bench --compare {json_path} dev.json"
        )
    else:
        click.echo("next: add --json out.json (and --report out.md) to keep the results and plots")
    if result.failures and not result.options.allow_mismatch:
        raise click.ClickException(
            "the device does not run what convert checked:\n  "
            + "\n  ".join(result.failures)
            + "\n(--allow-mismatch reports this without failing)"
        )


def _plain(cfg: Any) -> Any:
    from edgekd.config import to_dict

    return to_dict(cfg)


@main.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_friendly
def info_cmd(as_json: bool) -> None:
    """Versions, inference runtimes, the CPU's int8 features and how each runtime accumulates int8 here."""
    from edgekd.info import host_info
    from edgekd.paths import shared_dir

    info = host_info()
    info["shared_dir"] = str(shared_dir()) if shared_dir() else None
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    cpu = info["cpu"]
    click.echo(f"edgekd {__version__}  python {info['python']}  {info['platform']}")
    click.echo(f"cpu: {cpu['model']} ({cpu['logical_cores']} logical cores)")
    click.echo(f"cpu features: {', '.join(cpu['features']) or 'none of interest'}")
    int8 = info["int8"]
    click.echo(f"int8 arithmetic here: {int8['isa']} ({int8['description']})")
    for name, how in int8["runtimes"].items():
        click.echo(f"  {name:<16} {how}")
    click.echo(f"  targets exact on this host: {', '.join(int8['exact_targets'])}")
    if int8["inexact_targets"]:
        inexact = ", ".join(int8["inexact_targets"])
        click.echo(f"  not exact here (artifacts run, but compute another network): {inexact}")
    click.echo("packages:")
    for name, version in info["packages"].items():
        click.echo(f"  {name:<16} {version or '-'}")
    click.echo("runtimes:")
    for name, providers in info["runtimes"].items():
        click.echo(f"  {name:<16} {', '.join(providers) if providers else 'not installed'}")
    click.echo(f"shared data: {info['shared_dir'] or 'not found (set EDGEKD_SHARED)'}")


from edgekd import cli_convert, cli_train  # noqa: E402, F401  (register distill, distill-qat, convert)
