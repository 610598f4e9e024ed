"""Sweep results per point: mean ± std over repeats, and which point is best.

Rows are the dicts `charrec.sweep.trial.run_trial` returns (and results.jsonl holds). A point
is best by its mean validation accuracy (the test split stays out of the choice); ties go to the
earlier point.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from charrec.sweep.spec import Trial


def format_value(value: Any) -> str:
    """An option value as people write it: 256,128 for lists, 0.001 for floats."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def last_val_accuracy(history: Sequence[dict[str, Any]]) -> float | None:
    """The validation accuracy of the last validated epoch (the last epoch: training always
    validates it), which the course's tables report as "Epoch 50 validation accuracy"."""
    validated = [epoch["val_accuracy"] for epoch in history
                 if epoch.get("val_accuracy") is not None]
    return validated[-1] if validated else None


def metric(row: dict[str, Any], key: str) -> Any:
    """A row's value of `key`; rows written before `last_val_accuracy` was recorded get it
    from their history."""
    if key == "last_val_accuracy" and key not in row:
        return last_val_accuracy(row.get("history", []))
    return row[key]


def mean_std(values: Sequence[float]) -> tuple[float, float] | None:
    """(mean, sample standard deviation); std is 0 for a single value; None for no values."""
    if not values:
        return None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class PointSummary:
    """One grid point (or random sample) over its repeats."""

    point: int
    options: dict[str, Any]
    n_trials: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # finished ones

    @property
    def ok_rows(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] == "ok"]

    @property
    def n_ok(self) -> int:
        return len(self.ok_rows)

    @property
    def n_failed(self) -> int:
        return sum(row["status"] == "failed" for row in self.rows)

    @property
    def reasons(self) -> list[str]:
        return [row.get("reason", "") for row in self.rows if row["status"] == "failed"]

    def stat(self, key: str) -> tuple[float, float] | None:
        return mean_std([value for row in self.ok_rows
                         if (value := metric(row, key)) is not None])

    def describe(self, key: str, scale: float = 100, digits: int = 2, unit: str = "%") -> str:
        """"91.20% ± 0.40" (mean ± std over the successful repeats), "–" if there are none."""
        value = self.stat(key)
        if value is None:
            return "–"
        mean, std = value
        text = f"{scale * mean:.{digits}f}{unit}"
        return text + (f" ± {scale * std:.{digits}f}" if self.n_ok > 1 else "")

    def label(self) -> str:
        return ", ".join(f"{name}={format_value(value)}" for name, value in self.options.items()) \
            or "base"

    def val_curve(self) -> list[tuple[int, float, float]]:
        """(epoch, mean, std) of the validation accuracy over the repeats, per validated epoch."""
        by_epoch: dict[int, list[float]] = {}
        for row in self.ok_rows:
            for epoch in row.get("history", []):
                if epoch.get("val_accuracy") is not None:
                    by_epoch.setdefault(epoch["epoch"], []).append(epoch["val_accuracy"])
        return [(epoch, *mean_std(values)) for epoch, values in sorted(by_epoch.items())]


def summarise(trials: Sequence[Trial], rows: Sequence[dict[str, Any]]) -> list[PointSummary]:
    """One summary per point, in point order, holding the rows finished so far."""
    summaries: dict[int, PointSummary] = {}
    for trial in trials:
        if trial.point not in summaries:
            summaries[trial.point] = PointSummary(trial.point, trial.options, 0)
        summaries[trial.point].n_trials += 1
    for row in sorted(rows, key=lambda row: row["index"]):
        if row["point"] in summaries:
            summaries[row["point"]].rows.append(row)
    return [summaries[point] for point in sorted(summaries)]


def best_point(summaries: Sequence[PointSummary]) -> PointSummary | None:
    """The point with the highest mean validation accuracy (None if no trial succeeded)."""
    scored = [(summary.stat("val_accuracy")[0], -summary.point, summary)
              for summary in summaries if summary.n_ok]
    scored = [entry for entry in scored if math.isfinite(entry[0])]
    return max(scored, key=lambda entry: entry[:2])[2] if scored else None


def best_trial(summary: PointSummary) -> dict[str, Any]:
    """The row of the point's repeat with the highest validation accuracy (first on ties)."""
    return max(summary.ok_rows, key=lambda row: row["val_accuracy"])
