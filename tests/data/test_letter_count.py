"""The several-letters count (`charrec.data.letter_count`): words are counted, single letters,
broken strokes and neighbours cut by a tight crop are not."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from charrec.data.letter_count import count_letters, several_letters_warning


def text_image(text: str, margin: int = 10, size: int = 40) -> Image.Image:
    """`text` in Pillow's built-in font, dark on light paper, `margin` pixels all round."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 230)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=font, fill=20)
    return image


@pytest.mark.parametrize(("word", "letters"), [("HELLO", 5), ("AB", 2), ("OK", 2)])
def test_a_word_is_counted_letter_by_letter(word: str, letters: int) -> None:
    assert count_letters(text_image(word)) == letters


def test_light_letters_on_dark_paper_count_the_same() -> None:
    dark = Image.eval(text_image("HELLO"), lambda value: 255 - value)
    assert count_letters(dark) == 5


@pytest.mark.parametrize("letter", ["A", "H", "M", "W", "Q", "i", "j"])
def test_one_letter_is_one(letter: str) -> None:
    assert count_letters(text_image(letter)) == 1
    assert several_letters_warning(text_image(letter)) is None


def test_an_h_drawn_with_a_gap_is_one_letter() -> None:
    image = Image.new("L", (60, 60), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(15, 8), (15, 52)], fill=0, width=4)
    draw.line([(45, 8), (45, 52)], fill=0, width=4)
    draw.line([(20, 30), (40, 30)], fill=0, width=4)  # the bar stops short of both legs
    assert count_letters(image) == 1


def test_neighbours_cut_by_a_tight_crop_are_not_a_word() -> None:
    word = text_image("ELF", margin=10)
    width, height = word.size
    crop = word.crop((width // 5, 0, width - width // 5, height))  # E and F cut by the edges
    assert count_letters(crop) == 1


def test_blank_and_speck_images_are_one() -> None:
    assert count_letters(Image.new("L", (40, 40), 128)) == 1
    speck = Image.new("L", (40, 40), 255)
    speck.putpixel((20, 20), 0)
    assert count_letters(speck) == 1


def test_the_warning_names_the_count() -> None:
    warning = several_letters_warning(text_image("HELLO"))
    assert warning is not None and warning.startswith("looks like 5 letters; charrec reads one")
