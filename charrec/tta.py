"""Test-time augmentation: a model's letter probabilities averaged over a few views of each image.

`tta_probabilities(probabilities_of, images)` is what `charrec test --tta` and
`charrec predict --tta` use, given the model's probabilities as a function of images. The views
are small geometric changes of the preprocessed images (float32 [N, H, W] in [-1, 1], light
letter on dark): the image as it is, scaled by 0.9 and 1.1, and rotated by -8 and +8 degrees
(`VIEWS`). Averaging the softmax over them evens out what one view gets wrong by a hair.

A model reads most images with near certainty, and the extra views rarely change those answers;
so the other views are computed only for the images whose plain top probability is below
`unsure_below` (1.0 or more: for every image). The figures behind the defaults are in
docs/models.md. numpy only, like the rest of reading (an ONNX model is read without torch), and
below `charrec.predict` (it imports nothing of charrec); nothing here trains or reads files.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# (scale, degrees): scale > 1 enlarges the letter; the first is the image as it is
VIEWS: tuple[tuple[float, float], ...] = ((1.0, 0.0), (0.9, 0.0), (1.1, 0.0), (1.0, -8.0),
                                          (1.0, 8.0))
DEFAULT_UNSURE_BELOW = 0.9  # plain top probability under which the other views are computed

Probabilities = Callable[[np.ndarray], np.ndarray]  # images [N, H, W] -> [N, classes]


def view(images: np.ndarray, scale: float, degrees: float) -> np.ndarray:
    """images [N, H, W] scaled about the centre by `scale` and rotated by `degrees`
    (counter-clockwise), bilinear; pixels from outside the image repeat its border (the
    background)."""
    if scale == 1.0 and degrees == 0.0:
        return images
    count, height, width = images.shape
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    # each output pixel's centre in [-1, 1], mapped back by the inverse rotation and scale
    ys = (np.arange(height) * 2 + 1) / height - 1
    xs = (np.arange(width) * 2 + 1) / width - 1
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    source_x = cos * grid_x + sin * grid_y
    source_y = -sin * grid_x + cos * grid_y
    # to pixel coordinates, clamped to the border
    column = np.clip(((source_x + 1) * width - 1) / 2, 0, width - 1)
    row = np.clip(((source_y + 1) * height - 1) / 2, 0, height - 1)
    left, top = np.floor(column).astype(np.int64), np.floor(row).astype(np.int64)
    right, bottom = np.minimum(left + 1, width - 1), np.minimum(top + 1, height - 1)
    across, down = (column - left).astype(np.float32), (row - top).astype(np.float32)
    upper = images[:, top, left] * (1 - across) + images[:, top, right] * across
    lower = images[:, bottom, left] * (1 - across) + images[:, bottom, right] * across
    return (upper * (1 - down) + lower * down).astype(np.float32).reshape(count, height, width)


def tta_probabilities(probabilities_of: Probabilities, images: np.ndarray,
                      views: tuple[tuple[float, float], ...] = VIEWS,
                      unsure_below: float = DEFAULT_UNSURE_BELOW) -> np.ndarray:
    """Class probabilities [N, classes] of images [N, H, W]: the plain view's, averaged with
    the other `views` for the images whose plain top probability is below `unsure_below`."""
    images = np.asarray(images, dtype=np.float32)
    probabilities = probabilities_of(images)
    unsure = np.flatnonzero(probabilities.max(axis=1) < unsure_below)
    if len(unsure) == 0:
        return probabilities
    subset, total, count = images[unsure], probabilities[unsure].copy(), 1
    for scale, degrees in views:
        if scale == 1.0 and degrees == 0.0:
            continue  # the plain view, counted already
        total += probabilities_of(view(subset, scale, degrees))
        count += 1
    probabilities[unsure] = total / count
    return probabilities
