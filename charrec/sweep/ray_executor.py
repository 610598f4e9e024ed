"""Sweep trials on a Ray cluster (`charrec sweep --executor ray`): with `ray_auth`, the only
modules that import ray.

`RayExecutor` is an `Executor` (see `charrec.sweep.executors`): each trial is a Ray Core task
asking for `threads` CPUs, the results come back in the order they finish (`ray.wait`), and the
sweep writes every row itself, as for a local pool. Before any trial runs it checks what would
otherwise fail late or hang: the address answers a plain TCP connect (a wrong address makes
`ray.init` hang for minutes), the cluster's authentication mode and the token it needs
(`charrec.sweep.ray_auth`), every node runs this charrec version, and every node sees the run
folder and the datasets at the same paths (`check_shared_paths`). Ray Tune is not used: charrec
has its own grid/random expansion, results file and resume.

A trial whose worker or node dies is retried `retries` times (default 1), then becomes a failed
row naming the node and process it died in. Every row says which Ray node (`node`, `node_ip`)
and process (`pid`) ran it. Nothing about training, data or the run folder's files belongs
here.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from charrec import __version__
from charrec.errors import ClusterError
from charrec.sweep.executors import WorkerDied, threads_per_job
from charrec.sweep.ray_auth import AUTH_MODE, TOKEN_HELP, cluster_auth_mode, use_auth_mode

Item = TypeVar("Item")
Result = TypeVar("Result")

INSTALL = 'pip install "charrec[ray]"'
RETRIES = 1  # Ray's default is 3; one retry survives a lost node without tripling a crash
CONNECT_TIMEOUT_S = 5.0  # the TCP probe of --address
NODE_PROBE_TIMEOUT_S = 120.0  # a node's first worker can take a while to start on a busy machine
WAIT_POLL_S = 1.0  # ray.wait returns at least this often, so Ctrl-C is seen promptly
TRACKER_TIMEOUT_S = 30.0  # a call to the actor that records where trials start (may be starting)


def require_ray() -> None:
    """Fail with the install command if ray cannot be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ClusterError(f"--executor ray needs Ray, which is not installed: {INSTALL}") \
            from None


def probe_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """The host:port behind `address` ("auto": the cluster `ray start` made on this machine),
    checked with a plain TCP connect, so a wrong address is an error in seconds, not a hang."""
    target = address.split("://", 1)[-1]
    if target == "auto":
        target = _find_local_cluster()
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {address!r} is not HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else \
            (error.strerror or type(error).__name__)
        raise ClusterError(f"no Ray cluster answers at {target} ({reason} within "
                           f"{timeout:g} s): start one with `ray start --head` or check "
                           f"--address / RAY_ADDRESS") from None
    return target


def _find_local_cluster() -> str:
    try:
        from ray._private.services import canonicalize_bootstrap_address_or_die
    except ImportError:  # a Ray without this helper: let ray.init find it
        return "auto"
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except (ConnectionError, ValueError):
        raise ClusterError("--address auto: no Ray cluster was started on this machine "
                           "(`ray start --head` starts one)") from None


class RayExecutor:
    """Runs trials as Ray tasks: on the cluster at `address`, or on a local Ray started here
    (`address` None) with `jobs * threads` CPUs, which `close` shuts down again.

    Use it as a context manager (`start` on entry, `close` on exit), and call
    `check_shared_paths(run_folder, data_dirs)` before `run_sweep`, as `charrec sweep`
    does."""

    def __init__(self, address: str | None, jobs: int = 1, threads: int | None = None,
                 retries: int = RETRIES):
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.address = address
        self.jobs = jobs
        # on a cluster the cores of this machine say nothing about a trial's share: 1 thread
        self.threads = threads or (threads_per_job(jobs) if address is None else 1)
        self.retries = retries
        self.nodes = 0
        self.started_here = False
        self.target: str | None = None  # host:port connected to
        self.auth_mode_before: str | None = None  # RAY_AUTH_MODE before start, for close

    # ---------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self) -> str:
        if self.started_here:
            return f"a local Ray started by charrec ({self.jobs * self.threads} CPUs)"
        return f"the Ray cluster at {self.target} ({self.nodes} node(s))"

    def start(self) -> None:
        """Connect (or start a local Ray) and check that every node runs this charrec. On a
        cluster, the driver takes the cluster's authentication mode (`ray_auth`)."""
        require_ray()
        import ray

        target = self.target = probe_address(self.address) if self.address else None
        self.auth_mode_before = os.environ.get(AUTH_MODE)
        try:
            if target is None:
                ray.init(address="local", num_cpus=self.jobs * self.threads,
                         include_dashboard=False, logging_level="ERROR", log_to_driver=False)
                self.started_here = True
            else:
                mode = cluster_auth_mode(target)
                if mode is not None:
                    use_auth_mode(mode)
                ray.init(address=target, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as error:
            tried = os.environ.get(AUTH_MODE, "unset")
            self._restore_auth_mode()
            if _is_auth_failure(error):  # only where charrec could not ask the cluster first
                raise ClusterError(f"the Ray cluster at {target} refused charrec's "
                                   f"authentication ({AUTH_MODE}={tried}): {TOKEN_HELP}, and "
                                   f"set {AUTH_MODE}=token") from None
            raise ClusterError(f"could not start or reach Ray ({target or 'local'}): "
                               f"{_first_line(error)}") from None
        except BaseException:
            self._restore_auth_mode()
            raise
        try:
            if not self.started_here:
                cpus = int(ray.cluster_resources().get("CPU", 0))
                self.jobs = max(1, cpus // self.threads)
            self.nodes = len(self._probe_nodes())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Disconnect; a Ray that charrec started is shut down, a cluster keeps running. This
        process gets back the RAY_AUTH_MODE it had (a local `ray.init` turns on token mode)."""
        import ray

        if ray.is_initialized():
            ray.shutdown()
        self._restore_auth_mode()

    def _restore_auth_mode(self) -> None:
        if os.environ.get(AUTH_MODE) != self.auth_mode_before:
            use_auth_mode(self.auth_mode_before)

    def check_shared_paths(self, folder: str | Path, data_dirs: Sequence[str] = ()) -> None:
        """Every node must see the run folder (decoded images, checkpoints) and the datasets at
        the same paths as this machine: checked by writing a marker in the folder here and
        reading it on every node, and by comparing what each node finds at each dataset."""
        path = Path(folder).resolve() / f".ray-probe-{uuid.uuid4().hex[:12]}"
        token = uuid.uuid4().hex
        path.write_text(token, encoding="utf-8")
        datasets = [str(Path(directory).resolve()) for directory in data_dirs]
        here = _look_at(datasets)
        try:
            for node in self._probe_nodes(str(path), datasets):
                if node["marker"] != token:
                    raise ClusterError(
                        f"Ray node {node['name']} does not see the run folder {Path(folder)} "
                        f"at the same path: every node needs it on a shared filesystem "
                        f"(see docs/sweeps.md), e.g. --out-dir on an NFS mount")
                for directory in datasets:
                    if node["datasets"][directory] != here[directory]:
                        raise ClusterError(
                            f"Ray node {node['name']} does not see the dataset {directory} as "
                            f"this machine does: every node needs it at the same path, on a "
                            f"shared filesystem (see docs/sweeps.md)")
        finally:
            path.unlink(missing_ok=True)

    def _probe_nodes(self, marker: str | None = None,
                     datasets: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Run `_node_report` once on every alive node; one clear error for a node that cannot
        run charrec (not installed, another version) or does not answer."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [node for node in ray.nodes() if node.get("Alive")]
        report = ray.remote(_node_report)
        pending = {report.options(num_cpus=0, max_retries=0, scheduling_strategy=(
            NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))).remote(
                marker, list(datasets)):
            node.get("NodeManagerAddress", node["NodeID"]) for node in nodes}
        reports = []
        for ref, address in pending.items():
            try:
                found = ray.get(ref, timeout=NODE_PROBE_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                raise ClusterError(f"Ray node {address} did not run a probe task within "
                                   f"{NODE_PROBE_TIMEOUT_S:g} s") from None
            except ray.exceptions.RayError as error:
                missing = "No module named 'charrec" in str(error)
                raise ClusterError(
                    f"Ray node {address} cannot run charrec "
                    f"({'charrec is not installed there' if missing else _first_line(error)}): "
                    f"install charrec=={__version__} with {INSTALL} on every node") from None
            if found["charrec"] != __version__:
                raise ClusterError(
                    f"Ray node {found['name']} has charrec {found['charrec']}, this machine "
                    f"{__version__}: install the same version on every node")
            reports.append(found)
        return reports

    # ------------------------------------------------------------------------------ running

    def run(self, fn: Callable[[Item], Result], items: Sequence[Item],
            on_lost: Callable[[Item, str], Result] | None = None) -> Iterator[Result]:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not items:
            return
        # on the driver's node: a lost worker node must not take the record of its trials along
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        tracker = _Tracker.options(num_cpus=0, scheduling_strategy=here).remote() \
            if on_lost else None
        task = ray.remote(_run_task).options(num_cpus=self.threads, max_retries=self.retries,
                                             retry_exceptions=False)
        fn_ref = ray.put(fn)
        cwd = os.getcwd()
        pending = {task.remote(fn_ref, item, self.threads, tracker, number, cwd): (number, item)
                   for number, item in enumerate(items)}
        finished = False
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_POLL_S)
                for ref in done:
                    number, item = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as error:
                        if on_lost is None:
                            raise WorkerDied(f"a Ray task died: {_first_line(error)}") from None
                        result = self._lost(on_lost, item, error, tracker, number)
                    yield result
            finished = True
        finally:
            if not finished:
                for ref in pending:
                    ray.cancel(ref, force=True)
            if tracker is not None:
                ray.kill(tracker)

    def _lost(self, on_lost: Callable[[Item, str], Result], item: Item, error: Exception,
              tracker: Any, number: int) -> Result:
        """`on_lost`'s result for a task that died, saying where it last started."""
        import ray

        where, place = "an unknown node", None
        try:
            place = ray.get(tracker.where.remote(number), timeout=TRACKER_TIMEOUT_S)
            if place:
                where = f"pid {place['pid']} on node {place['name']}"
        except ray.exceptions.RayError:
            pass
        kind = "failed" if isinstance(error, ray.exceptions.RayTaskError) else "died"
        tries = f"{self.retries + 1} attempts" if self.retries else "no retry"
        result = on_lost(item, f"its Ray worker {kind} ({where}; {tries}): "
                               f"{type(error).__name__}: {_first_line(error)}")
        return _with_place(result, place) if place else result


# ------------------------------------------------------------------- code that runs on the nodes


def _node_name() -> str:
    import ray

    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"


def _place() -> dict[str, Any]:
    """Where this code runs: the Ray node (id, IP address), its name for messages, the process.
    The id tells apart nodes that share a machine."""
    import ray

    node, address = ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
    return {"node": node, "node_ip": address, "pid": os.getpid(),
            "name": f"{socket.gethostname()} ({address}, {node[:8]})"}


def _with_place(result: Result, place: dict[str, Any]) -> Result:
    """A results row (a dict) with the node and process that ran it; anything else as it is."""
    if not isinstance(result, dict):
        return result
    return {**result, **{key: place[key] for key in ("node", "node_ip", "pid")}}


def _look_at(datasets: Sequence[str]) -> dict[str, list[bool]]:
    """What a machine finds at each dataset path: a folder? the built-in letters' manifest
    (which decides `augment: auto`)?"""
    return {directory: [Path(directory).is_dir(), (Path(directory) / "manifest.json").is_file()]
            for directory in datasets}


def _node_report(marker: str | None, datasets: Sequence[str] = ()) -> dict[str, Any]:
    """What a node says about itself: charrec's version, the marker file's text if the node
    sees it, and what it finds at each dataset path."""
    text = None
    if marker is not None:
        try:
            text = Path(marker).read_text(encoding="utf-8")
        except OSError:
            pass
    return {"name": _node_name(), "charrec": __version__, "python": sys.version.split()[0],
            "marker": text, "datasets": _look_at(datasets)}


def _run_task(fn: Callable[[Item], Result], item: Item, threads: int, tracker: Any,
              number: int, cwd: str) -> Result:
    """One trial in a Ray worker. Ray re-uses a worker for tasks of any CPU count, so the torch
    thread count is set here, every time; relative paths (a sweep's `data_dir`) mean what they
    mean on the driver, so the task works in the driver's directory when the node has it."""
    import ray
    import torch

    if os.path.isdir(cwd):
        os.chdir(cwd)
    place = _place()
    if tracker is not None:  # waited for (milliseconds), so it is recorded before any crash
        try:
            ray.get(tracker.started.remote(number, place), timeout=TRACKER_TIMEOUT_S)
        except ray.exceptions.RayError:
            pass  # the tracker only names where a lost trial died: the trial goes on
    torch.set_num_threads(threads)
    return _with_place(fn(item), place)


class _TrackerState:
    """Where each task last started, so that a trial whose worker died can name it."""

    def __init__(self) -> None:
        self.places: dict[int, dict[str, Any]] = {}

    def started(self, number: int, place: dict[str, Any]) -> None:
        self.places[number] = place

    def where(self, number: int) -> dict[str, Any] | None:
        return self.places.get(number)


class _LazyActor:
    """`ray.remote(_TrackerState)`, made on first use so that importing this module does not
    import ray."""

    def options(self, **options: Any) -> Any:
        import ray

        return ray.remote(_TrackerState).options(**options)


_Tracker = _LazyActor()


def _is_auth_failure(error: BaseException) -> bool:
    """Ray reports a refused token as AuthenticationError or, from ray.init, as a
    ConnectionError whose cause's text says Unauthenticated / InvalidAuthToken."""
    seen: BaseException | None = error
    while seen is not None:
        if type(seen).__name__ == "AuthenticationError" or \
                any(word in str(seen) for word in ("Unauthenticated", "InvalidAuthToken")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
