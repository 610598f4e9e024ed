"""Writing files so that a crash, a kill or Ctrl-C never leaves a half-written one.

`atomic_write(path, write)` writes into a temporary file beside `path`, flushes it to disk and
renames it into place: readers see the old file or the new one, never a mixture. A Ctrl-C that
arrives meanwhile is held back until the file is in place (`deferred_interrupt`), so the write
finishes and the interrupt then happens as usual. New files get the usual permissions (0666
masked by the umask, e.g. 0644), not mkstemp's private 0600. `keep_previous(path)` keeps an
existing file's copy as `model.prev.pth` before a new one replaces it. `children_ignore_interrupt`
starts worker processes that leave Ctrl-C to their parent. Nothing here knows what is being
written (checkpoints, plots, CSV): callers pass the bytes and a few words naming it.

When the disk fails (full, read-only, no permission, a quota, an I/O error) an `OSError` becomes a
`WriteError` whose one line names what could not be written, why, and what was kept: the
previous file is always left byte for byte and no temp file stays behind. `check_writable`
tries a folder before a long run, so a read-only destination is found before any work.
Whether a failed write is an error or a warning is the caller's decision (results vs extras).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from charrec.errors import WriteError


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


def describe_os_error(error: OSError) -> str:
    """The operating system's words for `error`, e.g. "no space left on device"."""
    text = error.strerror or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]


def os_error_in(error: BaseException) -> OSError | None:
    """`error` itself if it is an OSError, else an OSError it was raised from or while handling
    (a library may turn a failed write into its own exception), else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def write_error(error: OSError, action: str, kept: str) -> WriteError:
    """`action: cause; kept` as a WriteError, e.g. "could not write the checkpoint m.pth: no
    space left on device; the previous file is unchanged"."""
    return WriteError(f"{action}: {describe_os_error(error)}; {kept}", error.errno)


class _WatchedFile:
    """The temp file as `write` sees it, remembering the first OSError a write raised: a writer
    such as `torch.save` reports a failed write as its own RuntimeError."""

    def __init__(self, handle: IO[bytes], errors: list[OSError]):
        self._handle, self._errors = handle, errors

    def write(self, data: bytes) -> int:
        try:
            return self._handle.write(data)
        except OSError as error:
            self._errors.append(error)
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._handle, name)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object],
                 what: str = "the file") -> Path:
    """Call `write(file_object)` on a temp file next to `path`, then move it into place.

    Ctrl-C is deferred until the file is in place (or the temp file is removed after an error).
    A disk error raises `WriteError` ("could not write `what` PATH: ...; the previous file is
    unchanged"); `path` is then as it was and the temp file is gone.
    """
    path = Path(path)
    existed = path.is_file()
    write_errors: list[OSError] = []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with deferred_interrupt():
            descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                                     dir=path.parent)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    write(_WatchedFile(handle, write_errors))  # type: ignore[arg-type]
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(temp_name, 0o666 & ~_umask())
                os.replace(temp_name, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(temp_name).unlink(missing_ok=True)
                raise
    except Exception as error:
        cause = write_errors[0] if write_errors and not isinstance(error, OSError) else \
            os_error_in(error)  # torch.save, say, reports a failed write as a RuntimeError
        if cause is None:
            raise  # not the disk: a programming error stays loud
        kept = "the previous file is unchanged" if existed else "no partial file was left"
        raise write_error(cause, f"could not write {what} {path}", kept) from error
    return path


def check_writable(folder: str | Path, what: str, then: str) -> None:
    """Raise `WriteError` unless a file can be created in `folder`, or, while it does not exist
    yet, in the nearest folder above it (where it would be made). For long runs, before any
    work: "cannot write `what`: read-only file system (FOLDER); `then`"."""
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise WriteError(f"cannot write {what}: {existing} is a file, not a folder; {then}")
    try:
        with deferred_interrupt():  # the probe file never stays behind
            descriptor, probe = tempfile.mkstemp(prefix=".charrec-write-check-", dir=existing)
            os.close(descriptor)
            os.unlink(probe)
    except OSError as error:
        raise WriteError(f"cannot write {what}: {describe_os_error(error)} ({existing}); "
                         f"{then}", error.errno) from error


def previous_path(path: str | Path) -> Path:
    """Where `keep_previous` puts the old file: `model.pth` -> `model.prev.pth`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def keep_previous(path: str | Path) -> Path | None:
    """Keep a copy of the file at `path` as `previous_path(path)` (replacing an older copy
    there) and return where, or None if there is no file. The file itself stays in place until
    the caller replaces it, so an interrupted or failed run still leaves it where it was.
    A disk error raises `WriteError`; `path` is unchanged and no temp file is left."""
    path = Path(path)
    if not path.is_file():
        return None
    backup = previous_path(path)
    if backup.exists() and os.path.samefile(path, backup):
        return backup  # kept already (a run that saved nothing); rename would leave the temp
    temp_name = backup.with_name(f".{backup.name}.{os.getpid()}.tmp")
    try:
        with deferred_interrupt():
            temp_name.unlink(missing_ok=True)
            try:
                try:
                    os.link(path, temp_name)  # a second name for the same bytes: instant
                except OSError as error:
                    if error.errno not in _NO_HARD_LINKS:
                        raise
                    shutil.copy2(path, temp_name)
                os.replace(temp_name, backup)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp_name.unlink(missing_ok=True)
                raise
    except OSError as error:
        raise write_error(error, f"could not keep a copy of {path} as {backup}",
                          f"{path} is unchanged") from error
    return backup


# link(2) says the file system cannot make hard links (FAT, some network shares): copy instead;
# a full disk or a read-only folder would fail the copy too, so it is reported as it is
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}
