"""Handwritten letters for the built-in data: pen-drawn shapes and how ink on paper looks.

Real handwriting differs from printed letters in shape (every writer builds a letter from their
own strokes: several skeletons per letter, slant, width, wobble, overshooting or open joins,
lead-in and exit strokes) and in look (thin pen, pencil or marker lines of uneven pressure on
gray or tinted paper, photographed small and blurred). `pen_glyph` draws the shape, picking one
of several stroke constructions of the letter; `hand_faces` picks the handwriting fonts;
`paint_on_paper_batch` turns letter coverage masks into photographed sheets of paper.

The geometry shared with printed letters (crop, rotation, perspective, neighbours) stays in
`builtin.synth`; the built-in skeletons in `builtin.strokes.STROKES` are the first
variant of each letter here.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from charrec.data import resampling
from charrec.data.builtin.fonts import GLYPH_PIXELS, FontFace
from charrec.data.builtin.strokes import STROKES, smooth
from charrec.data.builtin.strokes import arc as _arc

# Families (lowercase substrings) of installed fonts that look handwritten or hand-printed.
HAND_FONT_NAMES = ("caveat", "indie flower", "kalam", "permanent marker", "shadows into light",
                   "zeyada", "dancing script", "satisfy", "amatic", "delius", "comic", "handlee",
                   "patrick hand", "architects daughter", "gloria", "coming soon", "nanum pen",
                   "reenie", "rock salt", "covered by your grace", "just another hand",
                   "homemade apple", "marker", "sue ellen", "schoolbell", "gochi", "neucha")


def hand_faces(faces: list[FontFace]) -> list[int]:
    """Indices of the faces whose family looks handwritten (see HAND_FONT_NAMES)."""
    return [index for index, face in enumerate(faces)
            if any(name in face.family.lower() for name in HAND_FONT_NAMES)]


def _variants() -> dict[str, list[list[list[tuple[float, float]]]]]:
    """More ways to build each capital, beyond STROKES: x 0..1, y 0 (cap line) .. 1 (base)."""
    return {
        "A": [[[(0, 1), (0.38, 0), (0.62, 0), (1, 1)], [(0.2, 0.6), (0.8, 0.6)]],
              [[(0.05, 1), (0.5, 0), (0.95, 1)], [(0.3, 0.72), (0.7, 0.72)]],
              [[(0, 1), (0.45, 0), (0.55, 0.05), (1, 1)], [(0.15, 0.55), (0.9, 0.6)]]],
        "B": [[[(0, 0), (0, 1)], [(0, 0), *_arc(0.3, 0.25, 0.45, 0.25, 90, -90), (0, 0.5)],
               [(0, 0.5), *_arc(0.3, 0.75, 0.5, 0.25, 90, -90), (0, 1)]],
              [[(0, 1), (0, 0), *_arc(0.35, 0.24, 0.4, 0.24, 90, -90), (0.1, 0.5),
                *_arc(0.4, 0.75, 0.5, 0.25, 90, -90), (0, 1)]]],
        "C": [[_arc(0.5, 0.5, 0.5, 0.5, 70, 290, 16)], [_arc(0.55, 0.5, 0.5, 0.5, 30, 330, 18)]],
        "D": [[[(0, 1), (0, 0), *_arc(0.2, 0.5, 0.8, 0.5, 90, -90), (0, 1)]],
              [[(0.1, 0), (0.1, 1)], [(0, 0.02), *_arc(0.35, 0.5, 0.62, 0.48, 90, -90), (0, 1)]]],
        "E": [[_arc(0.55, 0.27, 0.45, 0.27, 60, 270, 10)
               + _arc(0.55, 0.75, 0.5, 0.25, 90, 300, 10)],
              [[(0, 0), (0, 1)], [(0, 0), (0.9, 0)], [(0, 0.5), (0.7, 0.5)], [(0, 1), (0.9, 1)]],
              [[(0.9, 0), (0, 0), (0, 1), (0.95, 1)], [(0, 0.45), (0.6, 0.45)]]],
        "F": [[[(0, 0), (0, 1)], [(0, 0), (0.9, 0)], [(0, 0.45), (0.6, 0.45)]],
              [[(0.1, 0), (1, 0.05)], [(0.4, 0), (0.4, 1)], [(0.15, 0.5), (0.7, 0.5)]]],
        "G": [[_arc(0.5, 0.5, 0.5, 0.5, 60, 360, 16) + [(1, 0.5), (1, 1)]],
              [_arc(0.5, 0.5, 0.5, 0.5, 60, 350, 16) + [(0.95, 0.5), (0.55, 0.5)]],
              [_arc(0.5, 0.5, 0.5, 0.5, 50, 350, 16), [(0.55, 0.55), (1.05, 0.55)],
               [(0.98, 0.55), (0.98, 1.0)]]],
        "H": [[[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.4), (1, 0.4)]],
              [[(0.1, 0), (0, 1)], [(0.9, 0), (1, 1)], [(-0.05, 0.55), (1.05, 0.5)]],
              [[(0, 0), (0, 1), (0, 0.5), (1, 0.5), (1, 0), (1, 1)]]],
        "I": [[[(0.5, 0), (0.5, 1)]], [[(0.5, 0), (0.5, 1)], [(0.1, 0), (0.9, 0)],
                                        [(0.1, 1), (0.9, 1)]]],
        "J": [[[(0.7, 0), (0.7, 0.7), *_arc(0.4, 0.7, 0.3, 0.3, 0, -180)]],
              [[(0.7, 0), (0.7, 0.75), *_arc(0.35, 0.75, 0.35, 0.25, 0, -160)],
               [(0.2, 0), (1, 0)]]],
        "K": [[[(0, 0), (0, 1)], [(0.9, 0), (0, 0.55), (1, 1)]],
              [[(0, 0), (0, 1)], [(0.9, 0), (0.05, 0.5)], [(0.05, 0.5), (0.95, 1)]]],
        "L": [[[(0.05, 0), (0, 1), (0.9, 0.98)]], [[(0, 0), (0, 1)], [(0, 1), (0.7, 1)]]],
        "M": [[[(0, 1), (0, 0), (0.5, 1), (1, 0), (1, 1)]],
              [[(0, 1), (0.15, 0), (0.5, 0.75), (0.85, 0), (1, 1)]],
              [[(0, 1), (0, 0)], [(0, 0), (0.5, 0.6), (1, 0)], [(1, 0), (1, 1)]]],
        "N": [[[(0, 1), (0, 0)], [(0, 0), (1, 1)], [(1, 1), (1, 0)]],
              [[(0, 1), (0.05, 0), (0.95, 1), (1, 0)]]],
        "O": [[_arc(0.5, 0.5, 0.5, 0.5, 100, 470, 22)], [_arc(0.5, 0.5, 0.45, 0.5, 80, 420, 20)]],
        "P": [[[(0, 0), (0, 1)], [(0, 0), *_arc(0.3, 0.27, 0.6, 0.27, 90, -90), (0, 0.54)]],
              [[(0, 1), (0, 0), *_arc(0.4, 0.22, 0.5, 0.22, 90, -90), (0, 0.44)]]],
        "Q": [[_arc(0.5, 0.5, 0.5, 0.5, 0, 360, 20), [(0.45, 0.75), (0.85, 1.15)]],
              [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, 20), [(0.75, 0.85), (1.05, 1.0)]],
              [_arc(0.5, 0.45, 0.5, 0.45, 90, 450, 20), [(0.5, 0.9), (0.7, 1.05), (1.0, 1.0)]]],
        "R": [[[(0, 1), (0, 0), *_arc(0.3, 0.27, 0.6, 0.27, 90, -90), (0, 0.54), (1, 1)]],
              [[(0, 0), (0, 1)], [(0, 0), *_arc(0.35, 0.25, 0.5, 0.25, 90, -90), (0.05, 0.5)],
               [(0.4, 0.5), (1, 1)]]],
        "S": [[_arc(0.5, 0.25, 0.42, 0.25, 20, 270, 10)
               + _arc(0.5, 0.75, 0.45, 0.25, 90, -160, 10)]],
        "T": [[[(0, 0.05), (1, 0)], [(0.5, 0), (0.5, 1)]],
              [[(0, 0.1), (0.5, 0), (1, 0.05)], [(0.55, 0.02), (0.45, 1)]]],
        "U": [[[(0, 0), (0, 0.65), *_arc(0.5, 0.65, 0.5, 0.35, 180, 360), (1, 0), (1, 1)]],
              [[(0, 0), *_arc(0.5, 0.5, 0.5, 0.5, 180, 360, 14), (1, 0)]]],
        "V": [[[(0, 0), (0.45, 1), (0.55, 1), (1, 0)]],
              [[(0, 0), (0.55, 1), (0.9, 0), (1.05, -0.05)]]],
        "W": [[[(0, 0), (0.25, 1), (0.5, 0), (0.75, 1), (1, 0)]],
              [[(0, 0), (0.2, 1), (0.5, 0.4), (0.8, 1), (1, 0)]],
              [[(0, 0), (0.3, 1), (0.55, 0.1)], [(0.45, 0.1), (0.7, 1), (1, 0)]]],
        "X": [[[(0.1, 0), (0.9, 1)], [(0.9, 0), (0.1, 1)]],
              [[(0, 0), *_arc(0.5, 0.5, 0.15, 0.4, 180, 360, 6), (1, 0)],
               [(0, 1), *_arc(0.5, 0.5, 0.15, 0.4, 180, 0, 6), (1, 1)]]],
        "Y": [[[(0, 0), (0.5, 0.5)], [(1, 0), (0.2, 1)]], [[(0, 0), (0.5, 0.5), (0.5, 1)],
                                                          [(1, 0), (0.5, 0.5)]],
              [[(0, 0), (0.5, 0.45), (1, 0)], [(0.5, 0.45), (0.45, 1)]]],
        "Z": [[[(0, 0), (1, 0), (0, 1), (1, 1)], [(0.25, 0.5), (0.75, 0.5)]],
              [[(0.05, 0.05), (0.95, 0), (0.1, 0.95), (0.2, 1), (1, 1)]]],
    }


VARIANTS = _variants()


def skeletons(char: str) -> list[list[list[tuple[float, float]]]]:
    """Every stroke construction of `char`: the built-in one first, then the variants."""
    return [STROKES[char], *VARIANTS.get(char, [])]


@functools.cache
def _skeleton_arrays(char: str) -> tuple[tuple[np.ndarray, ...], ...]:
    """`skeletons(char)` as float64 point arrays [points, (x, y)], converted once. Read-only:
    `pen_glyph` jitters a copy."""
    options = []
    for strokes in skeletons(char):
        arrays = tuple(np.asarray(stroke, np.float64) for stroke in strokes)
        for array in arrays:
            array.flags.writeable = False
        options.append(arrays)
    return tuple(options)


def _linspace(stop: float, count: int) -> np.ndarray:
    """`np.linspace(0, stop, count)` for count >= 2, the same numbers computed the same way
    (arange times the step, the last point set to `stop`) without its generic overhead, which
    outweighed the work for the few hundred points of a stroke."""
    positions = np.arange(count, dtype=np.float64) * (stop / (count - 1))
    positions[-1] = stop
    return positions


@functools.lru_cache(maxsize=1024)
def _pressure_profile(count: int) -> tuple[np.ndarray, np.ndarray]:
    """For a stroke of `count` points: its position along the stroke, 0..1, and how much the
    nib is lifted at the ends (1 at both ends, 0 from 15% of the stroke inwards). Read-only."""
    along = np.linspace(0, 1, count)
    lifted = np.clip(1 - np.minimum(along, 1 - along) / 0.15, 0, 1)
    along.flags.writeable = lifted.flags.writeable = False
    return along, lifted


@functools.lru_cache(maxsize=1024)
def _drift_kernel(length: int) -> np.ndarray:
    """The Hann window `_smooth_noise` smooths with (read-only)."""
    kernel = np.hanning(length)
    kernel.flags.writeable = False
    return kernel


def _resample(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points every `spacing` along the polyline (both ends kept)."""
    steps = points[1:] - points[:-1]
    lengths = np.hypot(steps[:, 0], steps[:, 1])
    total = float(lengths.sum())
    if total < 1e-9:
        return points[:1]
    along = np.empty(len(points))
    along[0] = 0.0
    np.cumsum(lengths, out=along[1:])
    positions = _linspace(total, max(2, int(total / spacing) + 1))
    dense = np.empty((len(positions), 2))
    dense[:, 0] = np.interp(positions, along, points[:, 0])
    dense[:, 1] = np.interp(positions, along, points[:, 1])
    return dense


def _smooth_noise(rng: np.random.Generator, count: int, scale: float) -> np.ndarray:
    """[count, 2] slowly varying offsets (a hand that drifts, not a jittery one)."""
    steps = rng.normal(0, 1, (count, 2))
    if count < 6:
        return np.zeros((count, 2))
    kernel = _drift_kernel(max(3, count // 3))
    drift = np.empty((count, 2))
    drift[:, 0] = np.convolve(steps[:, 0], kernel, mode="same")
    drift[:, 1] = np.convolve(steps[:, 1], kernel, mode="same")
    return drift / (np.abs(drift).max() + 1e-9) * scale


def _overshoot_ends(rng: np.random.Generator, points: np.ndarray, overshoot: float) -> None:
    """Move both ends of a stroke (in place) along its end segments: past them (overshoot > 0)
    or short of them, by a random share of `overshoot`. In plain floats: the same arithmetic as
    on numpy rows, at a fraction of the cost of numpy calls on two-element arrays."""
    coordinates = points.tolist()
    for end, before in ((0, 1), (-1, -2)):
        (x, y), (x_before, y_before) = coordinates[end], coordinates[before]
        dx, dy = x - x_before, y - y_before
        norm = float(np.hypot(dx, dy))  # numpy's hypot: math.hypot may differ in the last bit
        if norm > 1e-6:
            share = rng.uniform(0, 1)
            coordinates[end] = [x + dx / norm * overshoot * share,
                                y + dy / norm * overshoot * share]
    points[:] = coordinates


def pen_glyph(rng: np.random.Generator, char: str) -> tuple[np.ndarray, int]:
    """A handwritten `char` (uint8 bitmap, top offset from the cap line), new at every call.

    A writer is drawn first (skeleton variant, width, slant, roundness of corners, how far
    strokes overshoot or fall short, pen width and pressure), then each stroke is jittered,
    resampled densely, drifted smoothly and stamped with a round nib whose radius follows the
    pressure and tapers at the ends.
    """
    size = GLYPH_PIXELS
    options = _skeleton_arrays(char)
    strokes = options[rng.integers(len(options))]
    width_scale = rng.uniform(0.55, 1.1) * (0.7 if char.islower() else 0.85)
    height_scale = rng.uniform(0.85, 1.1)
    slant = rng.normal(0, 0.18)
    corner_jitter = rng.uniform(0.0, 0.06)
    overshoot = rng.uniform(-0.06, 0.1)
    drift = rng.uniform(0.0, 0.04)
    thickest = 0.12 if rng.random() < 0.15 else 0.06  # markers now and then, mostly pens
    pen = size * math.exp(rng.uniform(math.log(0.012), math.log(thickest)))
    pressure = rng.uniform(0.0, 0.45)
    taper = rng.uniform(0.0, 0.6)
    margin = int(pen) + size // 3
    canvas = np.zeros((int(size * 1.6) + 2 * margin, int(size * 1.8) + 2 * margin), np.uint8)
    centres, radii = [], []
    lead_in = rng.random() < 0.15
    exit_stroke = rng.random() < 0.2
    for number, stroke in enumerate(strokes):
        points = stroke + rng.normal(0, corner_jitter, stroke.shape)
        if len(points) >= 2:
            _overshoot_ends(rng, points, overshoot)
        if lead_in and number == 0:
            points = np.concatenate([points[:1] + [[-0.2, 0.15 + rng.uniform(0, 0.2)]], points])
        if exit_stroke and number == len(strokes) - 1:
            points = np.concatenate([points, points[-1:] + [[0.2, -rng.uniform(0, 0.2)]]])
        points[:, 1] *= height_scale
        points[:, 0] = points[:, 0] * width_scale + slant * (1 - points[:, 1])
        points = smooth(points, int(rng.integers(0, 3)))
        dense = _resample(points * size * 0.9 + margin, max(0.6, pen * 0.25))
        dense = dense + _smooth_noise(rng, len(dense), drift * size)
        along, lifted = _pressure_profile(len(dense))
        radius = pen / 2 * (1 + pressure * np.sin(2 * np.pi * (rng.uniform(0.3, 1.5) * along
                                                                + rng.uniform(0, 1))))
        radius *= 1 - taper * lifted
        centres.append(dense)
        radii.append(np.maximum(radius + 0.05, 1.0))
    top, bottom, left, right = _stamp_discs(canvas, np.concatenate(centres),
                                            np.concatenate(radii))
    return np.ascontiguousarray(canvas[top:bottom + 1, left:right + 1]), top - margin


def _stamp_discs(canvas: np.ndarray, centres: np.ndarray, radii: np.ndarray
                 ) -> tuple[int, int, int, int]:
    """Fill (255) every pixel whose centre lies within `radii` of `centres` ([P, (x, y)]): the
    round nib stamped at every point of the strokes at once (one ellipse call per point took
    most of the rendering time). Returns the box of the pixels filled: top, bottom, left,
    right (inclusive); the canvas must get at least one.

    Each point tests the (2 * reach + 1)^2 pixels around its nearest pixel. The squared
    distances across and down are computed per row and column and only summed per pixel, and
    the pixels filled are written by flat index; the bounds are only checked when a window
    pokes out of the canvas (the pen's margin makes that rare).
    """
    reach = int(math.ceil(float(radii.max())))
    offsets = np.arange(-reach, reach + 1)
    base = np.rint(centres).astype(np.int64)  # [P, 2] nearest pixel of each point
    xs = base[:, :1] + offsets  # [P, K] columns and rows of each point's window
    ys = base[:, 1:] + offsets
    across = (xs - centres[:, :1]) ** 2
    down = (ys - centres[:, 1:]) ** 2
    inside = across[:, None, :] + down[:, :, None] <= (radii ** 2)[:, None, None]  # [P, K, K]
    height, width = canvas.shape
    if int(base.min()) < reach or int(base[:, 0].max()) + reach >= width \
            or int(base[:, 1].max()) + reach >= height:
        inside &= ((xs >= 0) & (xs < width))[:, None, :] & ((ys >= 0) & (ys < height))[:, :, None]
    filled = ((ys * width)[:, :, None] + xs[:, None, :])[inside]
    canvas.reshape(-1)[filled] = 255
    columns = filled % width
    return (int(filled.min()) // width, int(filled.max()) // width, int(columns.min()),
            int(columns.max()))


# ------------------------------------------------------------------------- ink on paper


def _soft_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field in about [-1, 1] from a coarse grid of `cells` x `cells` values
    (bicubic interpolation, as a product of two matrices)."""
    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    rows = resampling.resize_matrix(cells, shape[0], resampling.BICUBIC)
    cols = resampling.resize_matrix(cells, shape[1], resampling.BICUBIC)
    return rows @ coarse @ cols.T


def paint_on_paper_batch(generators: list[np.random.Generator], masks: np.ndarray) -> np.ndarray:
    """Letter coverages [N, H, W] in [0, 1] -> uint8 RGB [N, H, W, 3], each drawn with its own
    generator: pen, pencil or marker on paper.

    Paper is white to mid gray (photographed under room light), sometimes tinted, with uneven
    light and texture; ink is dark (a light-on-dark board now and then), pencil grainy and
    faint. The picture is then shrunk to the 16-60 px of a real crop and stretched back, so
    the blur of small photos is learnt, and gets camera noise and sometimes JPEG artefacts.
    The shrinking, blurring and stretching of all images is two batched matrix products
    (`charrec.data.resampling`).
    """
    count, height, width = masks.shape
    inks = _Inks(count, (height, width))
    rows = np.empty((count, height, height), np.float32)
    cols = np.empty((count, width, width), np.float32)
    noise = np.empty((count, height, width, 1), np.float32)
    jpeg_quality = [0] * count
    for row, rng in enumerate(generators):
        inks.draw(row, rng)
        rows[row], cols[row] = _camera(rng, height, width)
        noise[row] = rng.normal(0, rng.uniform(0.3, 4), (height, width, 1))
        if rng.random() < 0.2:
            jpeg_quality[row] = int(rng.integers(30, 90))
    colour = inks.on_paper(masks)
    pixels = resampling.apply_separable(np.clip(colour, 0, 1) * 255, rows, cols) + noise
    pixels = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    for row, quality in enumerate(jpeg_quality):
        if quality:
            pixels[row] = resampling.jpeg(pixels[row], quality)
    return pixels


class _Inks:
    """The pencil, pen or marker and the paper of a batch of letters: drawn one image at a
    time with each image's generator (`draw`), then mixed with the letters' coverage for the
    whole batch at once (`on_paper`), in float32 as one image at a time would be."""

    def __init__(self, count: int, shape: tuple[int, int]):
        self.shape = shape
        self.paper = np.zeros(count, np.float32)  # paper tone
        self.ink_step = np.zeros(count, np.float32)  # ink tone - paper tone
        self.speckle = np.ones((count, *shape), np.float32)  # pencil grain (1: none)
        self.light = np.zeros((count, *shape), np.float32)  # uneven light, about [-1, 1]
        self.light_amount = np.zeros(count, np.float32)
        self.texture = np.zeros((count, *shape), np.float32)  # paper texture, about [-1, 1]
        self.texture_amount = np.zeros(count, np.float32)
        self.tint = np.zeros((count, 3), np.float32)  # of the paper
        self.ink_tint = np.zeros((count, 3), np.float32)  # of pen or marker ink

    def draw(self, row: int, rng: np.random.Generator) -> None:
        """Image `row`'s paper and ink, drawn from its generator."""
        paper = rng.uniform(0.55, 0.97)
        tool = rng.random()
        if tool < 0.3:  # pencil: faint and grainy
            contrast, grain = rng.uniform(0.15, 0.5), rng.uniform(0.2, 0.6)
        elif tool < 0.85:  # ballpoint, gel, fountain pen
            contrast, grain = rng.uniform(0.25, 0.8), rng.uniform(0.0, 0.2)
        else:  # marker
            contrast, grain = rng.uniform(0.4, 0.9), 0.0
        contrast = min(contrast, paper - 0.02)
        ink = paper - contrast
        if rng.random() < 0.08:  # chalk or white pen on a dark board
            paper, ink = 1 - paper, 1 - ink
        self.paper[row], self.ink_step[row] = paper, ink - paper
        if grain > 0:
            self.speckle[row] = rng.uniform(1 - grain, 1, self.shape)
        self.light_amount[row] = rng.uniform(0, 0.04)
        self.light[row] = _soft_field(rng, self.shape, 3)
        self.texture_amount[row] = rng.uniform(0, 0.012)
        self.texture[row] = _soft_field(rng, self.shape, int(rng.integers(4, 12)))
        self.tint[row] = rng.normal(0, rng.uniform(0, 0.04), 3)
        if tool >= 0.3:
            self.ink_tint[row] = rng.normal(0, rng.uniform(0, 0.15), 3)

    def on_paper(self, masks: np.ndarray) -> np.ndarray:
        """Letter coverages [N, H, W] in [0, 1] -> float RGB [N, H, W, 3] in about [0, 1]."""
        coverage = masks * self.speckle
        light = 1 + self.light_amount[:, None, None] * self.light
        texture = self.texture_amount[:, None, None] * self.texture
        gray = ((self.paper[:, None, None] + texture)
                + self.ink_step[:, None, None] * coverage) * light
        # mixed channels first ([N, 3, H, W]: long inner loops, not rows of 3 values), stored
        # channels last as before, the layout the camera's matrix products expect
        colour = (gray[:, None] + self.tint[..., None, None]) \
            + self.ink_tint[..., None, None] * coverage[:, None]
        return np.ascontiguousarray(colour.transpose(0, 2, 3, 1))


def _camera(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column matrices of one photo: mostly the real crop's size, 16-60 px a side,
    stretched to the input size (sometimes blurred there), else maybe a blur at full size."""
    if rng.random() < 0.85:
        small = (int(rng.integers(16, 61)), int(rng.integers(16, 61)))  # (width, height)
        method = resampling.BOX if rng.random() < 0.5 else resampling.BILINEAR
        sigma = resampling.quantised_sigma(rng.uniform(0.3, 0.9)) if rng.random() < 0.35 else 0.0
        return (resampling.camera_matrix(height, small[1], method, sigma),
                resampling.camera_matrix(width, small[0], method, sigma))
    sigma = resampling.quantised_sigma(rng.uniform(0.3, 1.0)) if rng.random() < 0.4 else 0.0
    return resampling.camera_matrix(height, sigma=sigma), resampling.camera_matrix(width,
                                                                                   sigma=sigma)
