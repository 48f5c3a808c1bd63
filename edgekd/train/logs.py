"""Training logs: one CSV row per logged step (easy to plot or diff) and the same scalars in TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class RunLog:
    """``metrics.csv`` (columns fixed by the first row; later keys go to TensorBoard only) + ``tb/``.

    Appends when resuming: rows after the resumed step are dropped first, so a resumed run's CSV reads
    like an uninterrupted one.
    """

    def __init__(self, out: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = out / "metrics.csv"
        self.fields: list[str] | None = None
        if resume_step is not None and self.path.is_file():
            self._truncate_after(resume_step)
        elif self.path.exists():
            self.path.unlink()
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"), purge_step=resume_step)
            except ImportError:  # tensorboard is a pinned dependency; a stripped install still trains
                self.tb = None

    def _truncate_after(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        self.fields = list(rows[0])
        kept = [r for r in rows if int(r["step"]) <= step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(kept)

    def write(self, step: int, values: dict[str, Any], prefix: str = "train") -> None:
        row = {"step": step, **{f"{prefix}/{k}": v for k, v in values.items()}}
        if self.tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self.tb.add_scalar(key, value, step)
        if prefix != "train":
            return  # evaluation rows are sparse: TensorBoard + the checkpoint metrics hold them
        if self.fields is None:
            self.fields = list(row)
            with self.path.open("w", newline="") as f:
                csv.DictWriter(f, self.fields).writeheader()
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields, extrasaction="ignore").writerow(row)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
