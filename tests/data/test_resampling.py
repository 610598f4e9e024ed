"""Shrink, blur and stretch as matrices: the same pixels as Pillow's resizes, for whole batches."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from charrec.data import resampling

PIL_FILTERS = {resampling.BOX: Image.Resampling.BOX,
               resampling.BILINEAR: Image.Resampling.BILINEAR}


@pytest.mark.parametrize(("small", "method"), [(16, "box"), (23, "bilinear"), (47, "bilinear"),
                                               (60, "box"), (32, "bilinear")])
def test_shrink_and_stretch_match_pillow(small, method):
    pixels = (np.random.default_rng(small).random((32, 32, 3)) * 255).astype(np.uint8)
    expected = np.asarray(Image.fromarray(pixels).resize((small, small), PIL_FILTERS[method])
                          .resize((32, 32), Image.Resampling.BILINEAR), np.float32)
    matrix = resampling.camera_matrix(32, small, method)
    result = resampling.apply_separable(pixels[None].astype(np.float32), matrix[None],
                                        matrix[None])[0]
    # Pillow rounds to 8 bits after each resize; the matrices do not
    assert np.abs(result - expected).max() <= 2.0
    assert np.abs(result - expected).mean() <= 1.0


def test_rows_and_columns_get_their_own_matrix_per_image():
    images = np.zeros((2, 8, 12, 1), np.float32)
    images[:, 2, 3, 0] = 1.0  # one bright pixel
    rows = np.stack([np.eye(8, dtype=np.float32), np.roll(np.eye(8, dtype=np.float32), 1, 0)])
    cols = np.stack([np.eye(12, dtype=np.float32), np.roll(np.eye(12, dtype=np.float32), 2, 0)])
    moved = resampling.apply_separable(images, rows, cols)
    assert moved.shape == images.shape
    assert moved[0, 2, 3, 0] == 1.0 and moved[0].sum() == 1.0  # identity
    assert moved[1, 3, 5, 0] == 1.0 and moved[1].sum() == 1.0  # one row down, two columns right


def test_blur_keeps_flat_tones_and_spreads_a_line():
    matrix = resampling.camera_matrix(32, sigma=1.0)
    assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5)  # a flat paper stays flat
    line = np.zeros(32, np.float32)
    line[16] = 1.0
    blurred = matrix @ line
    assert 0.3 < blurred[16] < 0.5 and blurred[15] > 0.2 and blurred[20] < 0.01
    assert np.array_equal(resampling.camera_matrix(32), np.eye(32, dtype=np.float32))
