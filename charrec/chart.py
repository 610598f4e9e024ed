"""Line charts drawn with Pillow: panels of lines over a shared x (epochs), with axes, ticks,
grid, legend and titles, written as one PNG.

Why not matplotlib: importing it and drawing two panels cost as much as many epochs of the
course MLP (docs/benchmarks.md); this takes a few milliseconds. What to plot lives in
`charrec.report`; this module only draws.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")  # the first series' colours as usual
SCALE = 2  # drawn at twice the size and shrunk: smooth lines and text
PANEL_SIZE = (540, 400)  # pixels of one panel in the written image
MARGINS = (62, 34, 16, 48)  # left, top, right, bottom of a panel's plot area


@dataclass(frozen=True)
class Series:
    label: str
    x: Sequence[float]
    y: Sequence[float]


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    ylim: tuple[float, float] | None = None  # None: fitted to the data


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) covering [low, high]."""
    if not high > low:
        return [low]
    raw = (high - low) / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= raw)
    first = math.ceil(low / step - 1e-9)
    return [round(index * step, 12) for index in range(first, int(math.floor(high / step
                                                                              + 1e-9)) + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.1e}"


def _finite(series: Series) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in zip(series.x, series.y, strict=True)
            if y is not None and math.isfinite(y)]


def _limits(panel: Panel) -> tuple[float, float, float, float]:
    points = [point for series in panel.series for point in _finite(series)]
    xs, ys = [x for x, _ in points] or [0.0, 1.0], [y for _, y in points] or [0.0, 1.0]
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if panel.ylim is not None:
        y_low, y_high = panel.ylim
    else:
        y_low, y_high = min(ys), max(ys)
        pad = (y_high - y_low) * 0.05 or abs(y_high) * 0.05 or 1.0
        y_low, y_high = y_low - pad, y_high + pad
    return x_low, x_high, y_low, y_high


def _draw_panel(image, panel: Panel, left: int, fonts) -> None:
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(image)
    font, title_font = fonts
    width, height = (size * SCALE for size in PANEL_SIZE)
    m_left, m_top, m_right, m_bottom = (margin * SCALE for margin in MARGINS)
    x0, y0, x1, y1 = left + m_left, m_top, left + width - m_right, height - m_bottom
    x_low, x_high, y_low, y_high = _limits(panel)

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return (x0 + (x - x_low) / (x_high - x_low) * (x1 - x0),
                y1 - (y - y_low) / (y_high - y_low) * (y1 - y0))

    grid, ink = (225, 225, 225), (40, 40, 40)
    x_ticks = [tick for tick in nice_ticks(x_low, x_high) if x_low <= tick <= x_high]
    y_ticks = [tick for tick in nice_ticks(y_low, y_high) if y_low <= tick <= y_high]
    for tick in x_ticks:
        px, _ = to_pixel(tick, y_low)
        draw.line([(px, y0), (px, y1)], fill=grid, width=SCALE)
        draw.line([(px, y1), (px, y1 + 4 * SCALE)], fill=ink, width=SCALE)
        draw.text((px, y1 + 6 * SCALE), _label(tick), fill=ink, font=font, anchor="mt")
    for tick in y_ticks:
        _, py = to_pixel(x_low, tick)
        draw.line([(x0, py), (x1, py)], fill=grid, width=SCALE)
        draw.line([(x0 - 4 * SCALE, py), (x0, py)], fill=ink, width=SCALE)
        draw.text((x0 - 6 * SCALE, py), _label(tick), fill=ink, font=font, anchor="rm")
    draw.rectangle([x0, y0, x1, y1], outline=ink, width=SCALE)
    draw.text(((x0 + x1) / 2, y0 - 8 * SCALE), panel.title, fill=ink, font=title_font,
              anchor="ms")
    draw.text(((x0 + x1) / 2, height - 6 * SCALE), panel.xlabel, fill=ink, font=font,
              anchor="md")
    text_box = font.getbbox(panel.ylabel)
    ylabel = Image.new("RGBA", (text_box[2] + 4, text_box[3] + 4), (255, 255, 255, 0))
    ImageDraw.Draw(ylabel).text((2, 2), panel.ylabel, fill=ink, font=font)
    ylabel = ylabel.rotate(90, expand=True)
    image.paste(ylabel, (left + 4 * SCALE, int((y0 + y1 - ylabel.height) / 2)), ylabel)

    lines = [(colour, series, [to_pixel(x, y) for x, y in _finite(series)])
             for colour, series in zip(COLOURS, panel.series, strict=False)]
    for colour, _, points in lines:
        if len(points) > 1:
            draw.line(points, fill=colour, width=2 * SCALE, joint="curve")
        for px, py in points if len(points) == 1 else []:
            draw.ellipse([px - 3 * SCALE, py - 3 * SCALE, px + 3 * SCALE, py + 3 * SCALE],
                         fill=colour)
    _draw_legend(draw, lines, (x0, y0, x1, y1), font)


def _draw_legend(draw, lines, area: tuple[float, float, float, float], font) -> None:
    """A boxed legend in the right-hand corner (upper or lower) that the lines cross least."""
    x0, y0, x1, y1 = area
    row, pad = 18 * SCALE, 6 * SCALE
    text_width = max(font.getlength(series.label) for _, series, _ in lines)
    box_width, box_height = text_width + 34 * SCALE + 2 * pad, row * len(lines) + pad
    right = x1 - 6 * SCALE
    corners = (y0 + 6 * SCALE, y1 - 6 * SCALE - box_height)

    def crossings(top: float) -> int:
        return sum(right - box_width <= px <= right and top <= py <= top + box_height
                   for _, _, points in lines for px, py in points)

    top = min(corners, key=crossings)
    draw.rectangle([right - box_width, top, right, top + box_height], fill="white",
                   outline=(200, 200, 200), width=SCALE)
    for index, (colour, series, _) in enumerate(lines):
        y = top + pad / 2 + row * (index + 0.5)
        draw.line([(right - box_width + pad, y), (right - box_width + pad + 24 * SCALE, y)],
                  fill=colour, width=2 * SCALE)
        draw.text((right - box_width + pad + 30 * SCALE, y), series.label, fill=(40, 40, 40),
                  font=font, anchor="lm")


def render(panels: Sequence[Panel], title: str = "") -> bytes:
    """The panels side by side (and `title` above them) as PNG bytes."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = (ImageFont.load_default(size=12 * SCALE), ImageFont.load_default(size=14 * SCALE))
    top = 30 * SCALE if title else 0
    width, height = PANEL_SIZE[0] * SCALE * len(panels), PANEL_SIZE[1] * SCALE
    canvas = Image.new("RGB", (width, height + top), "white")
    body = Image.new("RGB", (width, height), "white")
    for index, panel in enumerate(panels):
        _draw_panel(body, panel, index * PANEL_SIZE[0] * SCALE, fonts)
    canvas.paste(body, (0, top))
    if title:
        ImageDraw.Draw(canvas).text((width / 2, top - 6 * SCALE), title, fill=(20, 20, 20),
                                    font=fonts[1], anchor="ms")
    canvas = canvas.resize((canvas.width // SCALE, canvas.height // SCALE),
                           Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def save_chart(panels: Sequence[Panel], path: str | Path, title: str = "",
               what: str = "the chart") -> Path:
    """`render` written atomically to `path` (a disk error: `WriteError` naming `what`)."""
    from charrec.files import atomic_write

    data = render(panels, title)
    return atomic_write(path, lambda handle: handle.write(data), what)
