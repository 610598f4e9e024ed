"""Images for the serve tests, drawn with Pillow: a letter in any format, and hostile files."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw, ImageFont

FORMATS = ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]


def letter_image(letter: str = "L", size: int = 64) -> Image.Image:
    """A thick dark capital on white: L, T or O."""
    image = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(image)
    low, high, width = size // 6, size - size // 6, max(2, size // 10)
    shapes = {"L": [(low, low), (low, high), (high, high)],
              "T": [(low, low), (high, low), ((low + high) // 2, low), ((low + high) // 2, high)]}
    if letter == "O":
        draw.ellipse((low, low, high, high), outline=0, width=width)
    else:
        draw.line(shapes[letter], fill=0, width=width, joint="curve")
    return image


def word_image(text: str = "ABC") -> Image.Image:
    """Several letters in a row: predict warns that it reads one per image."""
    image = Image.new("L", (80 * len(text), 80), 255)
    ImageDraw.Draw(image).text((40 * len(text), 40), text, fill=0, anchor="mm",
                               font=ImageFont.load_default(size=60))
    return image


def encoded(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB" if format == "JPEG" else image.mode).save(buffer, format=format)
    return buffer.getvalue()


def png_bomb(side: int = 100_000) -> bytes:
    """A valid PNG header declaring side x side gray pixels (10 gigapixels by default), with a
    few bytes of data: decoding it would need all that memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))
