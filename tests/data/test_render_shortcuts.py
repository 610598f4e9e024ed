"""The shortcuts that make the built-in letters cheaper to render compute the same numbers as the
plain numpy and Pillow code they replace (the rendered bytes for a seed must not change)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from charrec.data import resampling
from charrec.data.builtin import handwriting, strokes, synth


def test_box_reduction_is_the_float_mean():
    masks = np.random.default_rng(0).integers(0, 256, (20, 64, 48), dtype=np.uint8)
    masks[0] = 255
    blocks = masks.reshape(20, 32, synth.SUPERSAMPLE, 24, synth.SUPERSAMPLE)
    expected = blocks.astype(np.float32).mean(axis=(2, 4)) / 255
    reduced = synth._reduce(masks)
    assert reduced.dtype == np.float32 and np.array_equal(reduced, expected)


@pytest.mark.parametrize("count", [2, 3, 17, 400])
def test_stroke_positions_are_numpys_linspace(count):
    for stop in (1e-6, 0.37, 1.0, 123.456789):
        assert np.array_equal(handwriting._linspace(stop, count), np.linspace(0, stop, count))


def test_corner_cutting_keeps_its_numbers():
    points = np.random.default_rng(1).normal(size=(7, 2))
    expected = points
    for _ in range(2):
        quarter = 0.75 * expected[:-1] + 0.25 * expected[1:]
        three_quarters = 0.25 * expected[:-1] + 0.75 * expected[1:]
        middle = np.stack([quarter, three_quarters], axis=1).reshape(-1, 2)
        expected = np.concatenate([expected[:1], middle[1:-1], expected[-1:]])
    assert np.array_equal(strokes.smooth(points, 2), expected)


def test_the_nib_fills_what_a_disc_test_per_pixel_fills():
    rng = np.random.default_rng(2)
    centres = rng.uniform(-2, 42, (60, 2))
    radii = rng.uniform(1.0, 4.5, 60)
    canvas = np.zeros((40, 44), np.uint8)
    box = handwriting._stamp_discs(canvas, centres, radii)
    ys, xs = np.mgrid[0:40, 0:44]
    expected = np.zeros((40, 44), bool)
    for (x, y), radius in zip(centres, radii, strict=True):
        expected |= (xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2
    assert np.array_equal(canvas == 255, expected)
    rows, cols = np.nonzero(expected)
    assert box == (rows.min(), rows.max(), cols.min(), cols.max())


def test_jpeg_round_trip_decodes_as_image_open_does():
    pixels = (np.random.default_rng(3).random((20, 28, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=35)
    with Image.open(buffer) as opened:
        expected = np.asarray(opened.convert("RGB"))
    assert np.array_equal(resampling.jpeg(pixels, 35), expected)


def test_each_field_is_its_ramp_or_its_blob():
    parameters = np.zeros((40, 3, 18), np.float32)
    for row in range(40):
        synth._smooth_fields(np.random.default_rng(row), parameters[row])
    rows, cols, blend_rows, blend_cols = synth._field_axes((24, 32))
    angle = parameters[..., 1, None, None]
    ramp = np.cos(angle) * cols[None, :] + np.sin(angle) * rows[:, None]
    blobs = blend_rows @ parameters[..., 2:].reshape(40, 3, 4, 4) @ blend_cols.T
    blobs /= np.abs(blobs).max(axis=(-2, -1), keepdims=True) + 1e-6
    is_ramp = parameters[..., 0, None, None]
    assert np.array_equal(synth._fields(parameters, (24, 32)),
                          is_ramp * ramp + (1 - is_ramp) * blobs)
