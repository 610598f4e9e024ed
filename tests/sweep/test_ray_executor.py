"""`charrec sweep --executor ray` against a fake `ray` module: what the executor asks of Ray
(task resources, retries, a local Ray's size), results in completion order, a dead worker as a
failed row, Ctrl-C, and the one-line errors (no Ray, a wrong address, a refused token, a node
without charrec or without the run folder). These run without Ray installed; the real local-Ray
test is tests/sweep/test_ray_cluster.py.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from charrec import __version__
from charrec.sweep import ray_executor
from charrec.sweep.executors import InlineExecutor, WorkerDied
from charrec.sweep.ray_executor import ClusterError, RayExecutor, probe_address
from charrec.sweep.runner import RunFolder, run_sweep
from charrec.sweep.spec import expand, load_sweep
from tests.helpers import TINY_SWEEP, assert_one_line_error, invoke

SWEEP = TINY_SWEEP


# ------------------------------------------------------------------------------- the fake ray


class RayError(Exception):
    pass


class RayTaskError(RayError):
    pass


class WorkerCrashedError(RayError):
    pass


class GetTimeoutError(RayError, TimeoutError):
    pass


class AuthenticationError(RayError):
    pass


class Ref:
    """An ObjectRef whose task already ran (the fake runs every task when it is submitted)."""

    def __init__(self, value: Any = None, error: Exception | None = None):
        self.value, self.error = value, error


class FakeRemote:
    def __init__(self, fake: FakeRay, target: Any, options: dict[str, Any] | None = None):
        self.fake, self.target, self.opts = fake, target, options or {}

    def options(self, **options: Any) -> FakeRemote:
        return FakeRemote(self.fake, self.target, {**self.opts, **options})

    def remote(self, *args: Any) -> Any:
        args = tuple(arg.value if isinstance(arg, Ref) else arg for arg in args)
        if isinstance(self.target, type):  # an actor
            return FakeActor(self.target(*args))
        self.fake.submitted.append((self.target.__name__, self.opts, args))
        if self.fake.crash(self.target, args):
            return Ref(error=WorkerCrashedError("The worker died unexpectedly while executing "
                                                "this task.\nCheck the logs."))
        try:
            return Ref(self.target(*args))
        except Exception as error:  # noqa: BLE001 - as Ray wraps an exception raised in a task
            return Ref(error=RayTaskError(f"{type(error).__name__}: {error}"))


class FakeActor:
    def __init__(self, instance: Any):
        self.instance = instance

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.instance, name)
        return types.SimpleNamespace(remote=lambda *args: Ref(method(*args)))


class FakeRay(types.ModuleType):
    """The part of Ray's API that RayExecutor uses, run in this process. `wait` hands results
    back newest first, so completion order differs from submission order."""

    def __init__(self, cpus: int = 2, nodes: int = 1):
        super().__init__("ray")
        self.exceptions = types.SimpleNamespace(
            RayError=RayError, RayTaskError=RayTaskError, WorkerCrashedError=WorkerCrashedError,
            GetTimeoutError=GetTimeoutError, AuthenticationError=AuthenticationError)
        strategies = types.ModuleType("ray.util.scheduling_strategies")
        strategies.NodeAffinitySchedulingStrategy = lambda node_id, soft: ("node", node_id, soft)
        self.util = types.ModuleType("ray.util")
        self.util.scheduling_strategies = strategies
        self.util.get_node_ip_address = lambda: "10.0.0.7"
        self.get_runtime_context = lambda: types.SimpleNamespace(get_node_id=lambda: "ab" * 28)
        self.cpus, self.node_ids = cpus, [f"node{i}" for i in range(nodes)]
        self.init_kwargs: dict[str, Any] | None = None
        self.init_error: Exception | None = None
        self.connected = False
        self.shutdowns = 0
        self.submitted: list[tuple[str, dict[str, Any], tuple]] = []
        self.cancelled: list[Ref] = []
        self.crash: Callable[[Any, tuple], bool] = lambda target, args: False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeRay:
        for name, module in (("ray", self), ("ray.util", self.util),
                             ("ray.util.scheduling_strategies", self.util.scheduling_strategies)):
            monkeypatch.setitem(sys.modules, name, module)
        for name in ("ray._private", "ray._private.services", "ray._raylet"):
            monkeypatch.setitem(sys.modules, name, None)  # private helpers: not in the fake
        return self

    def init(self, **kwargs: Any) -> None:
        self.init_kwargs = kwargs
        if self.init_error:
            raise self.init_error
        self.connected = True

    def is_initialized(self) -> bool:
        return self.connected

    def shutdown(self) -> None:
        self.connected, self.shutdowns = False, self.shutdowns + 1

    def nodes(self) -> list[dict[str, Any]]:
        return [{"NodeID": node, "Alive": True, "NodeManagerAddress": f"10.0.0.{i}"}
                for i, node in enumerate(self.node_ids)]

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": float(self.cpus)}

    def remote(self, target: Any) -> FakeRemote:
        return FakeRemote(self, target)

    def put(self, value: Any) -> Ref:
        return Ref(value)

    def wait(self, refs: list[Ref], num_returns: int, timeout: float) -> tuple[list, list]:
        return refs[-num_returns:], refs[:-num_returns]

    def get(self, ref: Ref, timeout: float | None = None) -> Any:
        if ref.error is not None:
            raise ref.error
        return ref.value

    def cancel(self, ref: Ref, force: bool) -> None:
        self.cancelled.append(ref)

    def kill(self, actor: Any) -> None:
        pass

    def trial_tasks(self) -> list[tuple[dict[str, Any], Any]]:
        """(options, TrialTask) of every trial submitted, in submission order."""
        return [(opts, args[1]) for name, opts, args in self.submitted if name == "_run_task"]


@pytest.fixture
def fake_ray(monkeypatch) -> FakeRay:
    return FakeRay().install(monkeypatch)


@pytest.fixture
def sweep_file(tmp_path, course_dataset) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(SWEEP.format(data=course_dataset))
    return path


def new_run(sweep_file: Path, run_dir: Path):
    spec = load_sweep(sweep_file)
    trials = expand(spec)
    return RunFolder.create(run_dir, spec, trials), spec, trials


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def closed_port() -> int:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        return server.getsockname()[1]


# ------------------------------------------------------------------------------------ running


def test_trials_are_ray_tasks_and_rows_come_back_as_they_finish(fake_ray, sweep_file, tmp_path):
    folder, spec, trials = new_run(sweep_file, tmp_path / "run")
    with RayExecutor(None, jobs=2, threads=1) as executor:
        assert fake_ray.init_kwargs == {"address": "local", "num_cpus": 2,
                                        "include_dashboard": False, "logging_level": "ERROR",
                                        "log_to_driver": False}
        status = run_sweep(folder, spec, trials, executor, keep="none")
    assert fake_ray.shutdowns == 1  # the Ray it started is stopped
    submitted = fake_ray.trial_tasks()
    assert [task.trial.index for _, task in submitted] == [0, 1, 2]
    assert all(opts["num_cpus"] == 1 and opts["max_retries"] == ray_executor.RETRIES == 1
               for opts, _ in submitted)
    # the decoded images travel through the run folder, as for a local pool
    assert all(task.data_file and ".data-0.pt" in task.data_file for _, task in submitted)
    rows = read_rows(tmp_path / "run")
    assert [row["trial"] for row in rows] == ["t002", "t001", "t000"]  # the fake's finish order
    assert status.done == 3 and status.failed == 0
    assert all(row["status"] == "ok" for row in rows)
    # every row says which Ray node and process ran it
    assert all(row["node"] == "ab" * 28 and row["node_ip"] == "10.0.0.7" and
               row["pid"] == os.getpid() for row in rows)
    assert (tmp_path / "run" / "best.yaml").is_file()
    assert not list((tmp_path / "run").glob(".data-*"))


def test_same_results_as_inline(fake_ray, sweep_file, tmp_path):
    folder, spec, trials = new_run(sweep_file, tmp_path / "ray")
    with RayExecutor(None, jobs=2, threads=1) as executor:
        run_sweep(folder, spec, trials, executor, keep="none")
    folder, spec, trials = new_run(sweep_file, tmp_path / "inline")
    run_sweep(folder, spec, trials, InlineExecutor(threads=1), keep="none")
    on_ray = {row["trial"]: row["val_accuracy"] for row in read_rows(tmp_path / "ray")}
    inline = {row["trial"]: row["val_accuracy"] for row in read_rows(tmp_path / "inline")}
    assert on_ray == inline


def test_a_dead_worker_is_a_failed_row_naming_where_it_died(fake_ray, sweep_file, tmp_path):
    fake_ray.crash = lambda target, args: target.__name__ == "_run_task" and \
        args[1].trial.index == 1
    folder, spec, trials = new_run(sweep_file, tmp_path / "run")
    with RayExecutor(None, jobs=2, threads=1) as executor:
        status = run_sweep(folder, spec, trials, executor, keep="none")
    rows = {row["trial"]: row for row in read_rows(tmp_path / "run")}
    assert [rows[t]["status"] for t in ("t000", "t001", "t002")] == ["ok", "failed", "ok"]
    assert status.failed == 1
    reason = rows["t001"]["reason"]
    assert reason.startswith("its Ray worker died (")
    # the fake crashes before the task starts, so no node reported it: "an unknown node"
    assert "an unknown node; 2 attempts" in reason
    assert "WorkerCrashedError: The worker died unexpectedly" in reason and "\n" not in reason
    assert rows["t001"]["options"] == {"momentum": 0.8} and rows["t001"]["seed"] == 0


def test_the_failed_row_names_the_node_and_process_the_task_started_in(fake_ray):
    def crash_after_starting(item: int) -> int:
        raise WorkerCrashedError("The worker died unexpectedly")

    fake_ray.crash = lambda target, args: False
    with RayExecutor(None, jobs=1, threads=1) as executor:
        rows = list(executor.run(crash_after_starting, [7],
                                 on_lost=lambda item, reason: (item, reason)))
    (item, reason), = rows
    assert item == 7
    assert f"pid {os.getpid()} on node {socket.gethostname()} (10.0.0.7, abababab)" in reason
    # without on_lost a dead worker stops the run, as in a local pool
    with RayExecutor(None, jobs=1, threads=1) as executor, pytest.raises(WorkerDied):
        list(executor.run(crash_after_starting, [7]))


def interrupt_after_first_row(status: Any) -> None:
    """A sweep's progress callback that presses Ctrl-C once the first trial has finished."""
    if status.done == 1:
        raise KeyboardInterrupt


def test_ctrl_c_cancels_pending_tasks_and_keeps_finished_rows(fake_ray, sweep_file, tmp_path):
    folder, spec, trials = new_run(sweep_file, tmp_path / "run")

    with RayExecutor(None, jobs=2, threads=1) as executor, pytest.raises(KeyboardInterrupt):
        run_sweep(folder, spec, trials, executor, keep="none",
                  on_progress=interrupt_after_first_row)
    assert len(fake_ray.cancelled) == 2 and fake_ray.shutdowns == 1
    assert [row["trial"] for row in read_rows(tmp_path / "run")] == ["t002"]


def test_resume_with_another_executor_runs_only_the_rest(fake_ray, sweep_file, tmp_path):
    folder, spec, trials = new_run(sweep_file, tmp_path / "run")

    with RayExecutor(None, jobs=2, threads=1) as executor, pytest.raises(KeyboardInterrupt):
        run_sweep(folder, spec, trials, executor, on_progress=interrupt_after_first_row)
    folder = RunFolder.reopen(tmp_path / "run", trials)
    status = run_sweep(folder, spec, trials, InlineExecutor(threads=1))
    assert status.skipped == 1 and status.done == 3
    assert [row["trial"] for row in read_rows(tmp_path / "run")] == ["t002", "t000", "t001"]


# ------------------------------------------------------------------------------ the CLI, errors


def test_cli_runs_on_ray_and_says_where(fake_ray, sweep_file, tmp_path):
    result = invoke("sweep", sweep_file, "--executor", "ray", "--jobs", "2", "--threads", "1",
                    "--out-dir", tmp_path / "run", "--keep", "none")
    assert result.exit_code == 0, result.output
    assert "2 at a time (1 torch thread(s) each) on a local Ray started by charrec (2 CPUs)" \
        in result.output
    assert len(read_rows(tmp_path / "run")) == 3 and fake_ray.shutdowns == 1
    assert "3 trial(s) ran on 1 Ray node(s): 10.0.0.7 (abababab): 3" in result.output
    assert not list((tmp_path / "run").glob(".ray-probe-*"))  # the shared-folder marker is gone


def test_cli_on_a_cluster_uses_its_cpus_and_one_thread_per_trial(
        fake_ray, sweep_file, tmp_path, monkeypatch):
    fake_ray.cpus, fake_ray.node_ids = 12, ["a", "b", "c"]
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setenv("RAY_ADDRESS", address)
        result = invoke("sweep", sweep_file, "--executor", "ray", "--out-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert fake_ray.init_kwargs["address"] == address and "num_cpus" not in fake_ray.init_kwargs
    assert f"12 at a time (1 torch thread(s) each) on the Ray cluster at {address} (3 node(s))" \
        in result.output
    probes = [opts for name, opts, _ in fake_ray.submitted if name == "_node_report"]
    assert [opts["scheduling_strategy"] for opts in probes[:3]] == \
        [("node", node, False) for node in ("a", "b", "c")]


def test_without_ray_one_line_with_the_install_command(monkeypatch, sweep_file, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = invoke("sweep", sweep_file, "--executor", "ray", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "needs Ray", 'pip install "charrec[ray]"')
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_an_address_that_does_not_answer_is_one_line(fake_ray, sweep_file, tmp_path,
                                                     monkeypatch, how):
    address = f"127.0.0.1:{closed_port()}"
    options = ["--address", address] if how == "option" else []
    if how == "environment":
        monkeypatch.setenv("RAY_ADDRESS", address)
    result = invoke("sweep", sweep_file, "--executor", "ray", *options,
                    "--out-dir", tmp_path / "run")
    assert_one_line_error(result, f"no Ray cluster answers at {address}", "ray start --head")
    assert fake_ray.init_kwargs is None  # ray.init, which would hang, was never called
    assert not (tmp_path / "run").exists()


def test_probe_gives_up_after_its_timeout():
    # 192.0.2.0/24 is reserved for documentation: nothing answers (or the network says so)
    with pytest.raises(ClusterError, match="no Ray cluster answers at 192.0.2.1:6379"):
        probe_address("192.0.2.1:6379", timeout=0.5)
    with pytest.raises(ClusterError, match="is not HOST:PORT or auto"):
        probe_address("headnode")


def refused_by_gcs() -> ConnectionError:
    # what ray.init raised, after ~20 s of retries, for a token-protected `ray start --head`
    # cluster when the driver had RAY_AUTH_MODE=disabled (Ray 2.60)
    error = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    error.__cause__ = RuntimeError("Failed to connect to GCS. Last connection error: ... "
                                   "Unauthenticated: RPC error: InvalidAuthToken")
    return error


@pytest.mark.parametrize("error", [AuthenticationError("Authentication failed"),
                                   refused_by_gcs()], ids=["AuthenticationError", "GCS"])
def test_a_refused_token_names_the_setting(fake_ray, sweep_file, tmp_path, error):
    fake_ray.init_error = error
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        result = invoke("sweep", sweep_file, "--executor", "ray", "--address",
                        f"127.0.0.1:{server.getsockname()[1]}", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "refused charrec's authentication", "RAY_AUTH_MODE=token",
                          "~/.ray/auth_token")


def test_address_needs_the_ray_executor(sweep_file, tmp_path):
    result = invoke("sweep", sweep_file, "--address", "auto", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "--address", "--executor ray")
    result = invoke("sweep", sweep_file, "--executor", "dask", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "--executor must be one of local, ray")


def report_as(**changes: Any) -> Callable[..., dict[str, Any]]:
    real = ray_executor._node_report

    def report(marker: str | None, datasets: list[str] = ()) -> dict[str, Any]:
        return {**real(marker, datasets), **changes}

    return report


def test_a_node_with_another_charrec_is_one_line(fake_ray, sweep_file, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_executor, "_node_report", report_as(charrec="0.0.1"))
    result = invoke("sweep", sweep_file, "--executor", "ray", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "has charrec 0.0.1", f"this machine {__version__}")
    assert fake_ray.shutdowns == 1


def test_a_node_without_charrec_is_one_line(fake_ray, sweep_file, tmp_path, monkeypatch):
    def no_charrec(marker: str | None, datasets: list[str] = ()) -> dict[str, Any]:
        raise ModuleNotFoundError("No module named 'charrec'")

    monkeypatch.setattr(ray_executor, "_node_report", no_charrec)
    result = invoke("sweep", sweep_file, "--executor", "ray", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "Ray node 10.0.0.0 cannot run charrec",
                          "charrec is not installed there", f"charrec=={__version__}")


def test_a_node_that_does_not_see_the_run_folder_is_one_line(fake_ray, sweep_file, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(ray_executor, "_node_report", report_as(marker=None))
    result = invoke("sweep", sweep_file, "--executor", "ray", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, "does not see the run folder", "shared filesystem")
    assert not list((tmp_path / "run").glob(".ray-probe-*"))
    assert fake_ray.shutdowns == 1


def test_a_node_that_does_not_see_the_dataset_is_one_line(fake_ray, sweep_file, tmp_path,
                                                         monkeypatch, course_dataset):
    real = ray_executor._node_report

    def missing_everywhere(marker: str | None, datasets: list[str] = ()) -> dict[str, Any]:
        report = real(marker, datasets)
        report["datasets"] = {path: [False, False] for path in datasets}
        return report

    monkeypatch.setattr(ray_executor, "_node_report", missing_everywhere)
    result = invoke("sweep", sweep_file, "--executor", "ray", "--out-dir", tmp_path / "run")
    assert_one_line_error(result, f"does not see the dataset {course_dataset.resolve()}",
                          "same path")


def test_ctrl_c_on_the_cli_exits_130_and_stops_the_ray_it_started(fake_ray, sweep_file,
                                                                   tmp_path):
    waits = []

    def wait_then_ctrl_c(refs: list, num_returns: int, timeout: float) -> tuple[list, list]:
        waits.append(len(refs))
        if len(waits) == 2:
            raise KeyboardInterrupt
        return refs[-num_returns:], refs[:-num_returns]

    fake_ray.wait = wait_then_ctrl_c
    result = invoke("sweep", sweep_file, "--executor", "ray", "--jobs", "2", "--threads", "1",
                    "--out-dir", tmp_path / "run")
    assert result.exit_code == 130
    assert f"--resume {tmp_path / 'run'}" in result.output
    assert len(read_rows(tmp_path / "run")) == 1  # the finished trial is kept
    assert len(fake_ray.cancelled) == 2 and fake_ray.shutdowns == 1
