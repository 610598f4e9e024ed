"""`charrec sweep --executor ray` on a real local Ray (one start, ~620 MB, seconds): a sweep
begun by the local executor is resumed on Ray, a trial whose worker is killed (twice: it is
retried once) becomes a failed row naming where it died, the others give the same results as in
this process, and the Ray that charrec started is stopped again.

Skipped, saying so, when ray is not installed: the `dev` extra includes `charrec[ray]`, so CI
runs it. The fake-ray tests (tests/sweep/test_ray_executor.py) always run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from charrec import train as train_module
from charrec.sweep import runner as sweep_runner
from charrec.sweep.trial import TrialTask, run_trial
from tests.helpers import TINY_SWEEP, invoke

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[dev]' (or "
                                        "'charrec[ray]') to run the real local-Ray test")

SWEEP = TINY_SWEEP


def kill_worker_of_trial_1(task: TrialTask) -> dict:
    """Runs in a Ray worker: trial 1 kills its own process, as the OOM killer would."""
    if task.trial.index == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return run_trial(task)


def read_rows(run_dir: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return {row["trial"]: row for row in rows}


def test_resume_on_a_local_ray_with_a_killed_worker(tmp_path, course_dataset, monkeypatch):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(SWEEP.format(data=course_dataset))
    run_dir = tmp_path / "run"
    # a local Ray makes itself a token in ~/.ray/auth_token if there is none: not in the user's
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)

    # the first part runs in this process and is interrupted after one trial
    real_run, calls = train_module.run, []

    def interrupted_at_second_trial(config, *args, **kwargs):
        calls.append(config.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(config, *args, **kwargs)

    monkeypatch.setattr(train_module, "run", interrupted_at_second_trial)
    result = invoke("sweep", sweep, "--out-dir", run_dir, "--jobs", "1", "--threads", "1",
                    "--keep", "none")
    assert result.exit_code == 130, result.output
    monkeypatch.setattr(train_module, "run", real_run)
    assert list(read_rows(run_dir)) == ["t000"]

    # the rest on Ray; the function is shipped by value, as workers may not import tests/
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(sweep_runner, "run_trial", kill_worker_of_trial_1)
    result = invoke("sweep", "--resume", run_dir, "--executor", "ray", "--jobs", "2",
                    "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "on a local Ray started by charrec (2 CPUs)" in result.output
    assert "1 of 3 trials already finished" in result.output
    assert not ray.is_initialized()  # the Ray charrec started is shut down
    assert "RAY_AUTH_MODE" not in os.environ  # ray.init(local) set it to token; given back

    rows = read_rows(run_dir)
    assert list(rows)[0] == "t000" and set(rows) == {"t000", "t001", "t002"}
    assert [rows[t]["status"] for t in ("t000", "t001", "t002")] == ["ok", "failed", "ok"]
    reason = rows["t001"]["reason"]
    assert reason.startswith("its Ray worker died (pid ") and "; 2 attempts): " in reason
    assert "WorkerCrashedError" in reason
    assert rows["t002"]["pid"] != os.getpid()  # ran in a Ray worker

    monkeypatch.setattr(sweep_runner, "run_trial", run_trial)
    result = invoke("sweep", sweep, "--out-dir", tmp_path / "inline", "--jobs", "1",
                    "--threads", "1", "--keep", "none")
    assert result.exit_code == 0, result.output
    inline = read_rows(tmp_path / "inline")
    for trial in ("t000", "t002"):
        assert rows[trial]["val_accuracy"] == inline[trial]["val_accuracy"]
        assert [epoch["train_loss"] for epoch in rows[trial]["history"]] == \
            [epoch["train_loss"] for epoch in inline[trial]["history"]]
