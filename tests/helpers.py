"""Helpers shared by the tests: small letter datasets drawn with Pillow (independent of
data.builtin.synth, so the core tests do not depend on the built-in generator), a CLI runner and
the check that a failure is one clear line."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from charrec import CLASSES
from charrec.cli import app

FONT_SIZE = 22

# one epoch of a tiny MLP on 16x16 images: the short runs of the disk tests
TINY_TRAIN = ("--epochs", "1", "--hidden", "8", "--norm-size", "16,16", "--batch-size", "16")

TINY_SWEEP = """\
name: tiny
base:
  data_dir: {data}
  norm-size: 16,16
  hidden: 8
  epochs: 1
  batch_size: 32
  optim: sgd
  lr: 0.05
grid:
  momentum: [0.5, 0.8, 0.9]
"""  # three one-epoch trials of a tiny MLP; format with data=<dataset folder>


def _font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def draw_letter(letter: str, rng: random.Random, size: int = 32) -> Image.Image:
    """A dark letter on a light background, slightly shifted: easy but not trivial."""
    image = Image.new("L", (size, size), color=rng.randint(200, 255))
    draw = ImageDraw.Draw(image)
    offset = (rng.randint(7, 10), rng.randint(2, 5))
    draw.text(offset, letter, fill=rng.randint(0, 60), font=_font(FONT_SIZE + rng.randint(-3, 2)))
    return image


def make_course_dataset(root: Path, per_class: int = 12, seed: int = 0,
                        fractions=(0.6, 0.2, 0.2)) -> Path:
    """root/images/*.png + train/validation/test.json with upper- and lowercase letters."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True)
    splits: dict[str, dict[str, str]] = {"train": {}, "validation": {}, "test": {}}
    for letter in CLASSES:
        for index in range(per_class):
            glyph = letter if index % 2 == 0 else letter.lower()
            name = f"{letter}_{index:03d}.png"
            draw_letter(glyph, rng).save(root / "images" / name)
            fraction = index / per_class
            split = ("train" if fraction < fractions[0] else
                     "validation" if fraction < fractions[0] + fractions[1] else "test")
            splits[split][name] = glyph
    for split, entries in splits.items():
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


def make_folder_dataset(root: Path, per_class: int = 4, seed: int = 1) -> Path:
    rng = random.Random(seed)
    for letter in CLASSES:
        folder = root / (letter if ord(letter) % 2 else letter.lower())
        folder.mkdir(parents=True)
        for index in range(per_class):
            draw_letter(letter, rng).convert("RGB").save(folder / f"{index}.jpg", quality=95)
    return root


runner = CliRunner()


def preprocess(image: Image.Image, norm_size: tuple[int, int]):
    """PIL image -> float32 tensor [H, W] in [-1, 1], as training, testing and predicting see it."""
    import torch

    from charrec.data.preprocess import image_array

    return torch.from_numpy(image_array(image, norm_size))


def count_parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def invoke(*args: object):
    """Run `charrec ARGS...` in-process (CliRunner keeps stdout and stderr apart)."""
    return runner.invoke(app, [str(arg) for arg in args])


def assert_one_line_error(result, *fragments: str) -> str:
    """Non-zero exit, no traceback, and the error is one line on stderr starting with `Error:`
    that contains every fragment (besides the `Model: ...` line with which `charrec predict` and
    `charrec test` name the model they loaded)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith("Model: ")]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
