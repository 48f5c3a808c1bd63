"""Human-readable tables and JSON for evaluation results."""

from __future__ import annotations

import json
from pathlib import Path

from edgekd.eval.runner import EvalResult
from edgekd.eval.verification import VerificationMetrics


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _row(model: str, flip: str, m: VerificationMetrics) -> list[str]:
    tars = " / ".join(f"{_pct(v[0])}" for v in m.tar_at_far.values()) or "n/a"
    return [model, flip, f"{_pct(m.accuracy)} ± {_pct(m.accuracy_std)}", tars, f"{m.auc:.5f}", _pct(m.eer)]


def results_table(results: list[EvalResult]) -> str:
    """A Markdown table: one row per model (two with the flip test)."""
    if not results:
        return ""
    fars = ", ".join(f"{k:.0e}" for k in results[0].metrics.tar_at_far) or "-"
    header = ["model", "flip", "accuracy % (mean ± std)", f"TAR % @ FAR {fars}", "AUC", "EER %"]
    rows = []
    for r in results:
        rows.append(_row(r.model, "no", r.metrics))
        if r.flip:
            rows.append(_row(r.model, "yes", r.flip))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_summary(results: list[EvalResult]) -> str:
    """Table plus the pair set, folds, timing and notes (e.g. FARs that cannot be measured)."""
    if not results:
        return "no results"
    first = results[0]
    out = [
        f"pairs: {first.pairs} ({first.metrics.num_pairs} pairs, {first.metrics.num_folds} folds; "
        "threshold chosen on the other folds)",
        "",
        results_table(results),
        "",
    ]
    for r in results:
        ips = r.num_images * (2 if r.flip else 1) / r.embed_seconds if r.embed_seconds else float("nan")
        out.append(f"{r.model}: embedded {r.num_images} images in {r.embed_seconds:.1f} s ({ips:.1f} img/s)")
    out += [f"note: {n}" for n in first.metrics.notes]
    return "\n".join(out)


def write_json(results: list[EvalResult], path: str | Path, extra: dict | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**(extra or {}), "results": [r.to_dict() for r in results]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)
