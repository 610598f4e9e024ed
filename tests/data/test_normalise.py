"""`normalise`, the batched half of preprocessing: bit for bit the plain formula it is a faster
form of, on random, flat, two-tone and real-looking images, and it leaves its input alone."""

from __future__ import annotations

import pytest
import torch

from charrec.data.preprocess import normalise


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
