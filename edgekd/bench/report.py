"""Bench results as a Markdown table, JSON and plots; ``compare`` merges several result files.

Everything here works on the JSON form of a run (:meth:`edgekd.bench.BenchRun.to_dict`), so a file
written today on a laptop and one fetched from a device tomorrow compare the same way. Plots use
matplotlib's Agg backend (files only, no display).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.errors import DataError

FORMAT_VERSION = 1


def _f(value, fmt: str = ".2f", none: str = "n/a") -> str:
    return none if value is None else format(value, fmt)


def _ms(value: float | None) -> str:
    """Milliseconds with about three significant digits (0.0123, 1.23, 12.3, 123)."""
    if value is None:
        return "n/a"
    for limit, digits in ((100, 0), (10, 1), (1, 2)):
        if abs(value) >= limit:
            return f"{value:.{digits}f}"
    return f"{value:.3f}"


def _acc(result: dict) -> str:
    acc = result.get("accuracy")
    if not acc:
        return "n/a"
    m = acc["metrics"]
    return f"{100 * m['accuracy']:.2f} ± {100 * m['accuracy_std']:.2f}"


def _cv(cv: float | None) -> str:
    return "" if cv is None or cv != cv else f" ({100 * cv:.0f} %)"


def _parity(p: dict | None) -> str:
    if not p:
        return "-"
    return f"{p['mean_cosine']:.5f} / {p['min_cosine']:.5f}" + ("" if p["passed"] else " FAIL")


def results_table(run: dict) -> str:
    """One row per artifact: measured latency/throughput/memory, accuracy, and the profile's estimate."""
    profile = run["profile"]["name"]
    batch = run["options"]["batch"]
    units = sorted({r["estimate"].get("unit", "cpu") for r in run["results"] if r.get("estimate")})
    unit = f" {units[0]}" if len(units) == 1 else ""
    header = [
        "artifact",
        "precision",
        "size MB",
        "load ms",
        "first ms",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean ± std ms (CV)",
        "min / max ms",
        f"img/s @ batch {batch}",
        "peak RSS MB",
        "accuracy %",
        "parity here (mean / min cos)",
        f"estimate {profile}{unit} ms",
    ]
    rows = []
    for r in run["results"]:
        lat, est = r["latency"], r.get("estimate")
        timing = [
            _ms(r["load_ms"]),
            _ms(r["first_ms"]),
            _ms(lat["p50_ms"]),
            _ms(lat["p90_ms"]),
            _ms(lat["p99_ms"]),
            f"{_ms(lat['mean_ms'])} ± {_ms(lat['std_ms'])}" + _cv(lat.get("cv")),
            f"{_ms(lat['min_ms'])} / {_ms(lat['max_ms'])}",
            _f(r["throughput"]["images_per_s"], ".1f"),
        ]
        if r.get("emulated"):  # instruction-level emulation: never reported as a latency
            timing = ["emulated"] * len(timing)
        rows.append(
            [
                r["name"],
                r["precision"],
                _ms(r["size_bytes"] / 1e6),
                *timing,
                _f(r["memory"]["peak_rss_mb"], ".0f"),
                _acc(r),
                _parity(r.get("device_parity")),
                _ms(est and est["latency_ms"]),
            ]
        )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def estimates_table(run: dict) -> str:
    """Roofline estimates (ms, batch 1) of every artifact on every profile."""
    names = sorted({p for r in run["results"] for p in (r.get("estimates_by_profile") or {})})
    if not names:
        return ""
    units = {p: u for r in run["results"] for p, u in (r.get("estimate_units") or {}).items()}
    cols = [f"{n} ({units[n]})" if units.get(n, "cpu") != "cpu" else n for n in names]
    lines = ["| artifact | " + " | ".join(cols) + " |", "|" + "---|" * (len(names) + 1)]
    for r in run["results"]:
        by = r.get("estimates_by_profile") or {}
        lines.append(f"| {r['name']} | " + " | ".join(_ms(by.get(n)) for n in names) + " |")
    return "\n".join(lines)


def markdown(run: dict) -> str:
    """The whole report: what was measured where, the table, the estimates, the notes."""
    p, opts = run["profile"], run["options"]
    first = run["results"][0] if run["results"] else {}
    mode = f"{opts['runs']} runs" if opts.get("runs") else f"{opts['seconds']} s"
    out = [
        f"**measured on {run['measured_on']}** ({run['where']}; {first.get('threads', '?')} threads; "
        f"{first.get('runtime', {}).get('runtime', '?')} {first.get('runtime', {}).get('version', '')} "
        f"{', '.join(first.get('runtime', {}).get('providers', []))}; {opts['warmup']} warm-up, {mode})",
        f"**estimate** = roofline for profile `{p['name']}` ({p['description']}) from each artifact's op "
        "list — not a measurement (docs/profiles.md)",
    ]
    if run.get("pairs"):
        pr = run["pairs"]
        out.append(
            f"accuracy: {pr['name']}, {pr['num_pairs']} pairs, {pr['num_folds']} folds (edgekd eval protocol)"
        )
    out += ["", results_table(run)]
    est = estimates_table(run)
    if est:
        out += ["", "Estimates on every profile (ms per image, batch 1; roofline, not measured):", "", est]
    notes = [f"{r['name']}: {n}" for r in run["results"] for n in r.get("notes", [])]
    notes += run.get("notes", [])
    if notes:
        out += ["", *[f"- {n}" for n in notes]]
    parity = [r for r in run["results"] if r.get("device_parity")]
    if parity:
        refs = sorted({r["device_parity"]["reference"] for r in parity})
        out += ["", f"parity here: the golden faces of each artifact's manifest vs {'; '.join(refs)}"]
    if run.get("failures"):
        out += ["", "**FAILED checks:**", *[f"- {f}" for f in run["failures"]]]
    return "\n".join(out)


def write_json(run: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(run, indent=2))
    tmp.replace(path)
    return path


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"bench result not found: {path}")
    try:
        run = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(run, dict) or run.get("edgekd_bench") != FORMAT_VERSION:
        raise DataError(f"{path} is not an edgekd bench result (write one with edgekd bench --json)")
    return run


def _label(run: dict, result: dict) -> str:
    return f"{result['name']}\n{run['where']}"


def plot_latency(runs: list[dict], path: str | Path) -> Path:
    """Distribution of the timed single-image latencies, one box (with the points) per artifact and run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(run, r) for run in runs for r in run["results"] if r.get("samples_ms")]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(pairs) + 2), 4.5))
    data = [r["samples_ms"] for _, r in pairs]
    ax.boxplot(data, showfliers=True, whis=(1, 99))
    for i, samples in enumerate(data, start=1):
        ax.plot([i] * len(samples), samples, ".", alpha=0.25, color="tab:blue", markersize=3)
        p90 = pairs[i - 1][1]["latency"]["p90_ms"]
        ax.plot([i - 0.25, i + 0.25], [p90, p90], color="tab:red", linewidth=1)
    ax.set_xticks(range(1, len(pairs) + 1), [_label(run, r) for run, r in pairs], fontsize=8)
    ax.set_ylabel("latency per image, batch 1 (ms)")
    ax.set_title("Measured latency\nbox: p25–p75, whiskers: p1–p99, red: p90", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_accuracy_latency(runs: list[dict], path: str | Path) -> Path:
    """Accuracy against latency: measured p50 (filled) and each profile's estimate (hollow) per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>Ph*"
    profiles = sorted(
        {p for run in runs for r in run["results"] for p in (r.get("estimates_by_profile") or {})}
    )
    names = sorted({r["name"] for run in runs for r in run["results"]})
    any_point = False
    for run in runs:
        for r in run["results"]:
            if not r.get("accuracy"):
                continue
            acc = 100 * r["accuracy"]["metrics"]["accuracy"]
            colour = colours[names.index(r["name"]) % len(colours)]
            ax.plot(r["latency"]["p50_ms"], acc, "o", color=colour, markersize=8)
            ax.annotate(
                f"{r['name']} ({run['where']})",
                (r["latency"]["p50_ms"], acc),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
            for p, ms in (r.get("estimates_by_profile") or {}).items():
                if ms:
                    m = markers[profiles.index(p) % len(markers)]
                    ax.plot(ms, acc, m, markerfacecolor="none", color=colour, markersize=7)
            any_point = True
    units = {p: u for run in runs for r in run["results"] for p, u in (r.get("estimate_units") or {}).items()}
    accs = [
        100 * r["accuracy"]["metrics"]["accuracy"]
        for run in runs
        for r in run["results"]
        if r.get("accuracy")
    ]
    if accs:  # a narrow band around the points, not matplotlib's ±5 % around a single value
        ax.set_ylim(min(accs) - 0.5, min(100.2, max(accs) + 0.5))
    for p in profiles:
        unit = f" {units[p]}" if units.get(p, "cpu") != "cpu" else ""
        ax.plot(
            [],
            [],
            markers[profiles.index(p) % len(markers)],
            markerfacecolor="none",
            color="grey",
            label=f"{p}{unit} (estimate)",
        )
    ax.plot([], [], "o", color="grey", label="measured (p50)")
    ax.set_xscale("log")
    ax.set_xlabel("latency per image, batch 1 (ms, log scale)")
    ax.set_ylabel("verification accuracy (%)")
    ax.set_title(
        "Accuracy vs latency" + ("" if any_point else " (no accuracy: run with --pairs)"), fontsize=10
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(runs: list[dict], path: str | Path, body: str) -> list[Path]:
    """``path`` (Markdown with the plots linked) plus ``<stem>_latency.png`` and ``<stem>_accuracy.png``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lat = plot_latency(runs, path.with_name(path.stem + "_latency.png"))
    acc = plot_accuracy_latency(runs, path.with_name(path.stem + "_accuracy.png"))
    path.write_text(
        f"# edgekd bench\n\n{body}\n\n![latency]({lat.name})\n\n![accuracy vs latency]({acc.name})\n"
    )
    return [path, lat, acc]


def compare(runs: list[dict], labels: list[str]) -> str:
    """Rows from several runs side by side; p50 relative to the first run's row for the same artifact."""
    header = [
        "run",
        "where",
        "profile",
        "artifact",
        "precision",
        "p50 ms",
        "p90 ms",
        "img/s",
        "peak RSS MB",
        "accuracy %",
        "estimate ms",
        "p50 vs first",
    ]
    base: dict[str, float] = {}
    rows = []
    for label, run in zip(labels, runs, strict=True):
        for r in run["results"]:
            p50 = r["latency"]["p50_ms"]
            ref = base.setdefault(r["name"], p50)
            est = r.get("estimate")
            rows.append(
                [
                    label,
                    run["where"],
                    run["profile"]["name"],
                    r["name"],
                    r["precision"],
                    _ms(p50),
                    _ms(r["latency"]["p90_ms"]),
                    _f(r["throughput"]["images_per_s"], ".1f"),
                    _f(r["memory"]["peak_rss_mb"], ".0f"),
                    _acc(r),
                    _ms(est and est["latency_ms"]),
                    f"{p50 / ref:.2f}×",
                ]
            )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    measured = sorted({run["measured_on"] for run in runs})
    return "\n".join(
        ["measured on: " + "; ".join(measured), "", *lines, *["| " + " | ".join(row) + " |" for row in rows]]
    )
