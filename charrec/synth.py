"""The built-in letters: synthetic training data rendered from fonts, written in the course layout.

`generate_dataset` draws A-Z and a-z (labelled uppercase) in every usable font (see
`charrec.synth_fonts`) with the variety real photos, scans and handwriting have: geometry (tight
or loose crops, stretched or kept aspect, rotation, shear, perspective, elastic wobble, fragments
of neighbouring letters), stroke weight, fills, outlines and shadows, coloured and textured
backgrounds, uneven light, low contrast, both polarities, blur, noise, low resolution and JPEG
artefacts. Letters are drawn at twice the final size and reduced, so edges are anti-aliased.

Every image has its own random generator seeded by (seed, image index), so a seed gives the same
bytes whatever the number of worker processes. Images are rendered in chunks by a process pool
into a temporary folder next to `out_dir`, which is renamed into place only when complete.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from charrec.synth_fonts import FontFace, find_font_faces, find_fonts

__all__ = ["DEFAULT_PER_CLASS", "find_fonts", "generate_dataset", "render_letter"]

DEFAULT_PER_CLASS = 1000
SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
CLASS_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
UPPERCASE_PROBABILITY = 0.6
CHUNK_SIZE = 250
GLYPH_PIXELS = 64  # font size the glyphs are rasterised at, before the geometry is applied
GLYPH_CACHE_SIZE = 20000
SUPERSAMPLE = 2  # letters are drawn at this multiple of norm_size, then box-reduced
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # Pillow's RGB -> L weights


# ------------------------------------------------------------------------------ the public API


def generate_dataset(out_dir: Path, per_class: int = DEFAULT_PER_CLASS, seed: int = 0,
                     font_dirs: Sequence[Path] = (), norm_size: tuple[int, int] = (32, 32),
                     workers: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Render the built-in letters into the course layout at out_dir and return the manifest dict.

    `per_class` images of each letter are split 80/10/10 into train/validation/test. The images
    and the three label files are byte-identical for a seed, whatever `workers` is.
    """
    from charrec import __version__
    from charrec.errors import ConfigError, DataError

    out_dir = Path(out_dir)
    if per_class < 3:
        raise ConfigError(f"--per-class must be at least 3 (one image per split), got {per_class}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataError(f"{out_dir} already exists and is not empty; choose another --out or "
                        f"remove it first")
    faces = find_font_faces(font_dirs)
    if not faces:
        raise DataError("no usable fonts found: install the font packages with "
                        "`pip install -e \".[fonts]\"` or pass --fonts DIR with .ttf/.otf files")
    total = per_class * len(CLASS_LETTERS)
    name_width = max(6, len(str(total - 1)))
    temp_dir = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(temp_dir, ignore_errors=True)
    (temp_dir / "images").mkdir(parents=True)
    started = time.perf_counter()
    try:
        chunks = [(start, min(start + CHUNK_SIZE, total))
                  for start in range(0, total, CHUNK_SIZE)]
        job = (str(temp_dir / "images"), seed, tuple(norm_size), name_width)
        worker_count = min(workers or os.cpu_count() or 1, len(chunks))
        done = 0
        if worker_count <= 1:
            _init_worker(faces)
            for start, stop in chunks:
                done += _render_chunk(job, start, stop)
                if progress:
                    progress(done, total)
        else:
            with ProcessPoolExecutor(worker_count, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(faces,)) as pool:
                futures = [pool.submit(_render_chunk, job, start, stop) for start, stop in chunks]
                for future in as_completed(futures):
                    done += future.result()
                    if progress:
                        progress(done, total)
        seconds = time.perf_counter() - started
        manifest = _write_label_files(temp_dir, per_class, seed, name_width)
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
    return manifest


def split_of(position: int, per_class: int) -> str:
    """Split of the `position`-th image of a class: the first 80% train, then 10% and 10%."""
    held_out = max(1, round(per_class * SPLITS[1][1]))
    if position < per_class - 2 * held_out:
        return "train"
    return "validation" if position < per_class - held_out else "test"


def _write_label_files(root: Path, per_class: int, seed: int, name_width: int) -> dict:
    labels: dict[str, dict[str, str]] = {split: {} for split, _ in SPLITS}
    for index in range(per_class * len(CLASS_LETTERS)):
        position, class_index = divmod(index, len(CLASS_LETTERS))
        labels[split_of(position, per_class)][f"{index:0{name_width}d}.png"] = \
            CLASS_LETTERS[class_index]
    counts = {}
    for split, mapping in labels.items():
        (root / f"{split}.json").write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n")
        per_letter = {letter: 0 for letter in CLASS_LETTERS}
        for label in mapping.values():
            per_letter[label] += 1
        counts[split] = {"total": len(mapping), "per_class": per_letter}
    return {"counts": counts}


# ------------------------------------------------------------------ worker side: font caches


_FACES: list[FontFace] = []
_FAMILIES: list[list[int]] = []
_FONTS: dict[int, ImageFont.FreeTypeFont] = {}
_GLYPHS: dict[tuple[int, str, str], tuple[np.ndarray, int]] = {}


def _init_worker(faces: Sequence[FontFace]) -> None:
    """Remember the faces; fonts and glyph bitmaps are then loaded once per process, lazily."""
    global _FACES, _FAMILIES
    if list(faces) == _FACES:
        return
    _FACES = list(faces)
    families: dict[str, list[int]] = {}
    for face_index, face in enumerate(_FACES):
        families.setdefault(face.family, []).append(face_index)
    _FAMILIES = [families[family] for family in sorted(families)]
    _FONTS.clear()
    _GLYPHS.clear()


def _glyph(face_index: int, char: str, instance: str) -> tuple[np.ndarray, int]:
    """Tight uint8 bitmap of `char` and its top offset from the font's ascender line."""
    key = (face_index, char, instance)
    if key not in _GLYPHS:
        font = _FONTS.get(face_index)
        if font is None:
            face = _FACES[face_index]
            font = _FONTS[face_index] = ImageFont.truetype(
                face.path, GLYPH_PIXELS, index=face.index, layout_engine=ImageFont.Layout.BASIC)
        if instance:
            font.set_variation_by_name(instance)
        mask, (_, top) = font.getmask2(char, mode="L")
        bitmap = np.asarray(Image.frombytes("L", mask.size, bytes(mask)))
        rows, cols = np.nonzero(bitmap > 24)
        if rows.size == 0:
            bitmap, top = np.zeros((8, 8), np.uint8), 0
        else:
            bitmap = bitmap[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            top += int(rows.min())
        if len(_GLYPHS) >= GLYPH_CACHE_SIZE:
            _GLYPHS.clear()  # bounded memory with thousands of faces; refilling is cheap
        _GLYPHS[key] = (np.ascontiguousarray(bitmap), top)
    return _GLYPHS[key]


def _render_chunk(job: tuple, start: int, stop: int) -> int:
    images_dir, seed, norm_size, name_width = job
    for index in range(start, stop):
        image = render_letter(index, seed, norm_size)
        image.save(os.path.join(images_dir, f"{index:0{name_width}d}.png"), compress_level=1)
    return stop - start


# ------------------------------------------------------------------------- drawing one letter


def render_letter(index: int, seed: int, norm_size: tuple[int, int]) -> Image.Image:
    """The `index`-th image (letter CLASS_LETTERS[index % 26]) for `seed`, as an RGB image."""
    rng = np.random.default_rng([seed, index])
    letter = CLASS_LETTERS[index % len(CLASS_LETTERS)]
    height, width = norm_size
    big = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    face_index, char, instance = _pick_face(rng, letter)
    loose = rng.random() < 0.3  # a loose crop shows neighbour letters whole: leave them out
    canvas, box = _compose_source(rng, face_index, char, instance, 0.0 if loose else 0.25)
    mask = np.asarray(_warp(rng, canvas, box, big, loose))
    layers = _stroke_layers(rng, mask)
    return _paint(rng, [_reduce(layer) for layer in layers], (height, width))


def _reduce(mask: np.ndarray) -> np.ndarray:
    """Box-average SUPERSAMPLE x SUPERSAMPLE blocks: [H*s, W*s] uint8 -> [H, W] float in [0, 1]."""
    height, width = mask.shape[0] // SUPERSAMPLE, mask.shape[1] // SUPERSAMPLE
    blocks = mask.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE).astype(np.float32)
    return blocks.mean(axis=(1, 3)) / 255


def _pick_face(rng: np.random.Generator, letter: str) -> tuple[int, str, str]:
    """A family uniformly, then a face of it, and the case of the letter that face draws."""
    for _ in range(50):
        family = _FAMILIES[rng.integers(len(_FAMILIES))]
        face_index = family[rng.integers(len(family))]
        face = _FACES[face_index]
        cases = [letter, letter.lower()]
        if rng.random() > UPPERCASE_PROBABILITY:
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
    bitmap, top = _glyph(face_index, char, instance)
    pieces = [(bitmap, 0, top)]
    glyph_height, glyph_width = bitmap.shape
    face = _FACES[face_index]
    for side in (-1, 1):
        if rng.random() < neighbour_probability:
            other = face.letters[rng.integers(len(face.letters))]
            neighbour, neighbour_top = _glyph(face_index, other, instance)
            gap = rng.uniform(0.02, 0.25) * GLYPH_PIXELS
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
    return Image.fromarray(canvas), (x0, y0, x0 + glyph_width, y0 + glyph_height)


def _sampling_grid(rng: np.random.Generator, box: tuple[float, float, float, float],
                   cells: int, loose: bool) -> np.ndarray:
    """Where the output's grid points [cells+1, cells+1, (x, y)] fall on the source canvas.

    The crop around `box` is tight or loose, stretched to the square or kept in aspect, then
    rotated, sheared, put in perspective (corners moved independently) and, when there are inner
    grid points, wobbled elastically.
    """
    x0, y0, x1, y1 = box
    glyph_width, glyph_height = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    extent = max(glyph_width, glyph_height)
    margin_scale = (0.1, 0.45) if loose else (-0.04, 0.12)
    crop_width = glyph_width + extent * rng.uniform(*margin_scale) * 2
    crop_height = glyph_height + extent * rng.uniform(*margin_scale) * 2
    keep_aspect = rng.choice([0.0, 1.0, rng.random()], p=[0.45, 0.35, 0.2])
    longer = max(crop_width, crop_height)
    crop_width += keep_aspect * (longer - crop_width)
    crop_height += keep_aspect * (longer - crop_height)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    centre += rng.normal(0, 0.04, 2) * extent + (rng.normal(0, 0.08, 2) * extent if loose else 0)
    angle = np.deg2rad(np.clip(rng.normal(0, 7), -25, 25))
    shear = np.clip(rng.normal(0, 0.12), -0.4, 0.4)
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ \
        np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([crop_width, crop_height])
    steps = np.linspace(-0.5, 0.5, cells + 1)
    grid = np.stack(np.meshgrid(steps, steps, indexing="xy"), axis=-1)  # [row, col, (x, y)]
    if rng.random() < 0.6:  # perspective: move the four corners, interpolate the rest
        corners = rng.normal(0, 0.04, (2, 2, 2))
        weights = np.stack([0.5 - steps, 0.5 + steps], axis=-1)  # [point, end]
        grid = grid + np.einsum("ra,cb,abk->rck", weights, weights, corners)
    if cells > 1:
        grid[1:-1, 1:-1] += rng.normal(0, rng.uniform(0.015, 0.05), (cells - 1, cells - 1, 2))
    return grid @ linear.T + centre


def _warp(rng: np.random.Generator, canvas: Image.Image, box: tuple[float, float, float, float],
          size: tuple[int, int], loose: bool) -> Image.Image:
    """The output square sampled from the source canvas: one quad, or a 3x3 mesh (elastic)."""
    cells = 3 if rng.random() < 0.35 else 1
    points = _sampling_grid(rng, box, cells, loose).tolist()
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
    for _ in range(radius):
        out[:, 1:] = pick(out[:, 1:], out[:, :-1].copy())
        out[:, :-1] = pick(out[:, :-1], out[:, 1:].copy())
        out[1:, :] = pick(out[1:, :], out[:-1, :].copy())
        out[:-1, :] = pick(out[:-1, :], out[1:, :].copy())
    return out


def _stroke_layers(rng: np.random.Generator, mask: np.ndarray) -> list[np.ndarray]:
    """Letter mask after a stroke-weight change, plus an optional shadow or border below it.

    Returned bottom to top: [shadow or border (optional), letter]; the letter may be hollow.
    """
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
        shadow = np.roll(mask, (dy, dx), axis=(0, 1))
        return [shadow, mask]
    if effect < 0.2:  # a border of another colour around the letter
        return [_grow(mask, 2), mask]
    if effect < 0.25:  # hollow letter: outline only
        return [mask - np.minimum(mask, _grow(mask, 2, shrink=True))]
    return [mask]


# ---------------------------------------------------------------------------------- appearance


def _colour(rng: np.random.Generator, luminance: float) -> np.ndarray:
    """A random RGB colour of the given luminance (Pillow's L), saturation from grey to vivid."""
    chroma = rng.normal(0, rng.uniform(0, 0.3), 3).astype(np.float32)
    return np.clip(luminance + chroma - chroma @ LUMA, 0, 1)


def _field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a linear ramp or upsampled coarse noise."""
    height, width = shape
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = np.cos(angle) * (cols / width - 0.5) + np.sin(angle) * (rows / height - 0.5)
        return ramp * 2
    coarse = rng.integers(0, 256, (int(rng.integers(2, 6)),) * 2, dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(smooth, np.float32) / 127.5 - 1


def _background(rng: np.random.Generator, luminance: float,
                shape: tuple[int, int]) -> np.ndarray:
    """Flat, shaded, mottled or cluttered background around `luminance`, [H, W, 3] in [0, 1]."""
    base = _colour(rng, luminance)
    kind = rng.random()
    if kind < 0.35:
        return np.broadcast_to(base, (*shape, 3)).copy()
    if kind < 0.8:
        other = _colour(rng, np.clip(luminance + rng.normal(0, 0.12), 0, 1))
        weight = (_field(rng, shape)[..., None] + 1) / 2
        return base + (other - base) * weight
    picture = Image.new("RGB", shape[::-1], tuple(int(v) for v in base * 255))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(1, 4))):  # edges of signs, bricks, other shapes
        tone = _colour(rng, np.clip(luminance + rng.normal(0, 0.2), 0, 1))
        points = rng.uniform(-0.2, 1.2, 4) * np.array(shape[::-1] * 2)
        fill = tuple(int(v) for v in tone * 255)
        if rng.random() < 0.5:
            draw.line([float(v) for v in points], fill=fill, width=int(rng.integers(1, 4)))
        else:
            draw.rectangle([float(v) for v in np.sort(points.reshape(2, 2), axis=0).ravel()],
                           fill=fill)
    return np.asarray(picture, np.float32) / 255


def _paint(rng: np.random.Generator, layers: list[np.ndarray],
           shape: tuple[int, int]) -> Image.Image:
    """Colour the letter layers over a background, then light, blur, noise and compress."""
    background_luminance = rng.uniform(0.03, 0.97)
    contrast = rng.uniform(0.25, 0.9) if rng.random() < 0.85 else rng.uniform(0.08, 0.25)
    direction = 1 if rng.random() < 0.5 else -1
    letter_luminance = background_luminance + direction * contrast
    if not 0 <= letter_luminance <= 1:
        letter_luminance = background_luminance - direction * contrast
    image = _background(rng, background_luminance, shape)
    for depth, layer in enumerate(layers):
        alpha = layer[..., None]
        if depth < len(layers) - 1:  # shadow / border: its own tone, between the two
            tone = _colour(rng, np.clip(rng.uniform(0, 1), 0, 1))
        else:
            tone = _colour(rng, np.clip(letter_luminance, 0, 1))
            if rng.random() < 0.2:  # shaded or mottled letter fill
                tone = tone + rng.uniform(0, 0.25) * _field(rng, shape)[..., None]
        image = image + (tone - image) * alpha
    if rng.random() < 0.5:  # uneven illumination
        image = image * (1 + rng.uniform(0.1, 0.6) * _field(rng, shape)[..., None])
    picture = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
    picture = _degrade(rng, picture)
    return picture


def _degrade(rng: np.random.Generator, picture: Image.Image) -> Image.Image:
    """Camera and scanner damage: low resolution, blur, sensor noise, JPEG artefacts."""
    width, height = picture.size
    if rng.random() < 0.15:
        scale = rng.uniform(0.35, 0.7)
        small = (max(4, int(width * scale)), max(4, int(height * scale)))
        picture = picture.resize(small, Image.Resampling.BILINEAR).resize(
            (width, height), Image.Resampling.BILINEAR)
    if rng.random() < 0.4:
        picture = picture.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(2, 20), (height, width, 1 if rng.random() < 0.5 else 3))
        picture = Image.fromarray(np.clip(np.asarray(picture, np.float32) + noise, 0, 255)
                                  .astype(np.uint8))
    if rng.random() < 0.2:
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(rng.integers(10, 60)))
        picture = Image.open(buffer).convert("RGB")
    return picture
