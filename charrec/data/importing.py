"""Importing letter datasets into the course layout, and contact sheets to look at them.

`import_dataset` reads a folder-per-class tree (`SRC/A/*.png`, `SRC/b/*.jpg`, ...) or
EMNIST-letters IDX files (`*-images-idx3-ubyte[.gz]` with their `*-labels-idx1-ubyte[.gz]`) and
writes the course layout: `images/` + `train.json`, `validation.json`, `test.json` (a stratified
70/15/15 split by `charrec.data.loading.split_stratified`, or everything in `test.json`) and
`sources.json` (where each image came from). IDX parsing lives in `charrec.data.emnist`. The dataset
is built in a hidden temp folder next to the destination and renamed into place at the end, so a
failed or interrupted import leaves nothing half-written. Reading datasets is
`charrec.data.loading`'s job, not this module's.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from charrec import CLASSES, __version__
from charrec.data.emnist import find_idx_pairs, read_letters
from charrec.data.preprocess import IMAGE_SUFFIXES, open_image, to_grayscale
from charrec.errors import DataError, ImageError
from charrec.files import write_error

Progress = Callable[[int, int], None]

SOURCES_FILE = "sources.json"  # not manifest.json: that marks charrec's built-in synthetic data


# ------------------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class FileSample:
    """An image file of a folder-per-class tree; copied as is, or shrunk to `norm_size`."""

    path: Path
    class_index: int
    label: str  # the folder name: 'A' or 'a'

    @property
    def origin(self) -> str:
        return str(self.path)

    def suffix(self, norm_size: tuple[int, int] | None) -> str:
        return ".png" if norm_size else self.path.suffix.lower()

    def save(self, destination: Path, norm_size: tuple[int, int] | None) -> None:
        image = open_image(self.path)  # decoding checks the file is an image charrec can read
        if norm_size is None:
            shutil.copyfile(self.path, destination)
        else:
            _shrink(image, norm_size).save(destination, format="PNG")


@dataclass(frozen=True)
class IdxSample:
    """One image of an IDX file, stored transposed (as EMNIST stores them)."""

    pixels: bytes = field(repr=False)  # the whole payload of the images file, shared
    shape: tuple[int, int]  # (rows, columns) as the IDX header gives them
    position: int
    class_index: int
    label: str
    file_name: str

    @property
    def origin(self) -> str:
        return f"{self.file_name}#{self.position}"

    def suffix(self, norm_size: tuple[int, int] | None) -> str:
        return ".png"

    def save(self, destination: Path, norm_size: tuple[int, int] | None) -> None:
        rows, columns = self.shape
        start = self.position * rows * columns
        stored = Image.frombytes("L", (columns, rows), self.pixels[start:start + rows * columns])
        upright = stored.transpose(Image.Transpose.TRANSPOSE)
        (_shrink(upright, norm_size) if norm_size else upright).save(destination, format="PNG")


Sample = FileSample | IdxSample


def _shrink(image: Image.Image, norm_size: tuple[int, int]) -> Image.Image:
    """Grayscale + resize exactly as `charrec.data.preprocess` does (the network sees the same)."""
    height, width = norm_size
    return to_grayscale(image).resize((width, height), Image.Resampling.BILINEAR)


# ------------------------------------------------------------------------------ folder per class


def folder_samples(src: Path) -> list[FileSample]:
    """Every image under `src/<letter>/` (folder name = label), in a stable order."""
    folders = sorted(child for child in src.iterdir()
                     if child.is_dir() and child.name.upper() in CLASSES)
    if not folders:
        raise DataError(f"{src} holds no folder per letter (A/, b/, ...) and no EMNIST IDX files "
                        f"(*-images-idx3-ubyte[.gz]); nothing to import")
    samples = [FileSample(path, CLASSES.index(folder.name.upper()), folder.name)
               for folder in folders for path in sorted(folder.rglob("*"))
               if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
    if not samples:
        raise DataError(f"the letter folders of {src} hold no images "
                        f"({', '.join(IMAGE_SUFFIXES)})")
    return samples


def idx_samples(pairs: Sequence[tuple[Path, Path]]) -> list[IdxSample]:
    """The samples of EMNIST-letters IDX pairs (labels 1..26 = A..Z)."""
    samples: list[IdxSample] = []
    for images_path, labels_path in pairs:
        letters = read_letters(images_path, labels_path)
        samples += [IdxSample(letters.pixels, (letters.rows, letters.columns), position,
                              label - 1, CLASSES[label - 1], images_path.name)
                    for position, label in enumerate(letters.labels)]
    return samples


# ------------------------------------------------------------------------------------- import


@dataclass
class ImportResult:
    """What `import_dataset` wrote."""

    out: Path
    kind: str  # "folders" or "emnist-idx"
    counts: dict[str, int]  # images per split
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)
    seconds: float = 0.0

    @property
    def n_images(self) -> int:
        return sum(self.counts.values())


def read_source(src: str | Path) -> tuple[str, list[Sample]]:
    """('folders' | 'emnist-idx', samples) of an import source; DataError if it holds neither."""
    src = Path(src)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder; give a folder with one folder per "
                        f"letter (A/, b/, ...) or EMNIST-letters IDX files")
    pairs = find_idx_pairs(src)
    if pairs:
        return "emnist-idx", idx_samples(pairs)
    return "folders", folder_samples(src)


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is a file; give --out a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty; give --out a new (or empty) folder, "
                        f"or remove that one first")


def import_dataset(src: str | Path, out: str | Path, seed: int = 0, all_test: bool = False,
                   norm_size: tuple[int, int] | None = None, progress: Progress | None = None,
                   workers: int = 4) -> ImportResult:
    """Import `src` (folder per letter, or EMNIST-letters IDX) into the course layout at `out`.

    Images that cannot be decoded are skipped and listed in the result. `norm_size` (H, W)
    stores the images as grayscale PNGs already resized the way `charrec.data.preprocess` resizes
    them (smaller, faster to load, same network input); otherwise files are copied as they are.
    """
    started = time.perf_counter()
    out = Path(out)
    _check_destination(out)
    kind, samples = read_source(src)
    try:
        counts, skipped = _build(samples, src, kind, out, seed, all_test, norm_size, progress,
                                 workers)
    except OSError as error:  # a full disk, a read-only folder
        raise write_error(error, f"could not write the imported dataset to {out}",
                          "no partial dataset was left") from error
    return ImportResult(out, kind, counts, skipped, time.perf_counter() - started)


def _build(samples: Sequence[Sample], src: str | Path, kind: str, out: Path, seed: int,
           all_test: bool, norm_size: tuple[int, int] | None, progress: Progress | None,
           workers: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Write the dataset into a hidden folder beside `out`, then rename it to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # not tempfile.mkdtemp: its 0700 mode would stay on the finished dataset
    building = out.parent / f".{out.name}.importing-{uuid.uuid4().hex[:12]}"
    building.mkdir()
    try:
        (building / "images").mkdir()
        names, skipped = _write_images(samples, building / "images", norm_size, progress,
                                       workers)
        kept = [(name, sample.class_index, sample) for name, sample in zip(names, samples,
                                                                           strict=True) if name]
        if not kept:
            raise DataError(f"none of the {len(samples)} images of {src} could be read; "
                            f"first error: {skipped[0][1]}")
        counts = _write_label_files(building, kept, seed, all_test)
        _write_sources(building, src, kind, seed, all_test, norm_size, counts, kept, skipped)
        if out.is_dir():
            out.rmdir()  # empty (checked above); os.rename needs it gone
        os.rename(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return counts, skipped


def _write_images(samples: Sequence[Sample], images_dir: Path,
                  norm_size: tuple[int, int] | None, progress: Progress | None,
                  workers: int) -> tuple[list[str | None], list[tuple[str, str]]]:
    """Write every sample as `<LETTER>_<number><suffix>`; (names or None if unreadable, skipped)."""
    width = max(6, len(str(len(samples))))

    def write(numbered: tuple[int, Sample]) -> str | ImageError:
        number, sample = numbered
        name = f"{CLASSES[sample.class_index]}_{number:0{width}d}{sample.suffix(norm_size)}"
        try:
            sample.save(images_dir / name, norm_size)
        except ImageError as error:
            return error
        return name

    names: list[str | None] = []
    skipped: list[tuple[str, str]] = []
    every = max(1, len(samples) // 200)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results = pool.map(write, enumerate(samples))
        for done, (sample, result) in enumerate(zip(samples, results, strict=True), start=1):
            if isinstance(result, ImageError):
                skipped.append((sample.origin, str(result)))
                names.append(None)
            else:
                names.append(result)
            if progress and (done % every == 0 or done == len(samples)):
                progress(done, len(samples))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C or an error, don't write the rest first
    return names, skipped


def _write_label_files(root: Path, kept: list[tuple[str, int, Sample]], seed: int,
                       all_test: bool) -> dict[str, int]:
    from charrec.data.loading import SPLITS, split_stratified

    if all_test:
        splits: dict[str, list] = {"train": [], "validation": [], "test": list(kept)}
    else:
        splits = split_stratified(kept, seed)
    for split in SPLITS:
        entries = {name: sample.label for name, _, sample in sorted(splits[split],
                                                                    key=lambda item: item[0])}
        (root / f"{split}.json").write_text(json.dumps(entries, indent=1) + "\n",
                                            encoding="utf-8")
    return {split: len(splits[split]) for split in SPLITS}


def _write_sources(root: Path, src: str | Path, kind: str, seed: int, all_test: bool,
                   norm_size: tuple[int, int] | None, counts: dict[str, int],
                   kept: list[tuple[str, int, Sample]], skipped: list[tuple[str, str]]) -> None:
    record = {
        "charrec_version": __version__, "source": str(Path(src).resolve()), "kind": kind,
        "seed": seed, "all_test": all_test, "norm_size": list(norm_size) if norm_size else None,
        "counts": counts, "skipped": [{"origin": origin, "reason": reason}
                                      for origin, reason in skipped],
        "files": {name: sample.origin for name, _, sample in kept},
    }
    (root / SOURCES_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
