"""Training-time augmentation of whole mini-batches: random affine and elastic jitter, pixel noise.

`augment_batch` takes the preprocessed batch tensor (float32 [N, H, W] in [-1, 1], light letter on
dark background) and returns a new, randomly distorted batch of the same shape, dtype, device and
range. Everything is vectorised over the batch: a sampling grid (affine map plus a smooth random
displacement field, two einsums), one `grid_sample` and one noise draw, so augmenting costs a
fraction of an MLP step. The random draws come from the caller's `torch.Generator`, so a seeded
run is repeatable. Torch's built-in data ops are fine here: only the model and the loss have to be
charrec's own autograd Functions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.85, 1.12)  # per axis, so the aspect ratio changes too
MAX_SHEAR = 0.2
MAX_SHIFT = 0.1  # fraction of the image half-width
ELASTIC_STRENGTH = 0.04  # displacement std, in the [-1, 1] grid coordinates of grid_sample
ELASTIC_CELLS = 4  # the displacement field is drawn on a 4x4 grid, then smoothly upsampled
NOISE_MAX_STD = 0.08


def augment_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """images: float32 [N, H, W] in [-1, 1] (any device) -> augmented copy, same shape/dtype/range.

    Each image gets its own rotation, per-axis scale, shear, shift, elastic displacement field
    and pixel-noise level. (Blur, contrast and colour vary in the generated images already.)
    """
    count, height, width = images.shape
    if count == 0:
        return images.clone()

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        draw = torch.rand(*shape, generator=generator, device=generator.device)
        return (low + (high - low) * draw).to(device=images.device, dtype=images.dtype)

    theta = _affine_matrices(count, uniform)
    coarse = uniform(count, ELASTIC_CELLS, ELASTIC_CELLS, 2) * (ELASTIC_STRENGTH * math.sqrt(3))
    rows = _upsampling_matrix(height, images.device, images.dtype)
    cols = _upsampling_matrix(width, images.device, images.dtype)
    # Sampling grid = affine map of the output pixel centres + a smooth displacement field.
    # (einsum: F.affine_grid and bmm take ~10x longer on small CPU batches.)
    grid = torch.einsum("hwk,njk->nhwj", _pixel_centres(height, width, images), theta) + \
        torch.einsum("hk,nklc,wl->nhwc", rows, coarse, cols)
    warped = F.grid_sample(images.unsqueeze(1), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)

    noise_std = uniform(count, 1, 1, 1, low=0.0, high=NOISE_MAX_STD)
    noise = torch.randn(count, 1, height, width, generator=generator, device=generator.device)
    warped = warped + noise.to(device=images.device, dtype=images.dtype) * noise_std
    return warped.squeeze(1).clamp(-1.0, 1.0)


def _pixel_centres(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] homogeneous (x, y, 1) coordinates of pixel centres in grid_sample's [-1, 1]."""
    ys = (torch.arange(height, device=like.device, dtype=like.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=like.device, dtype=like.dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1)


def _upsampling_matrix(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[size, ELASTIC_CELLS] weights that interpolate a coarse grid smoothly (Gaussian, rows sum
    to 1): a matrix product is much cheaper than F.interpolate(mode="bicubic") on small images."""
    points = torch.linspace(-1, 1, size, device=device, dtype=dtype)
    centres = torch.linspace(-1, 1, ELASTIC_CELLS, device=device, dtype=dtype)
    weights = torch.exp(-((points[:, None] - centres[None, :]) * (ELASTIC_CELLS - 1) / 2) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def _affine_matrices(count: int, uniform) -> torch.Tensor:
    """[N, 2, 3] output->input maps: rotation, per-axis scale, shear and shift."""
    angle = uniform(count) * math.radians(MAX_ROTATION_DEGREES)
    scale_x = uniform(count, low=SCALE_RANGE[0], high=SCALE_RANGE[1])
    scale_y = uniform(count, low=SCALE_RANGE[0], high=SCALE_RANGE[1])
    shear = uniform(count) * MAX_SHEAR
    cos, sin = torch.cos(angle), torch.sin(angle)
    # rotation @ shear @ 1/scale: sampling coordinates, so dividing by scale enlarges the letter
    theta = torch.zeros(count, 2, 3, dtype=angle.dtype, device=angle.device)
    theta[:, 0, 0] = cos / scale_x
    theta[:, 0, 1] = (cos * shear - sin) / scale_y
    theta[:, 1, 0] = sin / scale_x
    theta[:, 1, 1] = (sin * shear + cos) / scale_y
    theta[:, :, 2] = uniform(count, 2) * MAX_SHIFT
    return theta
