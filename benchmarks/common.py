"""Writing benchmark results: a Markdown table plus JSON, each stamped with command, machine and date."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
from pathlib import Path

from edgekd.info import host_info
from edgekd.isa import host_isa

RESULTS = Path(__file__).resolve().parent / "results"


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def write_result(name: str, title: str, body_md: str, payload: dict) -> Path:
    """Write ``results/<name>.md`` and ``results/<name>.json``; returns the Markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    host = host_info()
    cpu = host["cpu"]
    stamp = {
        "command": " ".join(shlex.quote(a) for a in ["python", *sys.argv]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu['model']}, {cpu['logical_cores']} logical cores, int8 ISA {host_isa()}, "
        f"{host['platform']}",
        "git": git_sha(),
    }
    md = RESULTS / f"{name}.md"
    md.write_text(
        f"# {title}\n\n"
        f"- command: `{stamp['command']}`\n- date: {stamp['date']}\n- machine: {stamp['machine']}\n"
        f"- git: {stamp['git']}\n- packages: "
        + ", ".join(f"{k} {v}" for k, v in host["packages"].items() if v)
        + f"\n\n{body_md}\n"
    )
    (RESULTS / f"{name}.json").write_text(json.dumps({**stamp, "host": host, **payload}, indent=2))
    return md


def child_result(args: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``python <args>`` (a benchmark re-invoking itself for one part, in a fresh process) and return
    the JSON it printed on a ``RESULT `` line; exit with its stderr when there is none."""
    import os

    cmd = [sys.executable, *args]
    done = subprocess.run(
        cmd,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{' '.join(args[1:])} failed:\n{done.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def quality_sets() -> dict:
    """The two test sets every quality benchmark reports side by side: LFW folds 6-10 (3,000 pairs,
    thresholds on the other 4 folds) and CFP-FP (frontal vs profile, 10 folds, 3,500 pairs), where the
    student is ~10 pp below the teacher and distillation has room to show."""
    from edgekd.data import load_verification_set
    from edgekd.paths import shared_dir

    data = shared_dir() / "data"
    return {
        "lfw": load_verification_set(data / "lfw112", "6-10"),
        "cfp_fp": load_verification_set(data / "cfp112"),
    }


def held_out_names() -> list[str]:
    """Name files of identities training must never see besides LFW folds 6-10's: CFP's celebrities
    (172 of them are LFW identities too)."""
    from edgekd.paths import shared_dir

    return [str(shared_dir() / "data/cfp112/names.txt")]


def interleaved_samples(embedders: dict, face, runs: int, rounds: int = 10) -> dict[str, list[float]]:
    """Per-call ms of each embedder on ``face``, measured in ``rounds`` interleaved blocks of
    ``runs // rounds`` so every embedder sees the same machine state (2 shared cores)."""
    from edgekd.bench.latency import measure

    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for name, e in embedders.items():
            samples[name] += measure(lambda e=e: e.embed(face), warmup=5, runs=runs // rounds).samples_ms
    return samples


def load_train_set(lfw: Path, test_folds: str):
    """LFW identities outside ``test_folds`` and the CFP celebrities, and all their faces in RAM (~6.9k
    faces of 112x112 fit): ``(dataset, images (N, 112, 112, 3) uint8, labels)``."""
    import numpy as np

    from edgekd.data.identity_folder import IdentityFolderDataset
    from edgekd.train.batches import held_out_identities

    ds = IdentityFolderDataset(lfw, exclude=held_out_identities(str(lfw), test_folds, held_out_names()))
    images = np.stack([ds[i].image for i in range(len(ds))])
    return ds, images, ds.labels()


def score(embedder, sets: dict) -> dict:
    """Accuracy (%), its fold std and every fold's accuracy, per test set."""
    from edgekd.eval import evaluate

    out = {}
    for name, vset in sets.items():
        m = evaluate(embedder, vset, progress=False).metrics
        out[name] = {
            "accuracy": 100 * m.accuracy,
            "std": 100 * m.accuracy_std,
            "folds": [100 * f for f in m.fold_accuracies],
        }
    return out


def paired(run: dict | None, base: dict | None) -> str:
    """``+0.43 (8/2)``: mean accuracy change against ``base`` and on how many folds it is better/worse.
    One pair is 0.03 pp on LFW 6-10 and 0.03 pp on CFP-FP, below the fold std: read the fold counts."""
    import numpy as np

    if run is None or base is None:
        return "-"
    diff = np.array(run["folds"]) - np.array(base["folds"])
    return f"{diff.mean():+.2f} ({int((diff > 0).sum())}/{int((diff < 0).sum())})"
