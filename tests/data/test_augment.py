"""Batch augmentation: contract (shape, dtype, range, device), determinism, and that it distorts."""

from __future__ import annotations

import pytest
import torch

from charrec.data.augment import augment_batch


def _letters(count: int = 16, size: int = 32) -> torch.Tensor:
    """Light bars and boxes on a dark background, like preprocessed letters."""
    images = -torch.ones(count, size, size)
    for index in range(count):
        left = 4 + index % 8
        images[index, 6:26, left:left + 4] = 1.0  # a vertical stroke
        images[index, 6:10, 8:24] = 1.0  # a horizontal stroke
    return images


def test_keeps_shape_dtype_range_and_leaves_the_input_alone():
    images = _letters()
    original = images.clone()
    augmented = augment_batch(images, torch.Generator().manual_seed(0))
    assert augmented.shape == images.shape and augmented.dtype == torch.float32
    assert augmented.min() >= -1.0 and augmented.max() <= 1.0
    assert torch.equal(images, original)


@pytest.mark.parametrize("shape", [(1, 32, 32), (5, 20, 28), (3, 8, 8)])
def test_any_batch_and_image_size(shape):
    augmented = augment_batch(torch.rand(shape) * 2 - 1, torch.Generator().manual_seed(1))
    assert augmented.shape == shape


def test_empty_batch():
    assert augment_batch(torch.empty(0, 32, 32), torch.Generator()).shape == (0, 32, 32)


def test_same_generator_state_gives_the_same_batch():
    images = _letters()
    first = augment_batch(images, torch.Generator().manual_seed(42))
    second = augment_batch(images, torch.Generator().manual_seed(42))
    third = augment_batch(images, torch.Generator().manual_seed(43))
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def test_changes_every_image_but_keeps_the_letter():
    images = _letters(64)
    augmented = augment_batch(images, torch.Generator().manual_seed(3))
    change = (augmented - images).abs().flatten(1).mean(dim=1)
    assert (change > 0.01).all()  # every image distorted
    # ...but still mostly the same picture: the bright strokes overlap their old place
    overlap = ((augmented > 0) & (images > 0)).flatten(1).sum(1) / (images > 0).flatten(1).sum(1)
    assert overlap.median() > 0.5
    # and images differ from each other in how they were moved
    shifts = (augmented - images).flatten(1)
    assert not torch.allclose(shifts[0], shifts[1])


def test_generator_advances_so_epochs_differ():
    images = _letters()
    generator = torch.Generator().manual_seed(0)
    assert not torch.equal(augment_batch(images, generator), augment_batch(images, generator))
