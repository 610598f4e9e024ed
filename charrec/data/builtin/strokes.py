"""The built-in stroke font: letter skeletons drawn with a pen, for pen-written built-in letters.

`STROKES` maps each letter (A-Z, a-z) to its skeleton: polylines in a unit box (x 0..1, y 0 at
the cap line .. 1 at the base line). `stroke_glyph` draws one with a random pen (width, slant,
jitter, rounded corners), as `charrec.data.builtin.fonts.glyph` draws a font's letter; more skeleton
variants per capital live in `charrec.data.builtin.handwriting`. Nothing here renders whole images.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from charrec.data.builtin.fonts import GLYPH_PIXELS


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float,
         steps: int = 10) -> list[tuple[float, float]]:
    """Points on an elliptic arc; angles in degrees, 0 = right, 90 = up (y grows downwards)."""
    angles = np.radians(np.linspace(start, end, steps))
    return [(cx + rx * float(np.cos(a)), cy - ry * float(np.sin(a))) for a in angles]


def _stroke_skeletons() -> dict[str, list[list[tuple[float, float]]]]:
    """Centre lines of each letter: lists of polylines in a box, x 0..1, y 0 (cap) .. 1 (base).

    Lowercase letters sit between the x-height 0.4 and 1, with ascenders from 0 and descenders
    to 1.35. Drawn with a jittered pen of random width they look handwritten.
    """
    ring = arc(0.5, 0.7, 0.45, 0.3, 0, 360, 16)
    bowl_left = arc(0.45, 0.7, 0.45, 0.3, 0, 360, 16)
    hump = arc(0.4, 0.65, 0.4, 0.25, 170, 0)
    return {
        "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.62), (0.78, 0.62)]],
        "B": [[(0, 1), (0, 0)], [(0, 0), (0.5, 0), *arc(0.5, 0.25, 0.35, 0.25, 90, -90), (0, 0.5)],
              [(0, 0.5), (0.55, 0.5), *arc(0.55, 0.75, 0.4, 0.25, 90, -90), (0, 1)]],
        "C": [arc(0.55, 0.5, 0.5, 0.5, 50, 310, 16)],
        "D": [[(0, 0), (0, 1)], [(0, 0), (0.4, 0), *arc(0.4, 0.5, 0.55, 0.5, 90, -90), (0, 1)]],
        "E": [[(1, 0), (0, 0), (0, 1), (1, 1)], [(0, 0.5), (0.75, 0.5)]],
        "F": [[(1, 0), (0, 0), (0, 1)], [(0, 0.5), (0.75, 0.5)]],
        "G": [arc(0.55, 0.5, 0.5, 0.5, 50, 360, 16) + [(1.05, 0.5), (0.6, 0.5)]],
        "H": [[(0, 0), (0, 1)], [(1, 0), (1, 1)], [(0, 0.5), (1, 0.5)]],
        "I": [[(0.5, 0), (0.5, 1)], [(0.2, 0), (0.8, 0)], [(0.2, 1), (0.8, 1)]],
        "J": [[(0.8, 0), (0.8, 0.7), *arc(0.45, 0.7, 0.35, 0.3, 0, -180)], [(0.4, 0), (1, 0)]],
        "K": [[(0, 0), (0, 1)], [(0.9, 0), (0, 0.6)], [(0.3, 0.4), (1, 1)]],
        "L": [[(0, 0), (0, 1), (0.8, 1)]],
        "M": [[(0, 1), (0, 0), (0.5, 0.7), (1, 0), (1, 1)]],
        "N": [[(0, 1), (0, 0), (1, 1), (1, 0)]],
        "O": [arc(0.5, 0.5, 0.5, 0.5, 0, 360, 20)],
        "P": [[(0, 1), (0, 0), (0.55, 0), *arc(0.55, 0.27, 0.35, 0.27, 90, -90), (0, 0.54)]],
        "Q": [arc(0.5, 0.5, 0.5, 0.5, 0, 360, 20), [(0.6, 0.7), (1.05, 1.1)]],
        "R": [[(0, 1), (0, 0), (0.55, 0), *arc(0.55, 0.27, 0.35, 0.27, 90, -90), (0, 0.54)],
              [(0.35, 0.54), (0.95, 1)]],
        "S": [[(0.9, 0.12), (0.5, 0), (0.1, 0.2), (0.25, 0.45), (0.75, 0.55), (0.9, 0.8),
               (0.5, 1), (0.05, 0.85)]],
        "T": [[(0, 0), (1, 0)], [(0.5, 0), (0.5, 1)]],
        "U": [[(0, 0), (0, 0.6), *arc(0.5, 0.6, 0.5, 0.4, 180, 360), (1, 0)]],
        "V": [[(0, 0), (0.5, 1), (1, 0)]],
        "W": [[(0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)]],
        "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
        "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
        "Z": [[(0, 0), (1, 0), (0, 1), (1, 1)]],
        "a": [arc(0.45, 0.7, 0.4, 0.3, 0, 360, 16), [(0.85, 0.4), (0.85, 1)]],
        "b": [[(0, 0), (0, 1)], bowl_left],
        "c": [arc(0.5, 0.7, 0.45, 0.3, 45, 315, 14)],
        "d": [bowl_left, [(0.9, 0), (0.9, 1)]],
        "e": [[(0.05, 0.7), (0.95, 0.7), *arc(0.5, 0.7, 0.45, 0.3, 0, 320, 16)]],
        "f": [[*arc(0.6, 0.2, 0.25, 0.2, 30, 180), (0.35, 1)], [(0.1, 0.45), (0.7, 0.45)]],
        "g": [arc(0.45, 0.65, 0.4, 0.25, 0, 360, 16),
              [(0.85, 0.4), (0.85, 1.1), *arc(0.5, 1.1, 0.35, 0.25, 0, -150)]],
        "h": [[(0, 0), (0, 1)], [(0, 0.6), *hump, (0.8, 1)]],
        "i": [[(0.5, 0.4), (0.5, 1)], [(0.5, 0.15), (0.5, 0.17)]],
        "j": [[(0.6, 0.4), (0.6, 1.15), *arc(0.35, 1.15, 0.25, 0.2, 0, -170)],
              [(0.6, 0.15), (0.6, 0.17)]],
        "k": [[(0, 0), (0, 1)], [(0.75, 0.4), (0, 0.75)], [(0.25, 0.65), (0.8, 1)]],
        "l": [[(0.5, 0), (0.5, 1)]],
        "m": [[(0, 0.4), (0, 1)], [(0, 0.55), *arc(0.25, 0.6, 0.25, 0.2, 180, 0), (0.5, 1)],
              [(0.5, 0.6), *arc(0.75, 0.6, 0.25, 0.2, 180, 0), (1, 1)]],
        "n": [[(0, 0.4), (0, 1)], [(0, 0.6), *hump, (0.8, 1)]],
        "o": [ring],
        "p": [[(0, 0.4), (0, 1.35)], bowl_left],
        "q": [bowl_left, [(0.9, 0.4), (0.9, 1.35)]],
        "r": [[(0, 0.4), (0, 1)], [(0, 0.65), *arc(0.4, 0.65, 0.4, 0.25, 170, 60)]],
        "s": [[(0.8, 0.45), (0.5, 0.4), (0.15, 0.5), (0.3, 0.68), (0.7, 0.75), (0.85, 0.9),
               (0.5, 1), (0.1, 0.95)]],
        "t": [[(0.4, 0.1), (0.4, 0.9), (0.55, 1), (0.75, 0.95)], [(0.1, 0.4), (0.8, 0.4)]],
        "u": [[(0, 0.4), (0, 0.75), *arc(0.4, 0.75, 0.4, 0.25, 180, 360)],
              [(0.8, 0.4), (0.8, 1)]],
        "v": [[(0, 0.4), (0.5, 1), (1, 0.4)]],
        "w": [[(0, 0.4), (0.25, 1), (0.5, 0.55), (0.75, 1), (1, 0.4)]],
        "x": [[(0, 0.4), (1, 1)], [(1, 0.4), (0, 1)]],
        "y": [[(0, 0.4), (0.5, 1)], [(1, 0.4), (0.3, 1.35)]],
        "z": [[(0, 0.4), (1, 0.4), (0, 1), (1, 1)]],
    }


STROKES = _stroke_skeletons()


def smooth(points: np.ndarray, rounds: int) -> np.ndarray:
    """Chaikin corner cutting: a polyline -> a smoother one with the same end points."""
    for _ in range(rounds):
        if len(points) < 3:
            break
        # Each segment gives two points, at a quarter and three quarters of its length; the
        # first and the last of those are replaced by the polyline's own end points.
        cut = np.empty((2 * len(points) - 2, points.shape[1]))
        cut[0::2] = 0.75 * points[:-1] + 0.25 * points[1:]
        cut[1::2] = 0.25 * points[:-1] + 0.75 * points[1:]
        cut[0], cut[-1] = points[0], points[-1]
        points = cut
    return points


def stroke_glyph(rng: np.random.Generator, char: str) -> tuple[np.ndarray, int]:
    """A pen-drawn `char` (uint8 bitmap, top offset), different at every call.

    The skeleton is squeezed or stretched, slanted, its points jittered, its corners rounded,
    then drawn with a round pen of random width (thin ballpoint to thick marker).
    """
    size = GLYPH_PIXELS
    width_scale = rng.uniform(0.55, 1.0) * (0.7 if char.islower() else 0.85)
    slant = rng.normal(0, 0.15)
    jitter = rng.uniform(0.01, 0.05)
    pen = max(1, int(round(size * rng.uniform(0.03, 0.14))))
    margin = pen + size // 4
    picture = Image.new("L", (int(size * 1.6) + 2 * margin, int(size * 1.5) + 2 * margin), 0)
    draw = ImageDraw.Draw(picture)
    for stroke in STROKES[char]:
        points = np.asarray(stroke, np.float64)
        points = points + rng.normal(0, jitter, points.shape)
        points[:, 0] = points[:, 0] * width_scale + slant * (1 - points[:, 1])
        points = smooth(points, int(rng.integers(0, 3))) * size * 0.9 + margin
        coordinates = [tuple(point) for point in points.tolist()]
        if len(coordinates) > 1:
            draw.line(coordinates, fill=255, width=pen, joint="curve")
        radius = pen / 2
        for x, y in (coordinates[0], coordinates[-1]):  # round pen ends
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    bitmap = np.asarray(picture)
    rows, cols = np.nonzero(bitmap)
    cap_line = margin  # y of the skeleton's 0 line: where a capital's top sits
    return (np.ascontiguousarray(bitmap[rows.min():rows.max() + 1, cols.min():cols.max() + 1]),
            int(rows.min()) - cap_line)
