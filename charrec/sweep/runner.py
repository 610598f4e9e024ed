"""Running a sweep: the run loop and the run folder (a trial itself: `charrec.sweep.trial`).

A run folder holds:
    sweep.yaml            the resolved sweep (itself a valid sweep file)
    run.json              the config hash and the trial list, to resume safely
    results.jsonl         one JSON row per finished trial, appended and fsynced as it finishes
    results.csv           the same rows flattened (rewritten after every trial)
    best.yaml             the best point's options, runnable with `charrec train --config`
    checkpoints/t000.pth  each trial's best-validation weights (or only the best's: keep="best")
    plots/*.png           drawn by `charrec.sweep.report`
    .data-0.pt            decoded images shared with the workers while a parallel or Ray
                          run lasts

`run_sweep` skips trials that already have a row, so resuming a crashed or interrupted run is
running it again on the same folder (`RunFolder.reopen` refuses if the trials changed).

A trial that could not write its checkpoint (a full disk) gets a failed row marked
`"rerun": true`, and a resumed run trains it again. A run folder file that cannot be written
(a row, the CSV, best.yaml) stops the sweep with a `WriteError`: whatever finished stays
recorded, and `--resume` continues once the disk is fixed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from charrec import __version__
from charrec.errors import ConfigError, WriteError
from charrec.files import atomic_write, write_error
from charrec.sweep.executors import Executor, InlineExecutor
from charrec.sweep.results import PointSummary, best_point, best_trial, format_value, summarise
from charrec.sweep.spec import SweepSpec, Trial, config_hash, describe_change, trial_config
from charrec.sweep.trial import (
    TrialTask,
    data_key,
    lost_trial_row,
    run_trial,
    save_data_file,
    trial_data,
)

SPEC_FILE, META_FILE, RESULTS_FILE = "sweep.yaml", "run.json", "results.jsonl"
CSV_FILE, BEST_FILE, CHECKPOINTS = "results.csv", "best.yaml", "checkpoints"
KEEP_CHOICES = ("all", "best", "none")
FINISHED = ("ok", "failed")


# ------------------------------------------------------------------------------ the run folder


def default_run_dir(name: str, runs_dir: str | Path = "runs") -> Path:
    """runs/<name>-<timestamp>, with a suffix if two sweeps start in the same second."""
    stem = Path(runs_dir) / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    path, counter = stem, 2
    while path.exists():
        path, counter = stem.with_name(f"{stem.name}-{counter}"), counter + 1
    return path


class RunFolder:
    """Reads and writes the files of one sweep run (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path, spec: SweepSpec, trials: Sequence[Trial]) -> RunFolder:
        import yaml

        folder = cls(path)
        if folder.path.exists() and any(folder.path.iterdir()):
            raise ConfigError(f"run folder {folder.path} already exists and is not empty; "
                              f"continue it with --resume {folder.path} or choose another")
        meta = {"name": spec.name, "source": spec.source, "config_hash": config_hash(trials),
                "created": datetime.now().isoformat(timespec="seconds"),
                "charrec_version": __version__, "trials": [trial.to_dict() for trial in trials]}
        made = [parent for parent in (folder.path, *folder.path.parents) if not parent.exists()]
        try:
            (folder.path / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            folder._write_text(SPEC_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))
            folder._write_text(META_FILE, json.dumps(meta, indent=1) + "\n")  # last: the mark
        except (OSError, WriteError) as error:
            # a folder without run.json could not be resumed, and would block its own name
            shutil.rmtree(made[-1] if made else folder.path / CHECKPOINTS, ignore_errors=True)
            for name in (SPEC_FILE, META_FILE):
                with contextlib.suppress(OSError):
                    (folder.path / name).unlink(missing_ok=True)
            if isinstance(error, WriteError):
                raise WriteError(f"{error}; the run folder was not made", error.errno) from error
            raise write_error(error, f"could not make the run folder {folder.path}",
                              "nothing was run") from error
        return folder

    @classmethod
    def reopen(cls, path: str | Path, trials: Sequence[Trial]) -> RunFolder:
        """An existing run, if its trials are exactly `trials`; ConfigError otherwise."""
        folder = cls(path)
        meta = folder.meta()
        if meta["config_hash"] != config_hash(trials):
            change = describe_change(meta.get("trials", []), trials)
            raise ConfigError(f"cannot resume {folder.path}: the sweep config changed since it "
                              f"started ({change}); start a new run instead of --resume")
        return folder

    def meta(self) -> dict[str, Any]:
        path = self.path / META_FILE
        if not path.is_file():
            raise ConfigError(f"{self.path} is not a sweep run folder (no {META_FILE})")
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigError(f"{path}: unreadable ({error})") from None

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    def checkpoint_path(self, trial: Trial) -> Path:
        return self.path / CHECKPOINTS / f"{trial.trial_id}.pth"

    def read_results(self) -> list[dict[str, Any]]:
        """Rows of finished trials. A torn last line (a crash mid-write) is dropped."""
        path = self.path / RESULTS_FILE
        if not path.is_file():
            return []
        rows, text = [], path.read_text(encoding="utf-8")
        for line in text.splitlines(keepends=True):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if row is None or not line.endswith("\n"):
                self._write_text(RESULTS_FILE, "".join(json.dumps(r) + "\n" for r in rows),
                                 "the results")
                break
            rows.append(row)
        return rows

    def append(self, row: dict[str, Any]) -> None:
        """Add one row as one complete line, on disk before this returns. A disk error raises
        `WriteError` and leaves the rows before it as they were (a torn last line is dropped
        when the file is read)."""
        path = self.path / RESULTS_FILE
        size = path.stat().st_size if path.is_file() else 0
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            with contextlib.suppress(OSError):  # take back a torn line now if the disk lets us
                if path.is_file() and path.stat().st_size > size:
                    os.truncate(path, size)
            raise write_error(error, f"could not record trial {row['trial']} in {path}",
                              "the rows before it are kept") from error

    def write_csv(self, rows: Sequence[dict[str, Any]], varied: Sequence[str]) -> Path:
        columns = ["trial", "point", "repeat", "seed", "status", *varied, "best_epoch",
                   "epochs_run", "val_accuracy", "last_val_accuracy", "test_accuracy",
                   "train_seconds", "reason"]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda row: row["index"]):
            options = {name: format_value(value) for name, value in row["options"].items()}
            writer.writerow({**row, **options})
        return self._write_text(CSV_FILE, buffer.getvalue(), "the results table")

    def write_best(self, spec_name: str, summary: PointSummary, row: dict[str, Any]) -> Path:
        """best.yaml: the full options of the best point's best trial, for `charrec train`."""
        import yaml

        from charrec.config import ARCHITECTURE_FIELDS

        # a tuned trial's network comes from its `from_model`, which refuses them as options
        dropped = {"out", *(ARCHITECTURE_FIELDS if row["config"].get("from_model") else ())}
        options = {key: value for key, value in row["config"].items() if key not in dropped}
        header = (f"# Best point of sweep {spec_name!r} ({self.path}): "
                  f"{summary.label()}\n# val acc {summary.describe('val_accuracy')}, "
                  f"test acc {summary.describe('test_accuracy')} over {summary.n_ok} run(s)\n"
                  f"# Train it: charrec train --config {self.path / BEST_FILE}\n")
        body = yaml.safe_dump({"name": f"{spec_name}-best", "base": options}, sort_keys=False)
        return self._write_text(BEST_FILE, header + body, "the best config")

    def _write_text(self, name: str, text: str, what: str = "the sweep file") -> Path:
        return atomic_write(self.path / name, lambda handle: handle.write(text.encode()), what)


# ------------------------------------------------------------------------------ the run loop


@dataclass
class SweepStatus:
    """Where a running sweep stands; handed to the progress callback after every trial."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    skipped: int = 0  # finished in an earlier session of a resumed run
    best: PointSummary | None = None
    last: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    write_failures: list[dict[str, Any]] = field(default_factory=list)  # rows marked "rerun"

    def eta_seconds(self) -> float | None:
        """Seconds until the last trial finishes: the trials left, `running` at a time, each
        taking the mean wall time of those finished in this session (so it follows the
        machine's load now); None before the first has finished. A worker's first trial also
        pays for its imports, so it counts only until a later one has finished."""
        left = self.total - self.done
        if not left:
            return 0.0
        first, later, seen = [], [], set()
        for row in self.rows[self.skipped:]:
            if row.get("wall_seconds") is not None:
                worker = row.get("pid")
                (later if worker in seen else first).append(row["wall_seconds"])
                seen.add(worker)
        times = later or first
        if not times:
            return None
        return statistics.fmean(times) * left / max(1, self.running)


def finished_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that count as done: each trial's last row, if it finished ("ok" or "failed")
    and its failure was not the disk's (those are marked "rerun")."""
    last = {row["index"]: row for row in rows if "index" in row}
    return [row for _, row in sorted(last.items())
            if row.get("status") in FINISHED and not row.get("rerun")]


def preflight(trials: Sequence[Trial]) -> None:
    """Check every dataset the trials need (cheaply: label files, no decoding) before any runs."""
    from charrec.data.loading import SPLITS, detect_layout, list_split

    sizes: dict[tuple, int] = {}
    for trial in trials:
        config = trial_config(trial)
        if config.from_model is not None:  # tuning splits its data itself (train.load_data)
            detect_layout(config.data_dir)
            continue
        key = (config.data_dir, config.seed)
        if key not in sizes:
            sizes[key] = len(list_split(config.data_dir, "train", config.seed))
            for split in SPLITS[1:]:
                list_split(config.data_dir, split, config.seed)
        if config.batch_size > sizes[key]:
            raise ConfigError(f"trial {trial.trial_id}: batch_size {config.batch_size} is larger "
                              f"than the training set ({sizes[key]} images)")


def share_data(folder: RunFolder, trials: Sequence[Trial], strict: bool) -> dict[tuple, str]:
    """Decode each dataset the trials need once, here, into a file the workers memory-map.
    On an error (a full disk: `WriteError`) or Ctrl-C, the files made so far are removed."""
    from charrec.tune import with_parent

    files: dict[tuple, str] = {}
    try:
        for trial in trials:
            config = with_parent(trial_config(trial))
            key = data_key(config, strict)
            if key not in files:
                path = folder.path / f".data-{len(files)}.pt"
                files[key] = str(save_data_file(path, trial_data(config, strict)[1]))
    except BaseException:
        for made in files.values():
            with contextlib.suppress(OSError):
                Path(made).unlink(missing_ok=True)
        raise
    return files


def run_sweep(folder: RunFolder, spec: SweepSpec, trials: Sequence[Trial], executor: Executor,
              keep: str = "all", strict: bool = False,
              on_progress: Callable[[SweepStatus], None] | None = None) -> SweepStatus:
    """Run every trial without a row yet; append each row as it finishes; write the CSV and
    best.yaml. KeyboardInterrupt propagates after the finished rows are safely written; so does
    a `WriteError` for a run folder file (it names the folder, to resume)."""
    if keep not in KEEP_CHOICES:
        raise ConfigError(f"--keep must be one of {', '.join(KEEP_CHOICES)}, got {keep!r}")
    rows = finished_rows(folder.read_results())
    finished = {row["index"] for row in rows}
    todo = [trial for trial in trials if trial.index not in finished]
    status = SweepStatus(total=len(trials), done=len(rows), skipped=len(rows), rows=rows,
                         failed=sum(row["status"] == "failed" for row in rows))
    preflight(todo)
    # trials in other processes (a local pool, Ray workers) read the images decoded once, here
    in_other_processes = not isinstance(executor, InlineExecutor)
    data_files = share_data(folder, todo, strict) if in_other_processes and todo else {}
    tasks = [TrialTask(trial, str(folder.checkpoint_path(trial)) if keep != "none" else None,
                       strict, data_files.get(data_key(trial_config(trial), strict)))
             for trial in todo]
    status.running = min(executor.jobs, len(tasks))
    status.best = best_point(summarise(trials, rows))
    if on_progress:
        on_progress(status)
    try:
        for row in executor.run(run_trial, tasks, on_lost=lost_trial_row):
            if row["status"] == "interrupted":
                raise KeyboardInterrupt
            folder.append(row)
            rows.append(row)
            status.done += 1
            status.failed += row["status"] == "failed"
            if row.get("rerun"):
                status.write_failures.append(row)
            status.running = min(executor.jobs, status.total - status.done)
            status.best, status.last = best_point(summarise(trials, rows)), row
            folder.write_csv(rows, spec.varied)
            if on_progress:
                on_progress(status)
        finish(folder, spec, trials, rows, keep)
    except WriteError as error:
        saved = len(finished_rows(rows))
        raise WriteError(f"{error}; {saved} of {len(trials)} trials are recorded in "
                         f"{folder.path}", error.errno) from error
    finally:
        for path in data_files.values():
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)
    return status


def finish(folder: RunFolder, spec: SweepSpec, trials: Sequence[Trial],
           rows: list[dict[str, Any]], keep: str) -> None:
    """Write results.csv and best.yaml; with keep="best", delete the other checkpoints."""
    folder.write_csv(rows, spec.varied)
    summaries = summarise(trials, rows)
    best = best_point(summaries)
    if best is None:
        return
    winner = best_trial(best)
    folder.write_best(spec.name, best, winner)
    if keep == "best":
        for row in rows:
            path = row.get("checkpoint")
            if path and row["trial"] != winner["trial"]:
                with contextlib.suppress(OSError):  # a read-only folder: it stays, no harm
                    Path(path).unlink(missing_ok=True)
