"""Writing files so that a crash, a kill or Ctrl-C never leaves a half-written one.

`atomic_write(path, write)` writes into a temporary file beside `path`, flushes it to disk and
renames it into place: readers see the old file or the new one, never a mixture. A Ctrl-C that
arrives meanwhile is held back until the file is in place (`deferred_interrupt`), so the write
finishes and the interrupt then happens as usual. New files get the usual permissions (0666
masked by the umask, e.g. 0644), not mkstemp's private 0600. `keep_previous(path)` keeps an
existing file's copy as `model.prev.pth` before a new one replaces it. `children_ignore_interrupt`
starts worker processes that leave Ctrl-C to their parent. Nothing here knows what is being
written (checkpoints, plots, CSV): callers pass the bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# SIGTERM and SIGHUP count as interruptions where the program turned them into one (the CLI
# makes them act like Ctrl-C); with no Python handler they keep their default action
LATE_INTERRUPTS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP")
                        if hasattr(signal, name))


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) inside the block; deliver it to the previous handler after.
    SIGTERM and SIGHUP are held back too where a Python handler is set for them.

    Only the main thread can set signal handlers, so elsewhere this does nothing (Python
    delivers signals to the main thread anyway). The previous handlers are always restored; an
    interrupt that arrived inside is re-delivered once, after the block, whether the block
    finished or raised.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, *LATE_INTERRUPTS)}
    held = [signum for signum, handler in previous.items()
            if callable(handler) or (signum == signal.SIGINT and handler == signal.SIG_DFL)]
    received: list[tuple[int, object]] = []
    for signum in held:
        signal.signal(signum, lambda signum, frame: received.append((signum, frame)))
    try:
        yield
    finally:
        for signum in held:
            signal.signal(signum, previous[signum])
        if received:
            _deliver(previous[received[0][0]], *received[0])


@contextlib.contextmanager
def children_ignore_interrupt(signals: tuple[int, ...] = ()) -> Iterator[None]:
    """Worker processes started inside the block never see Ctrl-C; the parent still does.
    `signals` are blocked in them too (e.g. SIGTERM, for workers that set their own handling).

    A terminal sends Ctrl-C to every process of the job, so a spawned worker that is still
    importing would print a KeyboardInterrupt traceback. SIGINT is blocked in this thread while
    the block starts processes: they inherit the blocked mask, so Python never raises
    KeyboardInterrupt in them, and the parent alone decides what stops (as the standard
    library does for its resource tracker). A Ctrl-C meanwhile stays pending and reaches this
    process as usual right after the block. Main thread only; elsewhere it does nothing.
    """
    if (not hasattr(signal, "pthread_sigmask")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *signals})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _deliver(handler: object, signum: int, frame: object) -> None:
    if handler == signal.SIG_DFL:  # the default action: end the process as the signal would
        os.kill(os.getpid(), signum)
    elif callable(handler):
        handler(signum, frame)  # the usual handler raises KeyboardInterrupt here


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write(file_object)` on a temp file next to `path`, then move it into place.

    Ctrl-C is deferred until the file is in place (or the temp file is removed after an error).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with deferred_interrupt():
        descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                                 dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp_name, 0o666 & ~_umask())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    return path


def previous_path(path: str | Path) -> Path:
    """Where `keep_previous` puts the old file: `model.pth` -> `model.prev.pth`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def keep_previous(path: str | Path) -> Path | None:
    """Keep a copy of the file at `path` as `previous_path(path)` (replacing an older copy
    there) and return where, or None if there is no file. The file itself stays in place until
    the caller replaces it, so an interrupted or failed run still leaves it where it was."""
    path = Path(path)
    if not path.is_file():
        return None
    backup = previous_path(path)
    if backup.exists() and os.path.samefile(path, backup):
        return backup  # kept already (a run that saved nothing); rename would leave the temp
    with deferred_interrupt():
        temp_name = backup.with_name(f".{backup.name}.{os.getpid()}.tmp")
        temp_name.unlink(missing_ok=True)
        try:
            try:
                os.link(path, temp_name)  # a second name for the same bytes: instant, no copy
            except OSError:  # file systems without hard links
                shutil.copy2(path, temp_name)
            os.replace(temp_name, backup)
        except BaseException:
            temp_name.unlink(missing_ok=True)
            raise
    return backup
