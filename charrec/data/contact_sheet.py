"""Drawing a contact sheet: a grid of image tiles, each captioned with its label and file name.

Pure Pillow (no matplotlib), so the sheet's pixel size is exact and known in advance:
`columns = ceil(sqrt(n))`, each cell is `tile` pixels wide and `tile + CAPTION_HEIGHT` tall,
cells are separated (and framed) by `GAP` pixels, and a `HEADER_HEIGHT` band on top holds the
title. `contact_sheet` picks random samples of a dataset (either layout) and draws them;
`prediction_sheet` draws images a model read, wrong or doubtful ones first and framed in red.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from charrec import CLASSES
from charrec.data.loading import dataset_items
from charrec.data.preprocess import open_image
from charrec.errors import ImageError, WriteError
from charrec.files import atomic_write

GAP = 6
CAPTION_HEIGHT = 30
HEADER_HEIGHT = 26
SHEET_BACKGROUND = (255, 255, 255)
TILE_BACKGROUND = (200, 200, 200)  # mid grey: both dark-on-light and light-on-dark tiles show
LABEL_COLOUR = (0, 0, 160)
NAME_COLOUR = (90, 90, 90)
ERROR_COLOUR = (200, 0, 0)


@dataclass(frozen=True)
class Tile:
    """One cell: an image (None if it could not be read), its label and a short note; `marked`
    cells (a wrong or doubtful prediction) get a red frame and a red label."""

    image: Image.Image | None
    label: str
    note: str
    marked: bool = False


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of a sheet of `count` tiles: as square as possible."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return columns, max(1, math.ceil(count / columns))


def sheet_size(count: int, tile: int) -> tuple[int, int]:
    """(width, height) in pixels of a sheet of `count` tiles of `tile` pixels."""
    columns, rows = grid_shape(count)
    width = columns * tile + (columns + 1) * GAP
    height = HEADER_HEIGHT + rows * (tile + CAPTION_HEIGHT) + (rows + 1) * GAP
    return width, height


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, width: int,
              keep_end: bool = True) -> str:
    """`text` shortened with '…' (at the start, or the end) until it fits in `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(f"…{text}" if keep_end else f"{text}…", font=font) > width:
        text = text[1:] if keep_end else text[:-1]
    return f"…{text}" if keep_end else f"{text}…"


def _fit_image(image: Image.Image, tile: int) -> Image.Image:
    """Scale to fit a tile, keeping the aspect ratio; small images keep crisp pixels."""
    scale = tile / max(image.size)
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    return ImageOps.contain(image.convert("RGB"), (tile, tile), method=method)


def draw_contact_sheet(tiles: Sequence[Tile], title: str, tile: int = 96) -> Image.Image:
    """An RGB image of `tiles` in a grid (see `sheet_size`), with `title` on top."""
    width, height = sheet_size(len(tiles), tile)
    columns, _ = grid_shape(len(tiles))
    sheet = Image.new("RGB", (width, height), SHEET_BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    title_font, label_font, note_font = _font(15), _font(16), _font(10)
    draw.text((GAP, GAP), _fit_text(draw, title, title_font, width - 2 * GAP, keep_end=False),
              fill=(0, 0, 0), font=title_font)
    for position, cell in enumerate(tiles):
        row, column = divmod(position, columns)
        left = GAP + column * (tile + GAP)
        top = HEADER_HEIGHT + GAP + row * (tile + CAPTION_HEIGHT + GAP)
        draw.rectangle((left, top, left + tile - 1, top + tile - 1), fill=TILE_BACKGROUND)
        if cell.image is None:
            draw.line((left, top, left + tile - 1, top + tile - 1), fill=ERROR_COLOUR, width=2)
            draw.line((left, top + tile - 1, left + tile - 1, top), fill=ERROR_COLOUR, width=2)
        else:
            fitted = _fit_image(cell.image, tile)
            sheet.paste(fitted, (left + (tile - fitted.width) // 2,
                                 top + (tile - fitted.height) // 2))
        if cell.marked:
            draw.rectangle((left - 3, top - 3, left + tile + 2, top + tile + 2),
                           outline=ERROR_COLOUR, width=3)
        draw.text((left, top + tile + 1), _fit_text(draw, cell.label, label_font, tile),
                  font=label_font,
                  fill=ERROR_COLOUR if cell.image is None or cell.marked else LABEL_COLOUR)
        draw.text((left, top + tile + 18), _fit_text(draw, cell.note, note_font, tile),
                  font=note_font, fill=NAME_COLOUR)
    return sheet


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def save_contact_sheet(image: Image.Image, path: str | Path) -> Path:
    """Write the sheet as a PNG atomically (temp file + rename; a disk error: `WriteError`)."""
    data = png_bytes(image)
    return atomic_write(path, lambda handle: handle.write(data), "the contact sheet")


# ---------------------------------------------------------------------------- predictions


@dataclass(frozen=True)
class PredictedImage:
    """One image a model read: its answer and probability, the true letter if known, and the
    warning the prediction carried (if any)."""

    path: str
    predicted: str
    probability: float
    true: str | None = None
    warning: str | None = None

    @property
    def doubtful(self) -> bool:
        return (self.true is not None and self.true != self.predicted) or bool(self.warning)


@dataclass
class SheetResult:
    path: Path
    shown: int
    total: int
    unreadable: list[tuple[str, str]]  # (path, reason)


def _read(path: str | Path, load, unreadable: list[tuple[str, str]]) -> Image.Image | None:
    """`load(path)`, or None with the reason noted when the image cannot be read."""
    try:
        return load(path)
    except ImageError as error:
        unreadable.append((str(path), str(error)))
        return None


def _write(tiles: Sequence[Tile], title: str, tile: int, out: str | Path, option: str) -> Path:
    try:
        return save_contact_sheet(draw_contact_sheet(tiles, title, tile), out)
    except WriteError as error:
        raise WriteError(f"{error}; choose another {option}", error.errno) from error


def prediction_sheet(images: Sequence[PredictedImage], out: str | Path, title: str,
                     n: int = 64, tile: int = 96) -> SheetResult:
    """A contact sheet of up to `n` images as stored, each captioned with the predicted letter and
    its probability (and the true letter): wrong or doubtful ones first, framed in red."""
    chosen = sorted(images, key=lambda image: not image.doubtful)[:n]
    tiles, unreadable = [], []
    for image in chosen:
        picture = _read(image.path, open_image, unreadable)
        label = f"{image.predicted} {100 * image.probability:.0f}%"
        truth = f"true {image.true} " if image.true is not None else ""
        tiles.append(Tile(picture, label, truth + Path(image.path).name, image.doubtful))
    n_marked = sum(image.doubtful for image in images)
    full_title = f"{title}: {len(chosen)} of {len(images)} images, {n_marked} marked red"
    path = _write(tiles, full_title, tile, out, "--sheet path")
    return SheetResult(path, len(chosen), len(images), unreadable)


# ------------------------------------------------------------------------------- datasets


def contact_sheet(data_dir: str | Path, out: str | Path, split: str | None = None,
                  n: int = 64, seed: int = 0, preprocessed: bool = False,
                  norm_size: tuple[int, int] = (32, 32), tile: int = 96) -> SheetResult:
    """Draw `n` random images of a dataset (sorted by letter) with their labels into a PNG.

    `preprocessed` shows what the network sees (`charrec.data.preprocess.load_image`, [-1, 1] mapped
    to black..white) instead of the files as they are.
    """
    items = dataset_items(data_dir, split, seed)
    chosen = random.Random(seed).sample(items, min(n, len(items)))
    chosen.sort(key=lambda item: (item[1], str(item[0])))
    tiles, unreadable = [], []
    for path, index, split_name in chosen:
        note = f"{split_name[:5]} {path.name}" if split is None and split_name else path.name
        image = _read(path, (lambda path: _network_view(path, norm_size)) if preprocessed
                      else open_image, unreadable)
        tiles.append(Tile(image, CLASSES[index], note))
    view = (f"as the network sees them ({norm_size[0]}x{norm_size[1]})" if preprocessed
            else "as stored")
    title = (f"{data_dir} [{split or 'all splits'}]: {len(chosen)} of {len(items)} images, "
             f"{view}, seed {seed}")
    path = _write(tiles, title, tile, out, "--out")
    return SheetResult(path, len(chosen), len(items), unreadable)


def _network_view(path: Path, norm_size: tuple[int, int]) -> Image.Image:
    import torch

    from charrec.data.preprocess import load_image

    values = load_image(path, norm_size)
    pixels = ((values + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    height, width = norm_size
    return Image.frombytes("L", (width, height), bytes(pixels.flatten().tolist()))
