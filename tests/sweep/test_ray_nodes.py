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
from pathlib import Path

import pytest

from charrec.sweep.runner import RunFolder
from tests.helpers import assert_one_line_error, invoke
from tests.sweep.ray_nodes import RayNodes

ray = pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[dev]' (or "
                                        "'charrec[ray]') to run the multi-node Ray tests")

SWEEP = """\
name: four
base:
  data_dir: {data}
  norm-size: 16,16
  hidden: 8
  epochs: 1
  batch_size: 32
  optim: sgd
  lr: 0.05
grid:
  momentum: [0.5, 0.7, 0.8, 0.9]
"""  # four one-epoch trials of a tiny MLP
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


def test_a_node_lost_mid_sweep_has_its_trials_run_again_on_the_survivor(
        two_nodes, sweep_file, tmp_path, driver_home, monkeypatch):
    # the last test on this cluster: it takes the worker node away
    removed = []
    real_append = RunFolder.append

    def append_then_remove_a_node(folder: RunFolder, row: dict) -> None:
        real_append(folder, row)
        if not removed:  # after the first row: the node the driver is not attached to
            driver_node = ray.get_runtime_context().get_node_id()
            removed.append(next(node for node in two_nodes.node_ids if node != driver_node))
            two_nodes.remove(removed[0])

    monkeypatch.setattr(RunFolder, "append", append_then_remove_a_node)
    result = sweep_on(two_nodes.address, sweep_file, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = read_rows(tmp_path / "run")
    assert [row["status"] for row in rows] == ["ok"] * 4
    survivor = next(node for node in two_nodes.node_ids if node != removed[0])
    assert all(row["node"] == survivor for row in rows[1:])  # finished after the removal
