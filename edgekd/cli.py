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
    Today:   eval (verification accuracy of any model), info (this host)
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
    help="Override the model's preprocessing: raw255, arcface or imagenet "
    "(needed only for foreign ONNX files that do not declare it).",
)
@click.option("--arch", help="Architecture of a raw .pt state_dict (detected from its keys if omitted).")
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
    from edgekd.eval import evaluate
    from edgekd.eval.report import results_summary, write_json
    from edgekd.info import host_info
    from edgekd.runtime import load_embedder

    cfg = load_config(EvalConfig, config, overrides, model=models, json=json_path, **options)
    if not cfg.model:
        raise click.UsageError("no model given: use --model PATH (or 'model:' in the config)")
    vset = load_verification_set(cfg.pairs, cfg.folds)
    results = []
    for ref in cfg.model:
        embedder = load_embedder(ref, threads=cfg.threads, preprocess=cfg.preprocess, arch=cfg.arch)
        results.append(evaluate(embedder, vset, flip=cfg.flip, batch_size=cfg.batch_size, progress=progress))
    click.echo(results_summary(results))
    if cfg.json:
        write_json(results, cfg.json, extra={"config": _plain(cfg), "host": host_info()})
        click.echo(f"wrote {cfg.json}")


def _plain(cfg: Any) -> Any:
    from edgekd.config import to_dict

    return to_dict(cfg)


@main.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_friendly
def info_cmd(as_json: bool) -> None:
    """Versions, inference runtimes found and the CPU's int8-relevant features."""
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
    click.echo("packages:")
    for name, version in info["packages"].items():
        click.echo(f"  {name:<16} {version or '-'}")
    click.echo("runtimes:")
    for name, providers in info["runtimes"].items():
        click.echo(f"  {name:<16} {', '.join(providers) if providers else 'not installed'}")
    click.echo(f"shared data: {info['shared_dir'] or 'not found (set EDGEKD_SHARED)'}")
