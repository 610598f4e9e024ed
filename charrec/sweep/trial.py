"""One sweep trial as a worker runs it: the dataset (through `charrec train`'s data step,
`charrec.train.prepare_data`, decoded once per process), the same pipeline as `charrec train`
(`charrec.train.run`: training, checkpoint, test accuracy), and a results row. Nothing here
prints or knows the run folder's layout.

Every failure of a trial becomes a row with status "failed" and its reason, so the sweep goes
on; one the disk caused (its checkpoint could not be written) is marked `"rerun": true`. For a
local pool the parent decodes each dataset once and saves the tensors to a file that the workers
memory-map (`save_data_file`), instead of every worker decoding the images again.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charrec.errors import CharrecError, DataError, TrainingDiverged, WriteError
from charrec.sweep.results import last_val_accuracy
from charrec.sweep.spec import Trial, trial_config


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial: nothing but plain, picklable values."""

    trial: Trial
    checkpoint: str | None  # where to save the trial's best weights; None: do not save
    strict: bool = False
    data_file: str | None = None  # the decoded dataset saved by the parent, if it did


_DATA_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_DATA_CACHE_SIZE = 2  # a sweep over --norm-size alternates between a few decoded datasets


def data_key(config: Any, strict: bool = False) -> tuple:
    """What identifies a decoded dataset. The seed only matters for a folder-per-class tree
    (it picks the 70/15/15 split, or with `from` the tuning split)."""
    from charrec.data.loading import detect_layout

    split_seed = config.seed if detect_layout(config.data_dir) == "folders" else None
    return (str(Path(config.data_dir).resolve()), tuple(config.norm_size), split_seed, strict,
            config.from_model is not None)


def trial_data(config: Any, strict: bool = False, data_file: str | None = None,
               callbacks: Any = None) -> tuple[Any, dict[str, Any]]:
    """A trial's config with `augment: auto` settled, and its dataset: from this process's
    cache, else from `data_file`, else by `charrec.train.prepare_data` (rendering the built-in
    letters if the folder holds nothing, with `callbacks` for progress)."""
    from charrec.train import Callbacks, prepare_data

    data = _cached_data(config, strict, data_file)
    config, data = prepare_data(config, callbacks or Callbacks(), strict, data)
    key = data_key(config, strict)
    _DATA_CACHE[key] = data
    _DATA_CACHE.move_to_end(key)
    while len(_DATA_CACHE) > _DATA_CACHE_SIZE:
        _DATA_CACHE.popitem(last=False)
    return config, data


def _cached_data(config: Any, strict: bool, data_file: str | None) -> dict[str, Any] | None:
    try:
        key = data_key(config, strict)
    except DataError:  # no dataset there yet: prepare_data renders it or says what is wrong
        return None
    if key in _DATA_CACHE:
        return _DATA_CACHE[key]
    if data_file and Path(data_file).is_file():
        return _load_data_file(data_file)
    return None


def save_data_file(path: str | Path, data: dict[str, Any]) -> Path:
    """Save decoded splits (tensors and file lists: plain data) for workers to memory-map."""
    import torch

    from charrec.files import atomic_write

    plain = {split: {"images": letters.images, "labels": letters.labels, "paths": letters.paths,
                     "skipped": [list(entry) for entry in letters.skipped]}
             for split, letters in data.items()}
    return atomic_write(path, lambda handle: torch.save(plain, handle),
                        "the decoded images for the workers")


def _load_data_file(path: str | Path) -> dict[str, Any]:
    import torch

    from charrec.data.loading import LetterData

    plain = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return {split: LetterData(entry["images"], entry["labels"], entry["paths"],
                              [tuple(item) for item in entry["skipped"]])
            for split, entry in plain.items()}


def _row_start(trial: Trial) -> dict[str, Any]:
    return {"trial": trial.trial_id, "index": trial.index, "point": trial.point,
            "repeat": trial.repeat, "seed": trial.config["seed"], "options": trial.options}


def lost_trial_row(task: TrialTask, reason: str) -> dict[str, Any]:
    """The failed row of a trial whose worker died (killed, out of memory, its node lost), so
    it never returned a row of its own."""
    return {**_row_start(task.trial), "status": "failed", "reason": reason}


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Train one trial and return its results row; a failure becomes a row with its reason."""
    from charrec.train import run
    from charrec.tune import with_parent

    trial, started = task.trial, time.perf_counter()
    row = {**_row_start(trial), "host": socket.gethostname(), "pid": os.getpid()}
    try:
        changes = {"out": task.checkpoint} if task.checkpoint else {}
        config = with_parent(trial_config(trial, **changes))  # --from: the parent's network
        row["config"] = config.to_dict()
        config, data = trial_data(config, task.strict, task.data_file)
        row["config"] = config.to_dict()  # with `augment: auto` settled
        result = run(config, data=data, save=task.checkpoint is not None)
        if result.interrupted:
            return {**row, "status": "interrupted"}
    except TrainingDiverged as error:
        return {**row, "status": "failed", "reason": f"diverged: {error}",
                "wall_seconds": round(time.perf_counter() - started, 3)}
    except WriteError as error:  # the disk failed, not the trial: a resumed run trains it again
        return {**row, "status": "failed", "reason": str(error), "rerun": True,
                "wall_seconds": round(time.perf_counter() - started, 3)}
    except Exception as error:  # noqa: BLE001 - any failing trial is recorded; the sweep goes on
        reason = str(error) if isinstance(error, CharrecError) else \
            f"{type(error).__name__}: {error}"
        return {**row, "status": "failed", "reason": reason,
                "traceback": traceback.format_exc(limit=-3),
                "wall_seconds": round(time.perf_counter() - started, 3)}
    return {
        **row, "status": "ok", "best_epoch": result.best_epoch,
        "val_accuracy": result.best_val_accuracy, "test_accuracy": result.test_accuracy,
        "last_val_accuracy": last_val_accuracy(result.history),
        "epochs_run": len(result.history), "train_seconds": round(result.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "checkpoint": task.checkpoint, "history": result.history,
    }
