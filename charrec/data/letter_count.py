"""How many letters an image seems to hold, so `predict` can warn that it reads one per image.

A photo of a word ("HELLO") squeezed into the network's square input gives a confident answer
for no letter at all. The count here looks at the image at its own aspect ratio: the ink (the
side that differs from the border, found with Otsu's threshold) is projected onto the x axis,
and each run of inked columns, bridged over hairline gaps, is a candidate letter. A candidate
counts when it is tall (at least `MIN_HEIGHT` of the tallest) and not a sliver (at least
`MIN_WIDTH` of its own height): dots and broken strokes do not count. At least two of them
must lie inside the image, clear of its left and right edges: a tight crop of one letter often
holds parts of its neighbours, cut by the edges, and that is not a word. Several letters must
also make the ink wider than one letter can be (`MIN_ASPECT` per letter), so a wide single
letter whose strokes never touch (an `M`, a hand-drawn `H` with a gap) stays one letter.

Touching or joined letters (cursive) make one run: the count errs towards 1, which only means
a missing warning, never a false one. Pure numpy and Pillow (no torch), like `predict`'s fast
path.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WORK_HEIGHT = 48  # pixels: the image is scaled to this height (aspect kept) before counting
MAX_ASPECT = 12  # wider images are cropped to this many heights (longer words add nothing)
MIN_HEIGHT = 0.5  # a letter is at least half as tall as the tallest candidate
MIN_WIDTH = 0.2  # ... and at least a fifth as wide as it is tall
MIN_ASPECT = 0.55  # N letters make ink at least 0.55 N times as wide as it is tall
GAP = 1  # columns of no ink inside one letter that are bridged (anti-aliasing, thin joins)


def ink_mask(gray: Image.Image) -> np.ndarray:
    """Bool [H, W] at `WORK_HEIGHT` rows: True where the letter's ink is (either polarity)."""
    width, height = gray.size
    new_width = max(1, min(round(width * WORK_HEIGHT / max(height, 1)), WORK_HEIGHT * MAX_ASPECT))
    pixels = np.asarray(gray.resize((new_width, WORK_HEIGHT), Image.Resampling.BILINEAR),
                        dtype=np.float32)
    threshold = _otsu(pixels)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    dark_ink = np.median(border) > threshold  # light paper: the ink is the dark side
    return pixels <= threshold if dark_ink else pixels > threshold


def _otsu(pixels: np.ndarray) -> float:
    """The gray level that best splits the pixels into two classes (Otsu, 1979)."""
    histogram = np.bincount(pixels.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(histogram)
    total = weight[-1]
    mean = np.cumsum(histogram * np.arange(256))
    between = (mean[-1] * weight - mean * total) ** 2
    denominator = weight * (total - weight)
    valid = denominator > 0
    if not valid.any():
        return float(pixels.mean())
    scores = np.zeros(256)
    scores[valid] = between[valid] / denominator[valid]
    return float(np.argmax(scores))


def count_letters(gray: Image.Image) -> int:
    """How many letters side by side the mode-'L' image seems to hold (1 when unsure)."""
    mask = ink_mask(gray)
    columns = mask.any(axis=0)
    runs = _runs(columns)
    if len(runs) < 2:
        return 1
    candidates = []
    for start, stop in runs:
        rows = np.flatnonzero(mask[:, start:stop].any(axis=1))
        candidates.append((start, stop, int(rows[-1] - rows[0] + 1)))
    tallest = max(height for _, _, height in candidates)
    letters = [(start, stop, height) for start, stop, height in candidates
               if height >= MIN_HEIGHT * tallest and stop - start >= MIN_WIDTH * height]
    last_column = mask.shape[1]
    interior = [run for run in letters if run[0] > 0 and run[1] < last_column]
    if len(interior) < 2:  # a tight crop cuts its neighbours at the edges: those are not words
        return 1
    ink_rows = np.flatnonzero(mask[:, letters[0][0]:letters[-1][1]].any(axis=1))
    ink_height = ink_rows[-1] - ink_rows[0] + 1
    ink_width = letters[-1][1] - letters[0][0]
    if ink_width < MIN_ASPECT * len(letters) * ink_height:
        return 1
    return len(letters)


def _runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True, runs split by more than `GAP` False columns."""
    runs: list[tuple[int, int]] = []
    for index in np.flatnonzero(columns):
        if runs and index - runs[-1][1] <= GAP:
            runs[-1] = (runs[-1][0], int(index) + 1)
        else:
            runs.append((int(index), int(index) + 1))
    return runs


def several_letters_warning(gray: Image.Image) -> str | None:
    """`predict`'s warning for an image of several letters, or None."""
    count = count_letters(gray)
    if count < 2:
        return None
    return f"looks like {count} letters; charrec reads one per image (crop to one letter)"
