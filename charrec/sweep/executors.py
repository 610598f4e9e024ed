"""Where sweep trials run: one small interface and the local back-ends.

An `Executor` calls a picklable function on every item, up to `jobs` at a time, and yields the
results as they finish. The sweep knows nothing else about it, so a back-end for a cluster
engine slots in behind the same interface: `charrec.sweep.ray_executor` (with `ray_auth`, the
only modules that import ray) wraps `fn` in a Ray task and yields from `ray.wait`; config
parsing, result collection and reporting stay as they are.

Local back-ends: `InlineExecutor` (one trial at a time in this process) and
`LocalPoolExecutor` (`jobs` spawned worker processes). By default a sweep runs one trial per
core (`default_jobs`), each with one torch thread (`threads_per_job`): these small networks gain
little from a second thread, which mostly spin-waits on a busy machine, while trials side by
side scale with the cores.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Protocol, TypeVar

from charrec.errors import CharrecError
from charrec.files import LATE_INTERRUPTS, children_ignore_interrupt

Item = TypeVar("Item")
Result = TypeVar("Result")


class WorkerDied(CharrecError):
    """A worker process ended without returning its trial's result (killed, out of memory)."""


class Executor(Protocol):
    jobs: int  # trials at once
    threads: int  # torch threads per trial

    def run(self, fn: Callable[[Item], Result], items: Sequence[Item],
            on_lost: Callable[[Item, str], Result] | None = None) -> Iterator[Result]:
        """Call `fn` on each item, up to `jobs` at once; yield results in the order they finish.

        Closing the iterator early (an error or Ctrl-C in the consumer) stops the work that is
        still queued or running. If the process running an item dies (killed, out of memory, a
        lost node), a back-end that can go on yields `on_lost(item, reason)` for it; one that
        cannot (a broken local pool), or any back-end without `on_lost`, raises `WorkerDied`.
        """
        ...


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_jobs(trials: int, threads: int | None = None) -> int:
    """Trials at once when --jobs is not given: one per core (per `threads` cores when that is
    given), at most one per trial."""
    return max(1, min(available_cores() // (threads or 1), trials))


def threads_per_job(jobs: int) -> int:
    """torch threads per trial when --threads is not given: every core for one trial at a
    time, else one each."""
    return available_cores() if jobs == 1 else 1


def _init_worker(threads: int, ignore_interrupt: bool) -> None:
    import torch

    torch.set_num_threads(threads)
    if ignore_interrupt:
        # Ctrl-C, and a scheduler's SIGTERM or a closed terminal's SIGHUP, may reach the whole
        # process group; the parent alone decides what stops (and ends the workers with SIGKILL)
        for signum in (signal.SIGINT, *LATE_INTERRUPTS):
            signal.signal(signum, signal.SIG_IGN)


class InlineExecutor:
    """Runs the trials one after another in this process (`--jobs 1`)."""

    def __init__(self, threads: int | None = None):
        self.jobs = 1
        self.threads = threads or threads_per_job(1)

    def run(self, fn: Callable[[Item], Result], items: Sequence[Item],
            on_lost: Callable[[Item, str], Result] | None = None) -> Iterator[Result]:
        import torch

        previous = torch.get_num_threads()
        _init_worker(self.threads, ignore_interrupt=False)
        try:
            for item in items:
                yield fn(item)
        finally:
            torch.set_num_threads(previous)


class LocalPoolExecutor:
    """Runs trials in `jobs` worker processes on this machine.

    Workers are spawned (not forked), so no torch thread-pool state is copied into them; each
    keeps its own caches (e.g. the decoded dataset) for all the trials it runs.
    """

    def __init__(self, jobs: int, threads: int | None = None):
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.jobs = jobs
        self.threads = threads or threads_per_job(jobs)

    def run(self, fn: Callable[[Item], Result], items: Sequence[Item],
            on_lost: Callable[[Item, str], Result] | None = None) -> Iterator[Result]:
        # A dead worker breaks the whole pool (every pending future fails), so `on_lost` cannot
        # help here: the sweep stops with WorkerDied and --resume runs the rest.
        import multiprocessing
        from concurrent.futures.process import BrokenProcessPool

        if not items:
            return
        pool = futures.ProcessPoolExecutor(
            max_workers=min(self.jobs, len(items)), mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(self.threads, True))
        finished = False
        try:
            # workers start with Ctrl-C (and SIGTERM, SIGHUP) blocked: the parent's
            with children_ignore_interrupt(LATE_INTERRUPTS):
                pending = [pool.submit(fn, item) for item in items]
            for future in futures.as_completed(pending):
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise WorkerDied("a worker process died before finishing its trial "
                                     "(killed, or out of memory?)") from None
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:
                _stop(pool)


def _stop(pool: futures.ProcessPoolExecutor) -> None:
    """Cancel queued work and end the workers now, rather than after their current trial
    (SIGKILL: they ignore SIGTERM, which a scheduler may send to the whole group)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


def make_executor(jobs: int, threads: int | None = None) -> Executor:
    """`--jobs 1`: in this process; more: a local process pool. `threads` per trial defaults to
    `threads_per_job(jobs)`."""
    return InlineExecutor(threads) if jobs == 1 else LocalPoolExecutor(jobs, threads)
