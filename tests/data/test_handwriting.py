"""Handwritten built-in letters: every skeleton draws, pens repeat, paper looks like paper."""

from __future__ import annotations

import numpy as np
import pytest

from charrec.data.builtin.fonts import LETTERS, UPPERCASE, FontFace
from charrec.data.builtin.handwriting import (
    VARIANTS,
    hand_faces,
    paint_on_paper_batch,
    pen_glyph,
    skeletons,
)


def test_every_capital_has_several_constructions_and_all_are_polylines():
    assert set(VARIANTS) == set(UPPERCASE)
    for letter in UPPERCASE:
        constructions = skeletons(letter)
        assert len(constructions) >= 2
        for strokes in constructions:
            assert strokes and all(len(stroke) >= 2 for stroke in strokes)
            points = np.concatenate([np.asarray(stroke, float) for stroke in strokes])
            assert points.shape[1] == 2 and np.isfinite(points).all()
            assert points.min() > -0.3 and points.max() < 1.4  # in the letter's box


@pytest.mark.parametrize("letter", list(LETTERS))
def test_pen_glyph_is_repeatable_and_inked(letter):
    for seed in range(4):
        first, top = pen_glyph(np.random.default_rng([seed, ord(letter)]), letter)
        again, top_again = pen_glyph(np.random.default_rng([seed, ord(letter)]), letter)
        assert np.array_equal(first, again) and top == top_again
        assert first.dtype == np.uint8 and first.max() == 255 and min(first.shape) >= 3


def test_paper_is_lighter_than_ink_mostly_and_the_contract_holds():
    mask = np.zeros((32, 32), np.float32)
    mask[4:28, 15:17] = 1.0  # a thin vertical stroke
    lighter = 0
    for seed in range(40):
        pixels = paint_on_paper(np.random.default_rng(seed), mask)
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
        again = paint_on_paper(np.random.default_rng(seed), mask)
        assert np.array_equal(pixels, again)
        gray = pixels.mean(axis=2)
        lighter += gray[:, :8].mean() > gray[10:22, 15:17].mean()
    assert lighter >= 30  # dark ink on paper, with a light-on-dark board now and then


def test_hand_faces_picks_handwriting_families_by_name():
    faces = [FontFace("a.ttf", 0, "Caveat", "Regular", LETTERS),
             FontFace("b.ttf", 0, "DejaVu Sans", "Bold", LETTERS),
             FontFace("c.ttf", 0, "Indie Flower", "", LETTERS)]
    assert hand_faces(faces) == [0, 2]


def test_the_nib_stamps_round_dots_of_the_given_radius():
    from charrec.data.builtin.handwriting import _stamp_discs

    canvas = np.zeros((40, 40), np.uint8)
    box = _stamp_discs(canvas, np.array([[10.0, 10.0], [30.0, 20.0]]), np.array([1.0, 4.0]))
    assert canvas[10, 10] == 255 and canvas[10, 11] == 255 and canvas[11, 11] == 0
    assert (canvas[:20, :20] > 0).sum() == 5  # radius 1: the pixel and its four neighbours
    big = (canvas[:, 20:] > 0).sum()
    assert abs(big - np.pi * 16) < 8 and canvas[20, 34] == 255 and canvas[20, 35] == 0
    rows, cols = np.nonzero(canvas)
    assert box == (rows.min(), rows.max(), cols.min(), cols.max()) == (9, 24, 9, 34)


def test_the_nib_stays_on_the_canvas():
    from charrec.data.builtin.handwriting import _stamp_discs

    canvas = np.zeros((10, 12), np.uint8)
    box = _stamp_discs(canvas, np.array([[0.2, 9.4], [11.0, 0.0]]), np.array([2.0, 1.0]))
    rows, cols = np.nonzero(canvas)
    assert box == (rows.min(), rows.max(), cols.min(), cols.max()) == (0, 9, 0, 11)
    assert canvas[9, 0] == canvas[8, 0] == canvas[9, 2] == canvas[1, 11] == 255
    assert canvas[7, 0] == canvas[9, 3] == canvas[1, 10] == 0  # beyond the radii


def test_a_batch_of_paper_is_each_image_painted_alone():
    from charrec.data.builtin.handwriting import paint_on_paper_batch

    masks = np.zeros((3, 32, 32), np.float32)
    masks[:, 6:26, 14:18] = 1.0
    together = paint_on_paper_batch([np.random.default_rng(seed) for seed in range(3)], masks)
    for seed in range(3):
        assert np.array_equal(together[seed], paint_on_paper(np.random.default_rng(seed),
                                                             masks[seed]))


def paint_on_paper(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """One image of `paint_on_paper_batch`."""
    return paint_on_paper_batch([rng], mask[None])[0]
