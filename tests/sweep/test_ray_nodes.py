"""`charrec sweep --executor ray` on real multi-node Ray clusters on this machine
(`tests/sweep/ray_nodes.py`: `ray.cluster_utils.Cluster` nodes, each its own raylet, held by a
helper process so that this process is only the driver):

- a cluster with token authentication: joined with the right token; a wrong token or none is
  one line before anything runs, and no run folder is made;
- a 2-node cluster without tokens: a stale `~/.ray/auth_token` on the driver does not matter,
  trials run on both nodes and every row names its node and process;
- the same cluster losing its worker node after the first row: the trials run again on the
  survivor and every row ends good.

Two cluster starts (~10 s each) for the whole file; every cluster is stopped, its raylets
with it, before the file ends. Skipped, saying so, without ray (the `dev` extra has it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from charrec.sweep import runner as sweep_runner
from charrec.sweep.runner import RunFolder
from charrec.sweep.trial import TrialTask, run_trial
from tests.helpers import TINY_SWEEP, assert_one_line_error, invoke
from tests.sweep.ray_nodes import RayNodes

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[dev]' (or "
                                        "'charrec[ray]') to run the multi-node Ray tests")

# four one-epoch trials of a tiny MLP: the suite's tiny sweep with one more point
SWEEP = TINY_SWEEP.replace("name: tiny", "name: four").replace("[0.5, 0.8, 0.9]",
                                                               "[0.5, 0.7, 0.8, 0.9]")
TOKEN = "0123456789abcdef" * 2


@pytest.fixture
def sweep_file(tmp_path, course_dataset) -> Path:
    path = tmp_path / "four.yaml"
    path.write_text(SWEEP.format(data=course_dataset))
    return path


@pytest.fixture
def driver_home(tmp_path, monkeypatch) -> Path:
    """The driver's HOME is an empty temp folder, and no Ray setting comes from outside."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


def save_token(home: Path, token: str) -> Path:
    path = home / ".ray" / "auth_token"
    path.parent.mkdir(exist_ok=True)
    path.write_text(token)
    return path


def sweep_on(address: str, sweep_file: Path, run_dir: Path):
    return invoke("sweep", sweep_file, "--executor", "ray", "--address", address,
                  "--out-dir", run_dir, "--keep", "none")


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_a_token_cluster_takes_the_right_token_and_refuses_others_in_one_line(
        sweep_file, tmp_path, driver_home, monkeypatch):
    cluster = RayNodes.start(1, token=TOKEN)
    try:
        monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
        result = sweep_on(cluster.address, sweep_file, tmp_path / "right")
        assert result.exit_code == 0, result.output
        assert [row["status"] for row in read_rows(tmp_path / "right")] == ["ok"] * 4
        assert "RAY_AUTH_MODE" not in os.environ  # the driver's setting is given back

        monkeypatch.delenv("RAY_AUTH_TOKEN")
        stale = save_token(driver_home, "f" * 32)
        result = sweep_on(cluster.address, sweep_file, tmp_path / "wrong")
        assert_one_line_error(result, f"the Ray cluster at {cluster.address} refused the "
                              f"authentication token at hand (from {stale})",
                              "RAY_AUTH_TOKEN", "ray get-auth-token")
        assert not (tmp_path / "wrong").exists()  # refused before anything was made

        stale.unlink()
        result = sweep_on(cluster.address, sweep_file, tmp_path / "none")
        assert_one_line_error(result, "requires an authentication token and none is at hand")
        assert not (tmp_path / "none").exists()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node of 1 CPU each, for the rest of this file."""
    cluster = RayNodes.start(2)
    yield cluster
    cluster.stop()


def test_a_stale_token_on_the_driver_and_trials_on_both_nodes(two_nodes, sweep_file, tmp_path,
                                                              driver_home):
    save_token(driver_home, "f" * 32)  # left by some earlier local Ray; this cluster takes none
    result = sweep_on(two_nodes.address, sweep_file, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert f"on the Ray cluster at {two_nodes.address} (2 node(s))" in result.output
    rows = read_rows(tmp_path / "run")
    assert [row["status"] for row in rows] == ["ok"] * 4
    assert {row["node"] for row in rows} == set(two_nodes.node_ids)
    assert all(row["pid"] != os.getpid() and row["node_ip"] for row in rows)
    assert "4 trial(s) ran on 2 Ray node(s)" in result.output


def trial_stuck_on(node: str, marks: Path) -> Callable[[TrialTask], dict]:
    """`run_trial`, except that on `node` a trial marks that it started there and then never
    ends: only losing the node ends it. Shipped to the workers by value."""

    def run(task: TrialTask) -> dict:
        if ray.get_runtime_context().get_node_id() == node:
            (marks / task.trial.trial_id).touch()
            time.sleep(600)
        return run_trial(task)

    return run


def test_a_node_lost_mid_sweep_has_its_trials_run_again_on_the_survivor(
        two_nodes, sweep_file, tmp_path, driver_home, monkeypatch):
    # the last test on this cluster: it takes the worker node away, after the first row
    worker = two_nodes.node_ids[1]
    marks = tmp_path / "started-on-the-worker"
    marks.mkdir()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(sweep_runner, "run_trial", trial_stuck_on(worker, marks))
    real_append = RunFolder.append

    def append_then_remove_the_worker(folder: RunFolder, row: dict) -> None:
        real_append(folder, row)
        if worker in two_nodes.node_ids:
            # Ray attaches a driver to the head when several nodes share its machine
            assert ray.get_runtime_context().get_node_id() == two_nodes.head_id
            waited = 0.0  # for a trial to start there (its worker process may start late)
            while not any(marks.iterdir()) and waited < 60:
                time.sleep(0.1)
                waited += 0.1
            assert any(marks.iterdir()), "no trial started on the worker node"
            two_nodes.remove(worker)

    monkeypatch.setattr(RunFolder, "append", append_then_remove_the_worker)
    result = sweep_on(two_nodes.address, sweep_file, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert worker not in two_nodes.node_ids  # it was removed mid-sweep
    rows = {row["trial"]: row for row in read_rows(tmp_path / "run")}
    assert [rows[trial]["status"] for trial in sorted(rows)] == ["ok"] * 4
    assert {row["node"] for row in rows.values()} == {two_nodes.head_id}
    lost = [path.name for path in marks.iterdir()]
    assert lost and all(rows[trial]["status"] == "ok" for trial in lost)
    assert "4 trial(s) ran on 1 Ray node(s)" in result.output
