"""Shrinking, blurring and stretching a batch of small images as matrix products.

A low-resolution photo of a letter is the picture shrunk to a few pixels, maybe blurred, and
stretched back to the input size. Each of those steps is linear and separable, so per image it is
one [H, H] matrix for the rows and one [W, W] for the columns: `pixels = rows @ image @ cols.T`.
`camera_matrix` builds such a matrix (cached: the sizes repeat); `apply_separable` applies them to
a whole batch with two batched matrix products, instead of three Pillow calls per image.

The resize weights are Pillow's own (its BOX and BILINEAR filters, read off by resizing an
identity matrix), so the images look as they did when Pillow resized them one by one; the blur
is a Gaussian of the given sigma (Pillow's GaussianBlur approximates one with box filters).
Nothing here draws random numbers: callers choose the sizes with their own generators.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

BOX, BILINEAR, BICUBIC = "box", "bilinear", "bicubic"
_PIL_FILTERS = {BOX: Image.Resampling.BOX, BILINEAR: Image.Resampling.BILINEAR,
                BICUBIC: Image.Resampling.BICUBIC}


@functools.lru_cache(maxsize=4096)
def resize_matrix(size_in: int, size_out: int, method: str) -> np.ndarray:
    """[size_out, size_in] weights of Pillow's 1-D resize: `resized = weights @ line`."""
    identity = Image.fromarray(np.eye(size_in, dtype=np.float32))  # row k: the k-th unit line
    resized = identity.resize((size_out, size_in), _PIL_FILTERS[method])
    return np.ascontiguousarray(np.asarray(resized, np.float32).T)


@functools.lru_cache(maxsize=4096)
def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """[size, size] Gaussian blur of a line, renormalised at the ends (edges keep their tone)."""
    positions = np.arange(size, dtype=np.float32)
    weights = np.exp(-0.5 * ((positions[:, None] - positions[None, :]) / sigma) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


@functools.lru_cache(maxsize=8192)
def camera_matrix(size: int, small: int | None = None, method: str = BILINEAR,
                  sigma: float = 0.0) -> np.ndarray:
    """[size, size]: shrink a line to `small` pixels with `method` (None: keep the size), blur
    it there with `sigma` (0: no blur), stretch it back to `size` with bilinear weights."""
    matrix = np.eye(size, dtype=np.float32)
    if small is not None and small != size:
        matrix = resize_matrix(size, small, method)
    if sigma > 0:
        matrix = gaussian_matrix(matrix.shape[0], sigma) @ matrix
    if matrix.shape[0] != size:
        matrix = resize_matrix(matrix.shape[0], size, BILINEAR) @ matrix
    return matrix.astype(np.float32)


def quantised_sigma(sigma: float) -> float:
    """Blur strengths rounded to 0.02 px, so that their matrices can be cached."""
    return round(sigma * 50) / 50


def apply_separable(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """images float32 [N, H, W, C], rows [N, H, H], cols [N, W, W] -> rows @ image @ cols.T
    for every image and channel (two batched matrix products)."""
    channels_first = images.transpose(0, 3, 1, 2)  # [N, C, H, W]
    mixed = rows[:, None] @ channels_first @ cols.transpose(0, 2, 1)[:, None]
    return np.ascontiguousarray(mixed.transpose(0, 2, 3, 1))


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """uint8 RGB [H, W, 3] through a JPEG encoder and decoder at `quality`.

    The bytes are decoded with Pillow's JPEG decoder directly (`Image.frombytes` with the "jpeg"
    decoder, as `Image.open` sets it up for a colour JPEG): the same pixels, without
    `Image.open`'s format sniffing and marker parsing in Python, which cost more than the
    decoding itself.
    """
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    height, width = pixels.shape[:2]
    return np.asarray(Image.frombytes("RGB", (width, height), buffer.getvalue(), "jpeg", "RGB", ""))
