"""The built-in letters: synthetic training data rendered from fonts, written in the course layout.

`generate_dataset` draws A-Z and a-z (labelled uppercase) in every usable font (see
`builtin.fonts`) with the variety real photos, scans and handwriting have: geometry (tight
or loose crops, stretched or kept aspect, rotation, shear, perspective, elastic wobble, fragments
of neighbouring letters), stroke weight, fills, outlines and shadows, coloured and textured
backgrounds, uneven light, low contrast, both polarities, blur, noise, low resolution and JPEG
artefacts. Letters are drawn at twice the final size and reduced, so edges are anti-aliased.

Every image has its own random generator seeded by (seed, image index), so a seed gives the same
bytes whatever the number of worker processes. Images are rendered in chunks by a process pool
into a temporary folder next to `out_dir`, which is renamed into place only when complete.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from charrec import CLASSES, __version__
from charrec.data import resampling
from charrec.data.builtin import fonts, strokes
from charrec.data.builtin import handwriting as hand
from charrec.data.builtin.fonts import find_font_faces
from charrec.errors import ConfigError, DataError
from charrec.files import children_ignore_interrupt, deferred_interrupt, write_error

if TYPE_CHECKING:
    import torch

    from charrec.data.loading import LetterData

DEFAULT_PER_CLASS = 1000
SPLIT_SHARES = (("train", 0.8), ("validation", 0.1), ("test", 0.1))  # of each letter's images
UPPERCASE_PROBABILITY = 0.6
# Lowercase l is a plain vertical bar in most sans fonts, the same shape as uppercase I: drawing
# it as often as other lowercase letters teaches the model that bars are L half the time.
LOWERCASE_WEIGHT = {"L": 0.25}
STROKE_PROBABILITY = 0.1  # share of letters drawn with a pen (strokes.STROKES), not a font
STROKE_FACE = -1
# Share of images written by hand on paper (builtin.handwriting): pen-drawn or handwriting
# fonts, thin strokes of pen, pencil or marker on gray paper, photographed small.
HANDWRITING_PROBABILITY = 0.5
HAND_PEN_PROBABILITY = 0.6  # of those: drawn with handwriting.pen_glyph, else a handwriting font
HAND_UPPERCASE_PROBABILITY = 0.8
SMALL_HAND_PROBABILITY = 0.3  # of handwritten letters: a wide margin of paper around the letter
PEN_FACE = -2
CHUNK_SIZE = 250
WORKER_START_TIMEOUT = 60.0  # seconds; a worker that never starts is not waited for longer
SUPERSAMPLE = 2  # letters are drawn at this multiple of norm_size, then box-reduced
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Pillow's RGB -> L weights


# ------------------------------------------------------------------------------ the public API


@dataclass
class Rendered:
    """A freshly rendered dataset: its manifest, and every image as the grayscale pixels that
    decoding its files would give (uint8 [N, H, W], image i at row i), so training can start
    without reading back the files it has just written."""

    manifest: dict
    gray: np.ndarray
    name_width: int  # digits of the image file names

    def splits(self, data_dir: Path) -> dict[str, LetterData]:
        """The three splits as `charrec.data.loading.load_splits` reads them from `data_dir`
        (same images, labels, order and paths), made from the pixels in memory."""
        import torch

        from charrec.data.loading import LetterData
        from charrec.data.preprocess import normalise

        per_class = self.manifest["per_class"]
        members: dict[str, list[int]] = {split: [] for split, _ in SPLIT_SHARES}
        for index in range(per_class * len(CLASSES)):
            members[split_of(index // len(CLASSES), per_class)].append(index)
        images_dir = Path(data_dir) / "images"
        data = {}
        for split, indices in members.items():
            rows = torch.as_tensor(indices, dtype=torch.int64)
            data[split] = LetterData(normalise(torch.from_numpy(self.gray)[rows]),
                                     rows % len(CLASSES),
                                     [str(images_dir / f"{index:0{self.name_width}d}.png")
                                      for index in indices])
        return data


def generate_dataset(out_dir: Path, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                     font_dirs: Sequence[Path] = (), norm_size: tuple[int, int] = (32, 32),
                     workers: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Render the built-in letters into the course layout at out_dir and return the manifest dict.

    `per_class` images of each letter are split 80/10/10 into train/validation/test. The images
    and the three label files are byte-identical for a seed, whatever `workers` is.
    """
    return render_dataset(out_dir, per_class, seed, font_dirs, norm_size, workers,
                          progress).manifest


def render_dataset(out_dir: Path, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                   font_dirs: Sequence[Path] = (), norm_size: tuple[int, int] = (32, 32),
                   workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Rendered:
    """`generate_dataset`, also handing back the images' grayscale pixels (`Rendered`)."""
    out_dir = Path(out_dir)
    if per_class < 3:
        raise ConfigError(f"--per-class must be at least 3 (one image per split), got {per_class}")
    if len(norm_size) != 2 or min(norm_size) < 4:
        raise ConfigError(f"--norm-size must be two sizes of at least 4 pixels (H,W), got "
                          f"{','.join(map(str, norm_size))}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataError(f"{out_dir} already exists and is not empty; choose another --out or "
                        f"remove it first")
    faces = find_font_faces(font_dirs)
    if not faces:
        raise DataError("no usable fonts found: install the font packages with "
                        "`pip install -e \".[fonts]\"` or pass --fonts DIR with .ttf/.otf files")
    temp_dir = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    try:
        return _render_into(temp_dir, out_dir, per_class, seed, faces, norm_size, workers,
                            progress)
    except OSError as error:  # a full disk, a read-only folder: in a worker or here
        raise write_error(error, f"could not write the built-in letters to {out_dir}",
                          "no partial dataset was left") from error


def _render_into(temp_dir: Path, out_dir: Path, per_class: int, seed: int,
                 faces: Sequence[fonts.FontFace], norm_size: tuple[int, int],
                 workers: int | None, progress: Callable[[int, int], None] | None) -> Rendered:
    """Render into `temp_dir`, then rename it to `out_dir`; `temp_dir` never stays behind."""
    total = per_class * len(CLASSES)
    name_width = max(6, len(str(total - 1)))
    shutil.rmtree(temp_dir, ignore_errors=True)
    started = time.perf_counter()
    try:
        (temp_dir / "images").mkdir(parents=True)
        job = (str(temp_dir / "images"), seed, tuple(norm_size), name_width)
        worker_count, gray = _render_all(job, total, faces, workers, progress)
        seconds = time.perf_counter() - started
        manifest = _write_label_files(temp_dir, per_class, name_width)
        manifest.update({
            "charrec_version": __version__, "seed": seed, "per_class": per_class,
            "norm_size": list(norm_size), "font_families": len({face.family for face in faces}),
            "fonts": [f"{face.name} ({Path(face.path).name})" for face in faces],
            "render_seconds": round(seconds, 3), "images_per_second": round(total / seconds, 1),
            "workers": worker_count,
        })
        (temp_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above): the rename needs the name free
        os.replace(temp_dir, out_dir)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return Rendered(manifest, gray, name_width)


def holds_anything(data_dir: Path) -> bool:
    """Whether `data_dir` exists with something in it (then it is never rendered into)."""
    return data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir()))


def ensure_dataset(data_dir: Path, on_start: Callable[[Path], None] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Rendered | None:
    """Render the built-in letters at `data_dir` if it holds nothing yet and return them, or None
    when a dataset (or anything else) is already there."""
    data_dir = Path(data_dir)
    if holds_anything(data_dir):
        return None
    if on_start:
        on_start(data_dir)
    return render_dataset(data_dir, progress=progress)


def render_batch(count: int, seed: int, norm_size: tuple[int, int],
                 font_dirs: Sequence[Path] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` built-in letters rendered in memory and preprocessed as training sees them ->
    (images float32 [N, H, W] in [-1, 1], labels int64 [N]). For dry runs: nothing is written."""
    import torch

    from charrec.data.preprocess import normalise

    faces = find_font_faces(font_dirs)
    if not faces:
        raise DataError("no usable fonts found: install the font packages with "
                        "`pip install -e \".[fonts]\"` or pass --fonts DIR with .ttf/.otf files")
    fonts.use_faces(faces)
    gray = to_gray(render_letters(0, count, seed, norm_size))
    labels = torch.arange(count, dtype=torch.int64) % len(CLASSES)
    return normalise(torch.from_numpy(gray)), labels


def split_of(position: int, per_class: int) -> str:
    """Split of the `position`-th image of a class: the first 80% train, then 10% and 10%."""
    held_out = max(1, round(per_class * SPLIT_SHARES[1][1]))
    if position < per_class - 2 * held_out:
        return "train"
    return "validation" if position < per_class - held_out else "test"


def _render_all(job: tuple, total: int, faces: Sequence[fonts.FontFace], workers: int | None,
                progress: Callable[[int, int], None] | None) -> tuple[int, np.ndarray]:
    """Render images 0..total-1 in chunks, in a spawn process pool -> (the worker count, every
    image's grayscale pixels uint8 [total, H, W])."""
    chunks = [(start, min(start + CHUNK_SIZE, total)) for start in range(0, total, CHUNK_SIZE)]
    worker_count = min(workers or os.cpu_count() or 1, len(chunks))
    gray = np.empty((total, *job[2]), np.uint8)
    done = 0

    def collect(start: int, pixels: np.ndarray) -> None:
        nonlocal done
        gray[start:start + len(pixels)] = pixels
        done += len(pixels)
        if progress:
            progress(done, total)

    if worker_count <= 1:
        fonts.use_faces(faces)
        for start, stop in chunks:
            collect(*_render_chunk(job, start, stop))
        return 1, gray
    context = get_context("spawn")
    started = context.Semaphore(0)  # released by each worker once it is up
    pool = ProcessPoolExecutor(worker_count, mp_context=context, initializer=_start_worker,
                               initargs=(faces, started))
    spawned = 0
    try:
        with children_ignore_interrupt():  # submits start the workers; Ctrl-C is the parent's
            futures = []
            for start, stop in chunks:
                futures.append(pool.submit(_render_chunk, job, start, stop))
                spawned = min(worker_count, len(futures))
        for future in as_completed(futures):
            collect(*future.result())
    finally:  # on Ctrl-C or an error, drop the chunks not started instead of waiting for them
        with deferred_interrupt():  # a second Ctrl-C must not leave workers writing on
            # a worker still starting up when the pool closes fails to open the pool's
            # semaphores and prints a traceback: let each one finish starting first
            for _ in range(spawned):
                started.acquire(timeout=WORKER_START_TIMEOUT)
            pool.shutdown(wait=True, cancel_futures=True)
    return worker_count, gray


def _start_worker(faces: Sequence[fonts.FontFace], started: Any) -> None:
    fonts.use_faces(faces)
    started.release()


def _write_label_files(root: Path, per_class: int, name_width: int) -> dict:
    """train/validation/test.json ({image name: letter}); returns the counts for the manifest."""
    labels: dict[str, dict[str, str]] = {split: {} for split, _ in SPLIT_SHARES}
    for index in range(per_class * len(CLASSES)):
        position, class_index = divmod(index, len(CLASSES))
        labels[split_of(position, per_class)][f"{index:0{name_width}d}.png"] = \
            CLASSES[class_index]
    counts, per_class_counts = {}, {}
    for split, mapping in labels.items():
        (root / f"{split}.json").write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n")
        per_letter = {letter: 0 for letter in CLASSES}
        for label in mapping.values():
            per_letter[label] += 1
        counts[split], per_class_counts[split] = len(mapping), per_letter
    return {"counts": counts, "counts_per_class": per_class_counts}


def _render_chunk(job: tuple, start: int, stop: int) -> tuple[int, np.ndarray]:
    """Render and write images start..stop-1 -> (start, their grayscale pixels [N, H, W]): what
    decoding the files gives, so the parent can train without reading them back."""
    images_dir, seed, norm_size, name_width = job
    images = render_letters(start, stop, seed, norm_size)
    for index, pixels in zip(range(start, stop), images, strict=True):
        with open(os.path.join(images_dir, f"{index:0{name_width}d}.png"), "wb") as file:
            file.write(png_bytes(pixels))
    return start, to_gray(images)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> uint8 gray [...], exactly as Pillow's `convert("L")` computes it
    (ITU-R 601-2 luma in 16-bit fixed point, rounded), which is what charrec's preprocessing
    does to a decoded RGB file."""
    weights = np.array([19595, 38470, 7471], np.uint32)
    return ((rgb.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 RGB [H, W, 3] -> an uncompressed PNG file. A 32x32 image fills less than one disk
    block uncompressed, so compressing only costs time; written directly, it costs a tenth of
    Pillow's `save`."""
    height, width = pixels.shape[:2]
    rows = np.zeros((height, 1 + width * 3), np.uint8)  # each row: filter type 0, then pixels
    rows[:, 1:] = pixels.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 0)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- drawing letters


def render_letters(start: int, stop: int, seed: int, norm_size: tuple[int, int]) -> np.ndarray:
    """Images `start`..`stop`-1 for `seed` as uint8 RGB [N, H, W, 3]; image i shows letter i % 26.

    Needs `fonts.use_faces` first. Each image draws from its own generator, seeded by
    (seed, index): the shape of the letter one at a time, then its colours and its camera for
    all images at once (printed and handwritten in two batches).
    """
    # What np.random.default_rng([seed, index]) builds, without its argument checks (a fifth of
    # the cost of making a generator, thousands of times a second)
    generators = [np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))
                  for index in range(start, stop)]
    handwritten = [rng.random() < HANDWRITING_PROBABILITY for rng in generators]
    count, (height, width) = stop - start, norm_size
    letters = np.zeros((count, height * SUPERSAMPLE, width * SUPERSAMPLE), np.uint8)
    unders: dict[int, np.ndarray] = {}  # row -> shadow or border mask, for the images with one
    for row, (rng, index, by_hand) in enumerate(zip(generators, range(start, stop), handwritten,
                                                    strict=True)):
        letters[row], under = _letter_layers(rng, CLASSES[index % len(CLASSES)], norm_size,
                                             by_hand)
        if under is not None:
            unders[row] = under
    coverage = _reduce(letters)
    images = np.zeros((count, height, width, 3), np.uint8)
    printed = [row for row, by_hand in enumerate(handwritten) if not by_hand]
    if printed:
        under_rows = [row for row in printed if row in unders]
        under_coverage = dict(zip(under_rows, _reduce(np.stack([unders[row] for row in under_rows]))
                                  if under_rows else [], strict=True))
        images[printed] = _paint([generators[row] for row in printed], coverage[printed],
                                 [under_coverage.get(row) for row in printed], norm_size)
    hand_rows = [row for row, by_hand in enumerate(handwritten) if by_hand]
    if hand_rows:
        images[hand_rows] = hand.paint_on_paper_batch([generators[row] for row in hand_rows],
                                                      coverage[hand_rows])
    return images


def _letter_layers(rng: np.random.Generator, letter: str, norm_size: tuple[int, int],
                   by_hand: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Coverage (uint8, SUPERSAMPLE times norm_size) of the letter, and of its shadow or border
    (or None)."""
    height, width = norm_size
    big = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    if by_hand:
        face_index, char, instance = _pick_hand_face(rng, letter)
        canvas, box = _compose_source(rng, face_index, char, instance, 0.3)
        return _pixels(_warp(rng, canvas, box, big, False, by_hand=True)), None
    face_index, char, instance = _pick_face(rng, letter)
    loose = rng.random() < 0.3  # a loose crop shows neighbour letters whole: leave them out
    canvas, box = _compose_source(rng, face_index, char, instance, 0.0 if loose else 0.25)
    mask = _pixels(_warp(rng, canvas, box, big, loose))
    return _stroke_layers(rng, mask)


_HAND_FACES: dict[int, list[int]] = {}


def _pick_hand_face(rng: np.random.Generator, letter: str) -> tuple[int, str, str]:
    """A handwritten letter: pen-drawn (PEN_FACE) or from a handwriting font, mostly capitals."""
    char = letter if rng.random() < HAND_UPPERCASE_PROBABILITY else letter.lower()
    key = id(fonts.faces())
    if key not in _HAND_FACES:
        _HAND_FACES.clear()
        _HAND_FACES[key] = hand.hand_faces(fonts.faces())
    candidates = [index for index in _HAND_FACES[key] if char in fonts.faces()[index].letters]
    if not candidates or rng.random() < HAND_PEN_PROBABILITY:
        return PEN_FACE, char, ""
    face_index = candidates[rng.integers(len(candidates))]
    face = fonts.faces()[face_index]
    instance = face.instances[rng.integers(len(face.instances))] if face.instances else ""
    return face_index, char, instance


def _reduce(masks: np.ndarray) -> np.ndarray:
    """Box-average SUPERSAMPLE x SUPERSAMPLE blocks: uint8 [N, H*s, W*s] -> float [N, H, W] in
    [0, 1].

    The block sums are added up in integers (exact, and a fifth of the time of a float mean over
    two strided axes); a sum of uint8 values is exact in float32 too, so sum / (s * s * 255) in
    float32 is the same number as the float mean / 255 it replaces, to the bit.
    """
    count, height, width = masks.shape[0], masks.shape[1] // SUPERSAMPLE, \
        masks.shape[2] // SUPERSAMPLE
    blocks = masks.reshape(count, height, SUPERSAMPLE, width, SUPERSAMPLE)
    total = np.zeros((count, height, width), np.uint16)
    for row in range(SUPERSAMPLE):
        for col in range(SUPERSAMPLE):
            total += blocks[:, :, row, :, col]
    return total / np.float32(SUPERSAMPLE * SUPERSAMPLE * 255)


def _pick_face(rng: np.random.Generator, letter: str) -> tuple[int, str, str]:
    """A family uniformly, then a face of it, and the case of the letter that face draws.

    With STROKE_PROBABILITY the letter is pen-drawn instead (face index STROKE_FACE).
    """
    lowercase_probability = (1 - UPPERCASE_PROBABILITY) * LOWERCASE_WEIGHT.get(letter, 1.0)
    if rng.random() < STROKE_PROBABILITY:
        return STROKE_FACE, letter.lower() if rng.random() < lowercase_probability else letter, ""
    for _ in range(50):
        family = fonts.families()[rng.integers(len(fonts.families()))]
        face_index = family[rng.integers(len(family))]
        face = fonts.faces()[face_index]
        cases = [letter, letter.lower()]
        if rng.random() < lowercase_probability:
            cases.reverse()
        char = next((case for case in cases if case in face.letters), None)
        if char is not None:
            instance = face.instances[rng.integers(len(face.instances))] if face.instances else ""
            return face_index, char, instance
    raise RuntimeError(f"no font draws {letter!r}")  # find_font_faces keeps only such fonts


def _compose_source(rng: np.random.Generator, face_index: int, char: str, instance: str,
                    neighbour_probability: float
                    ) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The glyph with, sometimes, neighbour letters beside it; and the glyph's box on it."""

    def draw(letter: str) -> tuple[np.ndarray, int]:
        if face_index == STROKE_FACE:
            return strokes.stroke_glyph(rng, letter)
        if face_index == PEN_FACE:
            return hand.pen_glyph(rng, letter)
        return fonts.glyph(face_index, letter, instance)

    bitmap, top = draw(char)
    pieces = [(bitmap, 0, top)]
    glyph_height, glyph_width = bitmap.shape
    letters = fonts.LETTERS if face_index < 0 else fonts.faces()[face_index].letters
    for side in (-1, 1):
        if rng.random() < neighbour_probability:
            neighbour, neighbour_top = draw(letters[rng.integers(len(letters))])
            gap = rng.uniform(0.02, 0.25) * fonts.GLYPH_PIXELS
            left = glyph_width + gap if side > 0 else -gap - neighbour.shape[1]
            pieces.append((neighbour, int(left), neighbour_top))
    left_edge = min(left for _, left, _ in pieces)
    top_edge = min(piece_top for _, _, piece_top in pieces)
    right_edge = max(left + piece.shape[1] for piece, left, _ in pieces)
    bottom_edge = max(piece_top + piece.shape[0] for piece, _, piece_top in pieces)
    canvas = np.zeros((bottom_edge - top_edge, right_edge - left_edge), np.uint8)
    for piece, left, piece_top in pieces:
        rows = slice(piece_top - top_edge, piece_top - top_edge + piece.shape[0])
        cols = slice(left - left_edge, left - left_edge + piece.shape[1])
        np.maximum(canvas[rows, cols], piece, out=canvas[rows, cols])
    x0, y0 = -left_edge, top - top_edge
    height, width = canvas.shape  # the image shares the canvas's memory: no copy
    return (Image.frombuffer("L", (width, height), canvas, "raw", "L", 0, 1),
            (x0, y0, x0 + glyph_width, y0 + glyph_height))


def _sampling_grid(rng: np.random.Generator, box: tuple[float, float, float, float],
                   cells: int, loose: bool, by_hand: bool = False) -> np.ndarray:
    """Where the output's grid points [cells+1, cells+1, (x, y)] fall on the source canvas.

    The crop around `box` is tight or loose, stretched to the square or kept in aspect, then
    rotated, sheared, put in perspective (corners moved independently) and, when there are inner
    grid points, wobbled elastically.
    """
    x0, y0, x1, y1 = box
    glyph_width, glyph_height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    extent = max(glyph_width, glyph_height)
    low, high = (0.1, 0.45) if loose else (0.1, 0.5) if by_hand else (-0.04, 0.12)
    if by_hand and rng.random() < SMALL_HAND_PROBABILITY:
        # a letter written small in a loose crop of the paper (down to a third of the frame)
        low, high = 0.5, 1.0
    # Scalars as plain floats from here on (the same arithmetic, without numpy's per-scalar
    # overhead); the grid itself stays an array.
    margins = (rng.uniform(low, high, 2) * 2 * extent).tolist()
    crop_width, crop_height = glyph_width + margins[0], glyph_height + margins[1]
    # Real crops are often stretched to a square (signs cropped to the letter's box), or keep
    # the letter's aspect (scans, handwriting), or something in between.
    aspect_draw = rng.random()
    keep_aspect = 0.0 if aspect_draw < 0.45 else 1.0 if aspect_draw < 0.8 else rng.random()
    longer = max(crop_width, crop_height)
    crop_width += keep_aspect * (longer - crop_width)
    crop_height += keep_aspect * (longer - crop_height)
    shift = (rng.normal(0, 0.09 if loose else 0.04, 2) * extent).tolist()
    angle = math.radians(min(max(rng.normal(0, 7), -25), 25))
    shear = min(max(rng.normal(0, 0.12), -0.4), 0.4)
    cos, sin = math.cos(angle), math.sin(angle)
    # rotation @ shear @ scale, as a 2x2 matrix acting on (x, y) grid coordinates
    linear = np.array([[cos * crop_width, (cos * shear - sin) * crop_height],
                       [sin * crop_width, (sin * shear + cos) * crop_height]])
    unit_grid, corner_weights = _unit_grid(cells)  # [row, col, (x, y)], [row, col, 4 corners]
    grid = unit_grid.copy()  # the cached grid itself must stay as it is
    if rng.random() < 0.6:  # perspective: move the four corners, interpolate the rest
        grid += corner_weights @ rng.normal(0, 0.04, (4, 2))
    if cells > 1:
        grid[1:-1, 1:-1] += rng.normal(0, rng.uniform(0.015, 0.05), (cells - 1, cells - 1, 2))
    centre = np.array([(x0 + x1) / 2 + shift[0], (y0 + y1) / 2 + shift[1]])
    return grid @ linear.T + centre


@functools.cache
def _unit_grid(cells: int) -> tuple[np.ndarray, np.ndarray]:
    """The output's grid points in [-0.5, 0.5]^2 [cells+1, cells+1, (x, y)], and the bilinear
    weights [cells+1, cells+1, 4] that carry moves of the four corners to every point."""
    steps = np.linspace(-0.5, 0.5, cells + 1)
    grid = np.stack(np.meshgrid(steps, steps, indexing="xy"), axis=-1)
    ends = np.stack([0.5 - steps, 0.5 + steps], axis=-1)  # [point, end]
    weights = np.einsum("ra,cb->rcab", ends, ends).reshape(cells + 1, cells + 1, 4)
    return grid, weights


def _pixels(image: Image.Image) -> np.ndarray:
    """uint8 [H, W] of a mode L image (read-only), from its bytes: what np.asarray makes of it,
    without the array-interface detour."""
    return np.frombuffer(image.tobytes(), np.uint8).reshape(image.height, image.width)


def _warp(rng: np.random.Generator, canvas: Image.Image, box: tuple[float, float, float, float],
          size: tuple[int, int], loose: bool, by_hand: bool = False) -> Image.Image:
    """The output square sampled from the source canvas: one quad, or a 3x3 mesh (elastic)."""
    cells = 3 if rng.random() < 0.35 else 1
    points = _sampling_grid(rng, box, cells, loose, by_hand).tolist()
    width, height = size
    mesh = []
    for row in range(cells):
        for col in range(cells):
            target = (width * col // cells, height * row // cells,
                      width * (col + 1) // cells, height * (row + 1) // cells)
            quad = (*points[row][col], *points[row + 1][col], *points[row + 1][col + 1],
                    *points[row][col + 1])
            mesh.append((target, quad))
    if cells == 1:
        return canvas.transform(size, Image.Transform.QUAD, mesh[0][1],
                                resample=Image.Resampling.BILINEAR)
    return canvas.transform(size, Image.Transform.MESH, mesh, resample=Image.Resampling.BILINEAR)


def _grow(mask: np.ndarray, radius: int, shrink: bool = False) -> np.ndarray:
    """Dilate (or erode) a uint8 mask by a (2*radius+1)^2 square, with shifted maxima (minima)."""
    pick = np.minimum if shrink else np.maximum
    out = mask.copy()
    for _ in range(radius):  # each result is a new array, so reading and writing `out` is safe
        out[:, 1:] = pick(out[:, 1:], out[:, :-1])
        out[:, :-1] = pick(out[:, :-1], out[:, 1:])
        out[1:, :] = pick(out[1:, :], out[:-1, :])
        out[:-1, :] = pick(out[:-1, :], out[1:, :])
    return out


def _stroke_layers(rng: np.random.Generator,
                   mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Letter mask after a stroke-weight change (maybe hollow), and a shadow or border or None."""
    weight = rng.random()
    if weight < 0.2:
        mask = _grow(mask, 1)
    elif weight < 0.26:
        mask = _grow(mask, 2)
    elif weight < 0.42:
        mask = _grow(mask, 1, shrink=True)
    effect = rng.random()
    if effect < 0.12:  # drop shadow or extrusion
        dx, dy = (int(value) for value in rng.integers(-4, 6, 2))
        return mask, np.roll(mask, (dy, dx), axis=(0, 1))
    if effect < 0.2:  # a border of another colour around the letter
        return mask, _grow(mask, 2)
    if effect < 0.25:  # hollow letter: outline only
        return mask - np.minimum(mask, _grow(mask, 2, shrink=True)), None
    return mask, None


# ---------------------------------------------------------------------------------- appearance


def _colour(rng: np.random.Generator, luminance: float) -> np.ndarray:
    """A random RGB colour of the given luminance (Pillow's L), saturation from grey to vivid."""
    chroma, chroma_luminance = _chroma(rng)
    return np.clip(luminance + chroma - chroma_luminance, 0, 1)


def _chroma(rng: np.random.Generator) -> tuple[np.ndarray, np.float32]:
    """The random part of `_colour`: float32 RGB offsets from grey and their own luminance
    (the colour is then clip(luminance + chroma - chroma luminance, 0, 1))."""
    chroma = rng.normal(0, rng.uniform(0, 0.3), 3).astype(np.float32)
    return chroma, chroma @ LUMA


def _smooth_fields(rng: np.random.Generator, out: np.ndarray) -> None:
    """Parameters of smooth random fields into `out` [count, 18] = (is ramp, angle, 4x4 coarse),
    drawn in that order."""
    count = len(out)
    out[:, 0] = rng.random(count) < 0.5
    out[:, 1] = rng.uniform(0, 2 * np.pi, count)
    out[:, 2:] = rng.uniform(-1, 1, (count, 16))


def _fields(parameters: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """[..., 18] field parameters -> [..., H, W] fields in about [-1, 1] (ramps or soft blobs).

    Each field is a ramp or a blob, so only that one is computed: the same numbers as
    `is_ramp * ramp + (1 - is_ramp) * blobs` with is_ramp 0 or 1 (up to the sign of a zero,
    which no later step can see), for half the work.
    """
    rows, cols, blend_rows, blend_cols = _field_axes(shape)
    angle = parameters[..., 1, None, None]
    fields = np.cos(angle) * cols[None, :] + np.sin(angle) * rows[:, None]  # ramps
    blob = parameters[..., 0] == 0
    coarse = parameters[blob][:, 2:].reshape(-1, 4, 4).astype(np.float32)
    blobs = blend_rows @ coarse @ blend_cols.T
    blobs /= np.abs(blobs).max(axis=(-2, -1), keepdims=True) + 1e-6
    fields[blob] = blobs
    return fields


@functools.lru_cache(maxsize=64)
def _field_axes(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What `_fields` needs of a shape, computed once: the row and column coordinates in
    [-1, 1] and the weights [H or W, 4] that interpolate smoothly between 4 control points."""
    height, width = shape
    rows = np.linspace(-1, 1, height, dtype=np.float32)
    cols = np.linspace(-1, 1, width, dtype=np.float32)

    def blend(points: np.ndarray) -> np.ndarray:
        weights = np.exp(-((points[:, None] - np.linspace(-1, 1, 4)[None, :]) / 0.6) ** 2)
        return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)

    axes = rows, cols, blend(rows), blend(cols)
    for array in axes:
        array.flags.writeable = False
    return axes


def _draw_clutter(rng: np.random.Generator, pixels: np.ndarray, luminance: float) -> None:
    """Draw 1-3 lines or blocks (edges of signs, bricks, other shapes) into float RGB pixels."""
    height, width = pixels.shape[:2]
    picture = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(1, 4))):
        tone = _colour(rng, float(np.clip(luminance + rng.normal(0, 0.2), 0, 1)))
        points = rng.uniform(-0.2, 1.2, 4) * np.array([width, height] * 2)
        fill = tuple(int(value) for value in tone * 255)
        if rng.random() < 0.5:
            draw.line(points.tolist(), fill=fill, width=int(rng.integers(1, 4)))
        else:
            draw.rectangle(np.sort(points.reshape(2, 2), axis=0).ravel().tolist(), fill=fill)
    pixels[:] = np.asarray(picture, np.float32) / 255


def _paint(generators: list[np.random.Generator], letter_masks: np.ndarray,
           under_masks: list[np.ndarray | None], shape: tuple[int, int]) -> np.ndarray:
    """Colour the letters (coverage [N, H, W]) and their shadows or borders over backgrounds,
    light them unevenly, then degrade: uint8 [N, H, W, 3]."""
    count = len(generators)
    # The four colours of each image (background, background 2, under, letter) are drawn one
    # image at a time, as `_colour` draws them, and mixed for all images at once.
    luminances = np.zeros((count, 4), np.float32)
    chromas = np.zeros((count, 4, 3), np.float32)
    chroma_luminances = np.zeros((count, 4), np.float32)
    amounts = np.zeros((count, 3), np.float32)  # background shading, letter shading, light
    field_parameters = np.zeros((count, 3, 18), np.float32)
    clutter = np.zeros(count, bool)
    for row, rng in enumerate(generators):
        background = rng.uniform(0.03, 0.97)
        contrast = rng.uniform(0.25, 0.9) if rng.random() < 0.85 else rng.uniform(0.08, 0.25)
        letter = background + contrast * (1 if rng.random() < 0.5 else -1)
        if not 0 <= letter <= 1:
            letter = 2 * background - letter  # the other polarity fits
        chromas[row, 0], chroma_luminances[row, 0] = _chroma(rng)
        background_2 = min(max(background + rng.normal(0, 0.12), 0.0), 1.0)
        chromas[row, 1], chroma_luminances[row, 1] = _chroma(rng)
        under = rng.uniform(0, 1)
        chromas[row, 2], chroma_luminances[row, 2] = _chroma(rng)
        chromas[row, 3], chroma_luminances[row, 3] = _chroma(rng)
        luminances[row] = background, background_2, under, letter
        kind = rng.random()
        clutter[row] = kind >= 0.8
        amounts[row] = [0.5 if 0.35 <= kind < 0.8 else 0.0,
                        rng.uniform(0, 0.25) if rng.random() < 0.2 else 0.0,
                        rng.uniform(0.1, 0.6) if rng.random() < 0.5 else 0.0]
        _smooth_fields(rng, field_parameters[row])
    tones = np.clip(luminances[..., None] + chromas - chroma_luminances[..., None], 0, 1)
    fields = _fields(field_parameters, shape)  # [N, 3, H, W]
    weight = (1 + fields[:, 0]) * amounts[:, 0, None, None]  # 0 (flat) or 0..1 (shaded)
    # The picture is mixed channels first, [N, 3, H, W]: with the colour as the last axis every
    # step broadcast over rows of 3 values and took twice as long. Same values either way.
    tone = tones[..., None, None]  # [N, 4 tones, 3, 1, 1]
    image = tone[:, 0] + (tone[:, 1] - tone[:, 0]) * weight[:, None]
    for row in np.flatnonzero(clutter):
        picture = np.ascontiguousarray(image[row].transpose(1, 2, 0))  # [H, W, 3] for Pillow
        _draw_clutter(generators[row], picture, float(tones[row, 0] @ LUMA))
        image[row] = picture.transpose(2, 0, 1)
    for row, under in enumerate(under_masks):
        if under is not None:
            image[row] += (tone[row, 2] - image[row]) * under[None]
    letter_fill = tone[:, 3] + (amounts[:, 1, None, None] * fields[:, 1])[:, None]
    image += (letter_fill - image) * letter_masks[:, None]
    image *= 1 + (amounts[:, 2, None, None] * fields[:, 2])[:, None]  # uneven light
    # back to [N, H, W, 3] in memory: `_degrade`'s matrix products must see the same layout
    return _degrade(generators, np.ascontiguousarray((np.clip(image, 0, 1) * 255)
                                                     .transpose(0, 2, 3, 1)))


def _degrade(generators: list[np.random.Generator], pixels: np.ndarray) -> np.ndarray:
    """Camera and scanner damage of float RGB [N, H, W, 3] in 0..255: low resolution, blur
    (both as matrix products, `charrec.data.resampling`), sensor noise, JPEG artefacts."""
    count, height, width = pixels.shape[:3]
    rows = np.empty((count, height, height), np.float32)
    cols = np.empty((count, width, width), np.float32)
    noise: dict[int, np.ndarray] = {}  # row -> noise, for the images with some
    jpeg_quality = [0] * count
    for row, rng in enumerate(generators):
        small: tuple[int | None, int | None] = (None, None)
        if rng.random() < 0.15:
            scale = rng.uniform(0.35, 0.7)
            small = (max(4, int(width * scale)), max(4, int(height * scale)))
        blurred = rng.random() < 0.4
        sigma = resampling.quantised_sigma(rng.uniform(0.3, 1.2)) if blurred else 0.0
        rows[row] = _blurred_camera(height, small[1], sigma)
        cols[row] = _blurred_camera(width, small[0], sigma)
        if rng.random() < 0.5:
            noise[row] = rng.normal(0, rng.uniform(2, 20),
                                    (height, width, 1 if rng.random() < 0.5 else 3))
        if rng.random() < 0.2:
            jpeg_quality[row] = int(rng.integers(10, 60))
    pixels = resampling.apply_separable(pixels, rows, cols)
    for row, sensor_noise in noise.items():
        pixels[row] += sensor_noise.astype(np.float32)  # float32, as a float32 noise layer was
    pixels = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    for row, quality in enumerate(jpeg_quality):
        if quality:
            pixels[row] = resampling.jpeg(pixels[row], quality)
    return pixels


@functools.lru_cache(maxsize=8192)
def _blurred_camera(size: int, small: int | None, sigma: float) -> np.ndarray:
    """[size, size]: a line shrunk to `small` pixels and stretched back
    (`resampling.camera_matrix`), then blurred at full size with `sigma` (0: not blurred).
    Cached: the sizes and blurs repeat, and so the product is computed once."""
    matrix = resampling.camera_matrix(size, small)
    if sigma:
        matrix = resampling.gaussian_matrix(size, sigma) @ matrix
    return matrix
