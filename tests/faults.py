"""Disk faults on demand, the way SQLite tests its I/O: count every write-side operation a run
makes (opening a file to write, a write, fsync, a rename, a mkdir), then run it again once per
N, making the Nth one fail with a chosen errno.

`DiskFaults(fail_at=N, error=errno.ENOSPC)` is a context manager that patches, for the block:
`open`/`io.open` (files opened to write, and the writes on them, `os.fdopen` included), `os.open`
with a write flag (what `tempfile.mkstemp` uses), `os.fsync`, `os.replace`/`os.rename`/`os.link`
and `os.mkdir` (`Path.mkdir`, `os.makedirs`). With `fail_at=None` it only counts. Each
operation is logged with the charrec function that asked for it (`sites`), so a test can show
that the runs reach every write site. In-process only: worker processes are not patched.

Two things keep "every N" affordable: a file's first two writes are operations, its later ones
are not (they fail the way the second does: inside the writer, with part of the file written;
`torch.save` makes ~70 writes per checkpoint), and `counted(operation)` may leave out more (the
images of a rendered dataset past the first few). What is not counted never fails.

A test helper, not part of charrec.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import charrec

DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EIO)
PACKAGE = str(Path(charrec.__file__).parent) + os.sep
FILES_MODULE = str(Path(charrec.__file__).parent / "files.py")
WRITE_MODES = set("wax+")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


@dataclass
class Operation:
    number: int  # 1-based, in the order the run made them
    kind: str  # open, write, fsync, rename, mkdir
    path: str
    site: str  # the charrec function that asked for it, e.g. "checkpoint.save_checkpoint"


def _site() -> str:
    """The innermost charrec function on the stack outside charrec/files.py (the write
    primitives), else the innermost one in it, else "outside charrec"."""
    frame, fallback = sys._getframe(2), None
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(PACKAGE):
            name = filename[len(PACKAGE):].removesuffix(".py").replace(os.sep, ".")
            site = f"{name}.{frame.f_code.co_name}"
            if filename != FILES_MODULE:
                return site
            fallback = fallback or site
        frame = frame.f_back
    return fallback or "outside charrec"


@dataclass
class DiskFaults:
    fail_at: int | None = None  # the operation that fails (1-based); None: count only
    error: int = errno.ENOSPC
    counted: Any = None  # (kind, path) -> bool; None: every operation counts
    writes_per_file: int = 2
    real_fsync: bool = False  # a test needs the call, not the wait for the disk
    operations: list[Operation] = field(default_factory=list)
    failed: Operation | None = None
    _saved: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------- bookkeeping

    def _step(self, kind: str, path: Any) -> None:
        """Log one operation; raise the chosen OSError if it is the one to fail."""
        name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        if self.counted is not None and not self.counted(kind, name):
            return
        operation = Operation(len(self.operations) + 1, kind, name, _site())
        self.operations.append(operation)
        if operation.number == self.fail_at:
            self.failed = operation
            raise OSError(self.error, os.strerror(self.error), operation.path)

    @property
    def sites(self) -> set[str]:
        return {operation.site for operation in self.operations}

    # ------------------------------------------------------------------------- the patches

    def __enter__(self) -> DiskFaults:
        saved = self._saved
        saved.update(open=builtins.open, io_open=io.open, os_open=os.open, fsync=os.fsync,
                     replace=os.replace, rename=os.rename, link=os.link, mkdir=os.mkdir)

        def faulty_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            writing = bool(WRITE_MODES & set(mode))
            if writing and not isinstance(file, int):  # os.fdopen: opened already
                self._step("open", file)
            handle = saved["open"](file, mode, *args, **kwargs)
            return _FaultyFile(handle, self, file) if writing else handle

        def faulty_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & WRITE_FLAGS:
                self._step("open", path)
            return saved["os_open"](path, flags, *args, **kwargs)

        def counted(kind: str, real: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                self._step(kind, args[0] if kind != "fsync" else f"fd {args[0]}")
                if kind == "fsync" and not self.real_fsync:
                    return None
                return real(*args, **kwargs)
            return call

        builtins.open = io.open = faulty_open
        os.open = faulty_os_open
        os.fsync = counted("fsync", saved["fsync"])
        os.replace = counted("rename", saved["replace"])
        os.rename = counted("rename", saved["rename"])
        os.link = counted("rename", saved["link"])
        os.mkdir = counted("mkdir", saved["mkdir"])
        return self

    def __exit__(self, *exc_info: Any) -> None:
        saved = self._saved
        builtins.open, io.open, os.open = saved["open"], saved["io_open"], saved["os_open"]
        os.fsync, os.replace, os.rename = saved["fsync"], saved["replace"], saved["rename"]
        os.link, os.mkdir = saved["link"], saved["mkdir"]


class _FaultyFile:
    """A file opened to write whose `write` calls are operations of the DiskFaults run."""

    def __init__(self, handle: Any, faults: DiskFaults, name: Any):
        self._handle, self._faults, self._name = handle, faults, name
        self._writes = 0

    def write(self, data: Any) -> int:
        self._writes += 1
        if self._writes <= self._faults.writes_per_file:
            self._faults._step("write", self._name)
        return self._handle.write(data)

    def __enter__(self) -> _FaultyFile:
        self._handle.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        return self._handle.__exit__(*exc_info)

    def __iter__(self) -> Any:
        return iter(self._handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def leftovers(root: Path) -> list[Path]:
    """Temp files and folders that a failed write may have left under `root`: charrec's
    (`.NAME.*.tmp`, `.NAME.partial-*`, `.NAME.importing-*`, the write check's probe) and the
    sweep's shared data files."""
    markers = (".tmp", ".partial-", ".importing-", ".charrec-write-check-", ".data-")
    return sorted(path for path in root.rglob(".*") if any(mark in path.name
                                                            for mark in markers))
