"""A per-user cache of the font checks, so that finding the fonts costs milliseconds, not seconds.

Checking which letters a font file draws (`builtin.fonts`) renders every letter of every
face: over a second for the fonts of a fresh install (docs/benchmarks.md), paid by every
`charrec train` that renders the built-in letters. The answers depend only on the file and
on the code that checks it, so they are kept in one JSON file, `font-faces.json`, in
charrec's cache folder: `$CHARREC_CACHE_DIR`, else `$XDG_CACHE_HOME/charrec`, else
`~/.cache/charrec`.

An entry is used only while its file has the same size and modification time, and the whole
cache only while charrec's check (`CHECK_VERSION`), Pillow and FreeType are the ones that wrote
it. The cache is an optimisation and nothing more: a missing, unreadable or corrupt cache means the
fonts are checked as if there were none, silently; one that cannot be written (a read-only home,
a full disk) gives a `CharrecWarning` and the run goes on. It is written atomically, so
two runs at once or a Ctrl-C never leave a broken file. What a face is and how it is checked
does not belong here: that is `charrec.data.builtin.fonts`.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from charrec.errors import CharrecWarning, WriteError
from charrec.files import atomic_write

Face = TypeVar("Face")  # builtin.fonts.FontFace (a dataclass), not imported: it imports this

CACHE_DIR_ENV = "CHARREC_CACHE_DIR"
CACHE_FILE = "font-faces.json"
# Bump when the checks in builtin.fonts change what they find: old entries are then unused.
CHECK_VERSION = 1


def cache_dir() -> Path:
    """Where charrec keeps its per-user cache files."""
    explicit = os.environ.get(CACHE_DIR_ENV, "").strip()
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "charrec"


def faces_of_files(paths: Sequence[Path], check: Callable[[Path], list[Face]],
                   face_type: Callable[..., Face]) -> dict[Path, list[Face]]:
    """{path: check(path)} for every path, taking unchanged files' answers from the cache and
    writing the cache back when anything was checked anew. A file `check` cannot read (OSError,
    ValueError) is left out, and is checked again next time."""
    stamp = _stamp()
    entries = _read(stamp)
    found: dict[Path, list[Face]] = {}
    fresh: dict[str, Any] = {}
    for path in paths:
        key, signature = str(path), _signature(path)
        entry = entries.get(key)
        if signature is not None and isinstance(entry, dict) and entry.get("file") == signature:
            try:
                found[path] = [face_type(**_face_fields(face)) for face in entry["faces"]]
                fresh[key] = entry
                continue
            except (KeyError, TypeError, ValueError):
                pass  # a damaged entry: check the file again
        try:
            found[path] = check(path)
        except (OSError, ValueError):
            continue
        if signature is not None:
            fresh[key] = {"file": signature,
                          "faces": [asdict(face) for face in found[path]]}  # type: ignore
    if fresh != entries:
        _write(stamp, fresh)
    return found


def _stamp() -> dict[str, Any]:
    """What the cached answers depend on besides the files themselves."""
    import PIL
    from PIL import features

    return {"check": CHECK_VERSION, "pillow": PIL.__version__,
            "freetype": features.version("freetype2")}


def _signature(path: Path) -> list[int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _face_fields(face: dict[str, Any]) -> dict[str, Any]:
    fields = dict(face)
    fields["instances"] = tuple(fields.get("instances", ()))
    return fields


def _read(stamp: dict[str, Any]) -> dict[str, Any]:
    try:
        cached = json.loads((cache_dir() / CACHE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    if not isinstance(cached, dict) or cached.get("stamp") != stamp:
        return {}
    files = cached.get("files")
    return files if isinstance(files, dict) else {}


def _write(stamp: dict[str, Any], entries: dict[str, Any]) -> None:
    text = json.dumps({"stamp": stamp, "files": entries}, sort_keys=True)
    try:
        atomic_write(cache_dir() / CACHE_FILE, lambda file: file.write(text.encode("utf-8")),
                     "the font cache")
    except WriteError as error:  # a read-only home or a full disk: the next run checks again
        warnings.warn(CharrecWarning(f"{error}; the fonts will be checked again next time (set "
                                     f"{CACHE_DIR_ENV} to a writable folder to keep them)"),
                      stacklevel=2)
