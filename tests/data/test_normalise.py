"""`normalise`, the batched half of preprocessing: bit for bit the plain formula it is a faster
form of, on random, flat, two-tone and real-looking images and on image files of every odd
format, for numpy arrays (ONNX Runtime) and torch tensors (training) alike, and it leaves its
input alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from charrec.data.preprocess import image_array, load_array, load_gray, normalise, resize_gray
from tests.data.test_bad_images import UNUSUAL_FILES


def reference(pixels: torch.Tensor) -> torch.Tensor:
    """The plain formula: stretch each image to [0, 1], invert it when the median of its outer
    ring (1/8 of each side) is above its mean, map to [-1, 1]."""
    values = pixels.to(torch.float32)
    low = values.amin(dim=(1, 2), keepdim=True)
    high = values.amax(dim=(1, 2), keepdim=True)
    values = (values - low) / (high - low).clamp_min(1.0)
    height, width = values.shape[1:]
    rows, cols = max(1, height // 8), max(1, width // 8)
    mask = torch.ones(height, width, dtype=torch.bool)
    mask[rows:height - rows, cols:width - cols] = False
    ring_median = values[:, mask].median(dim=1).values
    invert = ring_median > values.mean(dim=(1, 2))
    values = torch.where(invert.view(-1, 1, 1), 1.0 - values, values)
    return values * 2.0 - 1.0


def letter_like(generator: torch.Generator, count: int) -> torch.Tensor:
    """Dark or light bars on a noisy background of random tone."""
    background = torch.randint(0, 256, (count, 1, 1), generator=generator)
    ink = torch.randint(0, 256, (count, 1, 1), generator=generator)
    images = background + torch.randint(-12, 13, (count, 32, 32), generator=generator)
    images[:, 6:26, 12:18] = ink
    return images.clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("case", ["random", "narrow range", "flat", "two tones", "tiny",
                                  "odd size", "letters"])
def test_normalise_is_the_plain_formula_bit_for_bit(case):
    generator = torch.Generator().manual_seed(0)
    pixels = {
        "random": lambda: torch.randint(0, 256, (2000, 32, 32), generator=generator),
        "narrow range": lambda: torch.randint(100, 103, (2000, 32, 32), generator=generator),
        "flat": lambda: torch.full((5, 32, 32), 77),
        "two tones": lambda: torch.randint(0, 2, (2000, 32, 32), generator=generator) * 255,
        "tiny": lambda: torch.randint(0, 256, (500, 1, 3), generator=generator),
        "odd size": lambda: torch.randint(0, 256, (500, 20, 27), generator=generator),
        "letters": lambda: letter_like(generator, 2000),
    }[case]().to(torch.uint8)
    before = pixels.clone()
    result = normalise(pixels)
    assert result.dtype == torch.float32 and result.shape == pixels.shape
    assert torch.equal(result, reference(pixels))
    assert torch.equal(pixels, before)


def test_normalise_never_changes_a_float_input():
    pixels = torch.rand(4, 8, 8) * 255
    before = pixels.clone()
    normalise(pixels)
    assert torch.equal(pixels, before)


def test_numpy_arrays_and_torch_tensors_give_the_same_values():
    """One definition: `normalise` computes with numpy; a tensor in gives the same values out
    as a tensor (training), an array gives an array (ONNX Runtime, without torch)."""
    generator = torch.Generator().manual_seed(1)
    pixels = letter_like(generator, 500)
    from_array = normalise(pixels.numpy())
    assert isinstance(from_array, np.ndarray) and from_array.dtype == np.float32
    assert np.array_equal(from_array, normalise(pixels).numpy())
    assert np.array_equal(from_array, reference(pixels).numpy())


@pytest.mark.parametrize("kind", list(UNUSUAL_FILES))
def test_files_preprocess_as_the_plain_formula(tmp_path, kind):
    """From the file to the network's input, odd formats included: `load_array` (numpy) is the
    torch formula applied to the same decoded pixels, to the bit."""
    path = UNUSUAL_FILES[kind](tmp_path)
    gray = torch.from_numpy(load_gray(path, (32, 32)))[None]
    assert np.array_equal(load_array(path, (32, 32)), reference(gray)[0].numpy())


def test_photo_like_images_preprocess_as_the_plain_formula():
    """Noisy photos of letters of either polarity, many sizes, resized by Pillow."""
    rng = np.random.default_rng(4)
    for index in range(60):
        width, height = rng.integers(12, 120, size=2)
        background, ink = rng.integers(0, 256, size=2)
        pixels = np.clip(rng.normal(background, 20, (height, width)), 0, 255)
        pixels[height // 5: 4 * height // 5, width // 3: width // 2] = ink
        image = Image.fromarray(pixels.astype(np.uint8), "L").convert(
            ["RGB", "L", "RGBA", "P"][index % 4])
        gray = torch.from_numpy(resize_gray(image, (32, 32)))[None]
        assert np.array_equal(image_array(image, (32, 32)), reference(gray)[0].numpy())
