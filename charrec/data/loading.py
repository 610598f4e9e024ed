"""Reading letter datasets into in-memory tensors.

Two layouts are detected automatically:
- the course layout: `images/` plus `train.json`, `validation.json`, `test.json`, each a JSON
  object {"file name relative to images/": "letter"};
- a folder per class: `DIR/A/*.png`, `DIR/b/*.jpg`, ... (folder name = label). Its images are
  split 70/15/15 per class with a seed, or used whole as a test set.

Labels are case-insensitive letters; class indices follow `charrec.CLASSES` (A..Z). Each image is
decoded once per run (in a thread pool) into one float32 array [N, H, W], handed to training as
a torch tensor (`torch.from_numpy`, no copy) and to ONNX Runtime as it is (`arrays=True`:
testing an ONNX model never imports torch).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrec import CLASSES
from charrec.data.preprocess import IMAGE_SUFFIXES, normalise, read_gray
from charrec.errors import DataError, ImageError

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
TUNING_VALIDATION_FRACTION = 0.2  # of each letter's images when tuning (at least one)
CLASS_INDEX = {letter: index for index, letter in enumerate(CLASSES)}
DECODE_CHUNK = 256  # images per thread-pool task when decoding
SMALL_FILE_BYTES = 16 * 1024  # images this small are decoded in one thread (see decode_images)


@dataclass
class LetterData:
    """One split in memory: images [N, H, W] float32 in [-1, 1], labels [N] int64, file paths.
    Torch tensors for training; numpy arrays where loaded with `arrays=True`."""

    images: Any  # torch.Tensor or np.ndarray
    labels: Any
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return len(self.paths)


def label_index(label: object) -> int:
    """'a' or 'A' -> 0, ...; DataError for anything but a single ASCII letter."""
    text = label.strip().upper() if isinstance(label, str) else None
    if text not in CLASS_INDEX:
        raise DataError(f"label {label!r} is not a single letter A-Z/a-z")
    return CLASS_INDEX[text]


def detect_layout(data_dir: str | Path) -> str:
    """'course' or 'folders'; DataError if `data_dir` holds neither."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder not found: {data_dir}")
    if any((data_dir / f"{split}.json").is_file() for split in SPLITS):
        return "course"
    if any(child.is_dir() and child.name.upper() in CLASS_INDEX for child in data_dir.iterdir()):
        return "folders"
    raise DataError(
        f"{data_dir} holds no dataset: expected images/ with train.json, validation.json, "
        f"test.json, or one folder per letter (A/, B/, ...)"
    )


def _summarise(problems: Sequence[str], what: str) -> str:
    shown = "; ".join(problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return f"{len(problems)} {what}: {shown}{more}"


def _read_label_file(data_dir: Path, split: str) -> list[tuple[Path, int]]:
    path = data_dir / f"{split}.json"
    if not path.is_file():
        raise DataError(f"{path} not found (the course layout needs {', '.join(SPLITS)} .json)")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(entries, dict):
        raise DataError(f"{path}: expected a JSON object {{\"image file\": \"letter\"}}, "
                        f"got {type(entries).__name__}")
    items, bad = [], []
    images_dir = data_dir / "images"
    for name, label in entries.items():
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            raise DataError(f"{path}: image name {name!r} must be relative to images/ "
                            f"(no absolute paths or '..')")
        try:
            items.append((images_dir / name, label_index(label)))
        except DataError:
            bad.append(f"{name!r}: {label!r}")
    if bad:
        raise DataError(f"{path}: " + _summarise(bad, "labels are not a single letter A-Z/a-z"))
    missing = [image.relative_to(images_dir).as_posix() for image, _ in items
               if not os.path.isfile(image)]
    if missing:
        raise DataError(f"{path}: " + _summarise(missing, f"entries name images missing from "
                                                          f"{data_dir / 'images'}"))
    return items


def _class_folders(data_dir: Path) -> list[tuple[Path, int]]:
    items = []
    for folder in sorted(data_dir.iterdir()):
        if folder.is_dir() and folder.name.upper() in CLASS_INDEX:
            index = CLASS_INDEX[folder.name.upper()]
            items += [(path, index) for path in sorted(folder.rglob("*"))
                      if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()]
    return items


def split_stratified(items: Sequence[tuple[Path, int]], seed: int,
                     fractions: Sequence[float] = SPLIT_FRACTIONS) -> dict[str, list]:
    """Split per class into train/validation/test with the given fractions, shuffled by `seed`."""
    by_class: dict[int, list] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    splits: dict[str, list] = {split: [] for split in SPLITS}
    for index in sorted(by_class):
        members = by_class[index]
        rng.shuffle(members)
        n_train = round(len(members) * fractions[0])
        n_val = round(len(members) * fractions[1])
        splits["train"] += members[:n_train]
        splits["validation"] += members[n_train:n_train + n_val]
        splits["test"] += members[n_train + n_val:]
    return splits


def list_split(data_dir: str | Path, split: str, seed: int = 0,
               whole_folder: bool = False) -> list[tuple[Path, int]]:
    """(image path, class index) pairs of one split.

    For a folder-per-class tree, `whole_folder=True` returns every image (a test set from
    elsewhere); otherwise the seeded 70/15/15 split is used.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir)
    if detect_layout(data_dir) == "course":
        items = _read_label_file(data_dir, split)
    else:
        items = _class_folders(data_dir)
        if not whole_folder:
            items = split_stratified(items, seed)[split]
    if not items:
        raise DataError(f"the {split} split of {data_dir} is empty")
    return items


def decode_images(paths: Sequence[Path], norm_size: tuple[int, int], strict: bool = False,
                  workers: int = 4) -> tuple[torch.Tensor, list[bool], list[tuple[str, str]]]:
    """`decode_arrays` with the images as a torch tensor."""
    import torch

    images, ok, errors = decode_arrays(paths, norm_size, strict, workers)
    return torch.from_numpy(images), ok, errors


def decode_arrays(paths: Sequence[Path], norm_size: tuple[int, int], strict: bool = False,
                  workers: int = 4) -> tuple[np.ndarray, list[bool], list[tuple[str, str]]]:
    """Decode images once -> (float32 array [N_ok, H, W], ok mask, skipped (path, reason)).

    Unreadable images are skipped (or, with `strict`, raise the first error).
    """

    def load(chunk: Sequence[Path]) -> list[bytes | ImageError]:
        results: list[bytes | ImageError] = []
        for path in chunk:
            try:
                results.append(read_gray(path, norm_size))
            except ImageError as error:
                results.append(error)
        return results

    # Threads pay only when decoding releases the GIL for long (photos of some size). Small
    # files, like the built-in letters of 32x32, decode faster in one thread, and one future
    # per image made threads slower still (docs/benchmarks.md).
    if _small_files(paths):
        workers = 1
    chunk_size = max(1, min(DECODE_CHUNK, len(paths) // (4 * workers)))
    chunks = [paths[start:start + chunk_size] for start in range(0, len(paths), chunk_size)]
    if workers == 1:
        results = [result for chunk in chunks for result in load(chunk)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = [result for chunk in pool.map(load, chunks) for result in chunk]
    errors = [(str(path), str(result)) for path, result in zip(paths, results, strict=True)
              if isinstance(result, ImageError)]
    if errors and strict:
        raise DataError(_summarise([reason for _, reason in errors], "images could not be read"))
    ok = [not isinstance(result, ImageError) for result in results]
    pixels = [result for result in results if not isinstance(result, ImageError)]
    if not pixels:
        return np.empty((0, *norm_size), dtype=np.float32), ok, errors
    gray = np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(len(pixels), *norm_size)
    return normalise(gray), ok, errors


def _small_files(paths: Sequence[Path], sample: int = 32) -> bool:
    """Whether the first images are small files (under SMALL_FILE_BYTES on average)."""
    sizes = []
    for path in paths[:sample]:
        try:
            sizes.append(Path(path).stat().st_size)
        except OSError:
            continue
    return bool(sizes) and sum(sizes) / len(sizes) < SMALL_FILE_BYTES


def load_split(data_dir: str | Path, split: str, norm_size: tuple[int, int], seed: int = 0,
               whole_folder: bool = False, strict: bool = False, arrays: bool = False
               ) -> LetterData:
    """Read one split into memory (see `list_split` for `whole_folder`): torch tensors, or
    numpy arrays with `arrays`."""
    items = list_split(data_dir, split, seed, whole_folder)
    return _decode_split(items, split, Path(data_dir), norm_size, strict, arrays)


def first_images(data_dir: str | Path, norm_size: tuple[int, int], count: int, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` readable training images and their labels (for a dry run)."""
    items = list_split(data_dir, "train", seed)[:count]
    images, ok, skipped = decode_images([path for path, _ in items], norm_size)
    if not any(ok):
        raise DataError(f"none of the first {len(items)} training images of {data_dir} could "
                        f"be read; first error: {skipped[0][1]}")
    import torch

    labels = [index for (_, index), good in zip(items, ok, strict=True) if good]
    return images, torch.tensor(labels, dtype=torch.int64)


def load_splits(data_dir: str | Path, norm_size: tuple[int, int], seed: int = 0,
                splits: Sequence[str] = SPLITS, strict: bool = False) -> dict[str, LetterData]:
    """Read several splits; duplicate images across splits are an error (they would leak)."""
    data = {split: load_split(data_dir, split, norm_size, seed, strict=strict) for split in splits}
    seen: dict[str, str] = {}
    duplicates = []
    for split, letters in data.items():
        for path in letters.paths:
            if path in seen and seen[path] != split:
                duplicates.append(f"{Path(path).name} in {seen[path]} and {split}")
            seen.setdefault(path, split)
    if duplicates:
        raise DataError(f"{data_dir}: " + _summarise(duplicates, "images appear in two splits"))
    return data


def load_tuning_splits(data_dir: str | Path, norm_size: tuple[int, int], seed: int = 0,
                       strict: bool = False) -> dict[str, LetterData]:
    """A user's letters for fine-tuning: the course layout's splits as they are, or a folder
    per letter split per letter into train and validation only (see `tuning_items`)."""
    data_dir = Path(data_dir)
    if detect_layout(data_dir) == "course":
        present = [split for split in SPLITS if not _split_is_empty(data_dir / f"{split}.json")]
        return load_splits(data_dir, norm_size, seed, splits=present, strict=strict)
    return {split: _decode_split(items, split, data_dir, norm_size, strict)
            for split, items in tuning_items(data_dir, seed).items()}


def tuning_items(data_dir: str | Path, seed: int = 0) -> dict[str, list[tuple[Path, int]]]:
    """A folder per letter split for fine-tuning, per letter, into train and validation only
    (TUNING_VALIDATION_FRACTION, at least one image each): a handful of images per letter
    leaves none to spare for a test split. Letters may be missing; a letter folder needs two
    images or more. Checks without decoding anything (the course layout: its label files)."""
    data_dir = Path(data_dir)
    if detect_layout(data_dir) == "course":
        return {split: list_split(data_dir, split, seed) for split in SPLITS
                if not _split_is_empty(data_dir / f"{split}.json")}
    by_class: dict[int, list[tuple[Path, int]]] = {}
    for item in _class_folders(data_dir):
        by_class.setdefault(item[1], []).append(item)
    if not by_class:
        raise DataError(f"{data_dir} holds no images in its letter folders "
                        f"({', '.join(IMAGE_SUFFIXES[:4])}, ...)")
    single = [CLASSES[index] for index, members in sorted(by_class.items()) if len(members) < 2]
    if single:
        raise DataError(f"{data_dir}: the folder of {', '.join(single)} holds only one image; "
                        f"tuning needs at least 2 per letter (one to learn from, one to check), "
                        f"3 or more is better")
    rng = random.Random(seed)
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "validation": []}
    for index in sorted(by_class):
        members = by_class[index]
        rng.shuffle(members)
        n_validation = max(1, round(len(members) * TUNING_VALIDATION_FRACTION))
        splits["validation"] += members[:n_validation]
        splits["train"] += members[n_validation:]
    return splits


def _decode_split(items: list[tuple[Path, int]], split: str, data_dir: Path,
                  norm_size: tuple[int, int], strict: bool, arrays: bool = False) -> LetterData:
    images, ok, skipped = decode_arrays([path for path, _ in items], norm_size, strict)
    kept = [item for item, good in zip(items, ok, strict=True) if good]
    if not kept:
        raise DataError(f"none of the {len(items)} images of the {split} split of {data_dir} "
                        f"could be read; first error: {skipped[0][1]}")
    labels = np.array([index for _, index in kept], dtype=np.int64)
    if not arrays:
        import torch

        images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    return LetterData(images, labels, [str(path) for path, _ in kept], skipped)


# ------------------------------------------------------------------------------- listing


def dataset_items(data_dir: str | Path, split: str | None = None,
                  seed: int = 0) -> list[tuple[Path, int, str]]:
    """(image path, class index, split) of one split, or of every split if `split` is None.

    Empty or missing splits of the course layout are left out when all splits are asked for
    (an `--all-test` import has empty train and validation splits); a folder-per-class tree
    asked for all splits gives all its images.
    """
    data_dir = Path(data_dir)
    layout = detect_layout(data_dir)
    if split is not None:
        return [(path, index, split) for path, index in list_split(data_dir, split, seed)]
    if layout == "folders":
        return [(path, index, "") for path, index in
                list_split(data_dir, "test", seed, whole_folder=True)]
    items = []
    for name in SPLITS:
        if _split_is_empty(data_dir / f"{name}.json"):
            continue
        items += [(path, index, name) for path, index in list_split(data_dir, name, seed)]
    if not items:
        raise DataError(f"{data_dir}: train.json, validation.json and test.json are all "
                        f"missing or empty")
    return items


def split_counts(data_dir: str | Path, seed: int = 0) -> dict[str, list[int]]:
    """Images per class index for each split (a folder-per-class tree: its seeded split)."""
    counts = {split: [0] * len(CLASSES) for split in SPLITS}
    if detect_layout(data_dir) == "course":
        for _, index, split in dataset_items(data_dir, None, seed):
            counts[split][index] += 1
    else:
        whole = [(path, index) for path, index, _ in dataset_items(data_dir, None, seed)]
        for split, members in split_stratified(whole, seed).items():
            for _, index in members:
                counts[split][index] += 1
    return counts


def _split_is_empty(path: Path) -> bool:
    if not path.is_file():
        return True
    try:
        return json.loads(path.read_text(encoding="utf-8")) == {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # let list_split report the broken file
