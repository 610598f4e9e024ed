"""A 4-trial `charrec sweep --executor ray` on a real 2-node Ray cluster on this machine, as a
user runs it: with a stale `~/.ray/auth_token` on the driver (the cluster takes no token), and
again with the worker node removed once the first row is written.

    python benchmarks/ray_nodes.py [--data-dir DIR] [--epochs E]

The cluster is `ray.cluster_utils.Cluster` (a head and a worker node of 1 CPU each, real
raylets) held by a helper process (`tests/sweep/ray_nodes.py`); each sweep is the real command
in a subprocess whose HOME holds a token the cluster does not use. For each run it prints the
wall time, the exit code, the good rows, the nodes that wrote rows, and whether a traceback
appeared. Default data: the small drawn letters of the tests (26 letters x 12 images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import make_course_dataset  # noqa: E402 - after the repo is on the path
from tests.sweep.ray_nodes import RayNodes  # noqa: E402

SWEEP = """\
name: four
base:
  data_dir: {data_dir}
  norm-size: 16,16
  hidden: 8
  epochs: {epochs}
  batch_size: 32
  optim: sgd
  lr: 0.05
grid:
  momentum: [0.5, 0.7, 0.8, 0.9]
"""


def sweep(config: Path, address: str, out_dir: Path, home: Path) -> tuple[float, int, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "charrec", "sweep", str(config), "--executor",
                           "ray", "--address", address, "--out-dir", str(out_dir),
                           "--keep", "none"], cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done.returncode, done.stdout + done.stderr


def remove_after_first_row(cluster: RayNodes, node: str, results: Path,
                           removed: dict[str, float]) -> None:
    while not (results.is_file() and results.read_text().count("\n") >= 1):
        time.sleep(0.05)
    cluster.remove(node)
    removed["at"] = time.perf_counter()


def report(name: str, wall: float, code: int, output: str, run_dir: Path) -> None:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()] \
        if (run_dir / "results.jsonl").is_file() else []
    good = sum(row["status"] == "ok" for row in rows)
    nodes = sorted({row.get("node", "?")[:8] for row in rows})
    print(f"{name:32s} {wall:6.1f} s  exit {code}  good rows {good}/4  nodes {nodes}  "
          f"traceback: {'yes' if 'Traceback' in output else 'no'}", flush=True)
    for line in output.splitlines():
        if "Ray node(s)" in line or line.startswith("Error"):
            print(f"{'':34s}{line.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ray-nodes-"))
    data_dir = args.data_dir or make_course_dataset(work / "letters")
    config = work / "four.yaml"
    config.write_text(SWEEP.format(data_dir=data_dir.resolve(), epochs=args.epochs))
    home = work / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("f" * 32)  # stale: the cluster takes no token

    started = time.perf_counter()
    cluster = RayNodes.start(2)
    print(f"2-node cluster started in {time.perf_counter() - started:.1f} s "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    try:
        wall, code, output = sweep(config, cluster.address, work / "run1", home)
        report("stale token, 2 nodes", wall, code, output, work / "run1")

        removed: dict[str, float] = {}
        worker = cluster.node_ids[1]  # the driver attaches to the head (Ray prefers it)
        watcher = threading.Thread(target=remove_after_first_row, daemon=True,
                                   args=(cluster, worker, work / "run2" / "results.jsonl",
                                         removed))
        watcher.start()
        wall, code, output = sweep(config, cluster.address, work / "run2", home)
        watcher.join(timeout=5)
        report("stale token, worker removed", wall, code, output, work / "run2")
        print(f"{'':34s}worker {worker[:8]} removed after the first row: "
              f"{'yes' if removed else 'no'}; load average {os.getloadavg()[0]:.1f}")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
