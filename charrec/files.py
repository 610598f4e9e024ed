"""Writing files so that a crash, a kill or Ctrl-C never leaves a half-written one.

`atomic_write(path, write)` writes into a temporary file beside `path`, flushes it to disk and
renames it into place: readers see the old file or the new one, never a mixture. New files get
the usual permissions (0666 masked by the umask, e.g. 0644), not mkstemp's private 0600.
Nothing here knows what is being written (checkpoints, plots, CSV): callers pass the bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call `write(file_object)` on a temp file next to `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
