"""A real multi-node Ray cluster on this machine for the tests (`ray.cluster_utils.Cluster`: a
head and worker nodes, each its own raylet), held by a helper process so that the test process
is only the driver, as on a real cluster: its Ray settings (the authentication mode above all)
are its own, not the cluster's.

`RayNodes.start(...)` runs this file as a script. It prints one JSON line with the GCS address
and the node ids, then obeys lines on stdin: `remove NODE_ID` (prints `{"removed": ...}`) and
`stop`. End of input stops the cluster too, so a test process that dies takes its nodes with
it. Ray's files go to a private temp folder (not the machine's shared /tmp/ray), removed at the
end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120


class RayNodes:
    """The helper process, seen from the test: its address and node ids, remove, stop."""

    def __init__(self, process: subprocess.Popen, temp_dir: str, hello: dict[str, Any]):
        self.process, self.temp_dir = process, temp_dir
        self.address: str = hello["address"]
        self.node_ids: list[str] = hello["nodes"]
        self.head_id: str = hello["nodes"][0]

    @classmethod
    def start(cls, nodes: int = 2, token: str | None = None) -> RayNodes:
        """`nodes` nodes of 1 CPU each; with `token`, the cluster requires it on every call."""
        temp_dir = tempfile.mkdtemp(prefix="rn-", dir="/tmp")  # short: socket paths are limited
        env = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
        env.update(RAY_TMPDIR=temp_dir, HOME=temp_dir, PYTHONUNBUFFERED="1",
                   RAY_AUTH_MODE="token" if token else "disabled")
        if token:
            env["RAY_AUTH_TOKEN"] = token
        process = subprocess.Popen([sys.executable, __file__, str(nodes)], env=env, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=open(Path(temp_dir) / "helper.log", "w"))
        line = process.stdout.readline()
        if not line:
            process.wait(timeout=30)
            log = (Path(temp_dir) / "helper.log").read_text()[-3000:]
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise RuntimeError(f"the Ray cluster did not start:\n{log}")
        return cls(process, temp_dir, json.loads(line))

    def remove(self, node_id: str) -> None:
        self._send(f"remove {node_id}")
        assert json.loads(self.process.stdout.readline()) == {"removed": node_id}
        self.node_ids.remove(node_id)

    def stop(self) -> None:
        """Stop every node and wait for it; raises if the helper did not end cleanly."""
        try:
            if self.process.poll() is None:
                self._send("stop")
                self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        assert self.process.returncode == 0, f"the Ray helper exited {self.process.returncode}"

    def _send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()


def _serve(count: int) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        for _ in range(count - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        nodes = {node.node_id: node for node in cluster.list_all_nodes()}
        print(json.dumps({"address": cluster.address, "nodes": list(nodes)}), flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "remove":
                cluster.remove_node(nodes.pop(argument))
                print(json.dumps({"removed": argument}), flush=True)
            elif command == "stop":
                break
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
