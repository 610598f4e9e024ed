"""EMNIST-letters IDX files: finding image/label file pairs and reading them with the stdlib.

The IDX format (LeCun's MNIST format): 2 zero bytes, a type byte (0x08 = unsigned byte), the
number of dimensions, each dimension as a big-endian uint32, then the data. EMNIST stores each
28x28 image transposed (read row-major, the letter lies on its side) and the `letters` split
labels 1..26 = A..Z. `charrec.data.importing` turns what this module reads into upright images.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from charrec.errors import DataError

IDX_IMAGES = re.compile(r"^(?P<stem>.*)images[-.]idx3[-.]ubyte(?:\.gz)?$")
IDX_UBYTE = 0x08
EMNIST_LETTERS = range(1, 27)  # EMNIST letters labels: 1 = A ... 26 = Z


@dataclass(frozen=True)
class IdxLetters:
    """One images/labels pair read into memory: images [count, rows, columns] as stored."""

    images_path: Path
    pixels: bytes = field(repr=False)
    count: int
    rows: int
    columns: int
    labels: bytes = field(repr=False)  # EMNIST letters labels, 1..26


def find_idx_pairs(src: Path) -> list[tuple[Path, Path]]:
    """(images file, labels file) pairs: `src` itself, or the IDX images files in folder `src`.

    In a folder holding several EMNIST splits (balanced, digits, letters, ...), only the
    `letters` ones are taken. A plain and a .gz copy of the same file count once (the plain one).
    """
    if src.is_file():
        candidates = [src] if IDX_IMAGES.match(src.name) else []
        if not candidates:
            raise DataError(f"{src} is a file but not an IDX images file "
                            f"(*-images-idx3-ubyte[.gz]); give that or a folder per letter")
    else:
        candidates = sorted(path for path in src.iterdir()
                            if path.is_file() and IDX_IMAGES.match(path.name))
        if any("letters" in path.name for path in candidates):
            candidates = [path for path in candidates if "letters" in path.name]
        plain = {path.name for path in candidates}
        candidates = [path for path in candidates if path.name.removesuffix(".gz") == path.name
                      or path.name.removesuffix(".gz") not in plain]
    return [(images, _labels_file(images)) for images in candidates]


def _labels_file(images: Path) -> Path:
    stem = IDX_IMAGES.match(images.name)["stem"]  # type: ignore[index]
    names = [f"{stem}labels{a}idx1{b}ubyte{gz}" for gz in ("", ".gz")
             for a, b in (("-", "-"), (".", "-"), ("-", "."), (".", "."))]
    for name in names:
        if (images.parent / name).is_file():
            return images.parent / name
    raise DataError(f"{images}: no labels file next to it (expected {names[0]} or "
                    f"{names[0]}.gz); EMNIST images and labels come in pairs")


def read_idx(path: Path, ndim: int) -> tuple[tuple[int, ...], bytes]:
    """(dimensions, payload bytes) of an IDX file of unsigned bytes with `ndim` dimensions."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    expected_magic = bytes((0, 0, IDX_UBYTE, ndim))
    if data[:4] != expected_magic:
        raise DataError(f"{path}: not an IDX file of {ndim}-D unsigned bytes (magic bytes "
                        f"{data[:4].hex(' ') or 'missing'}, expected {expected_magic.hex(' ')})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: IDX header is cut short ({len(data)} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    payload = data[header:]
    if len(payload) != math.prod(dims):
        raise DataError(f"{path}: the IDX header says {'x'.join(map(str, dims))} = "
                        f"{math.prod(dims)} bytes of data but the file holds {len(payload)}; "
                        f"it is truncated or corrupt")
    return dims, payload


def read_letters(images_path: Path, labels_path: Path) -> IdxLetters:
    """Read and check an EMNIST-letters pair (matching counts, labels 1..26)."""
    (count, rows, columns), pixels = read_idx(images_path, 3)
    (label_count,), labels = read_idx(labels_path, 1)
    if count != label_count:
        raise DataError(f"{images_path.name} holds {count} images but {labels_path.name} "
                        f"holds {label_count} labels; they must belong together")
    bad = sorted(set(labels) - set(EMNIST_LETTERS))
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
        raise DataError(f"{labels_path}: labels must be 1..26 (EMNIST letters: 1 = A ... "
                        f"26 = Z) but it holds {shown}; is this the EMNIST letters split?")
    return IdxLetters(images_path, pixels, count, rows, columns, labels)
