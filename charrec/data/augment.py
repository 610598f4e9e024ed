"""Training-time augmentation of whole mini-batches: random affine and elastic jitter, pixel noise.

`augment_batch` takes the preprocessed batch tensor (float32 [N, H, W] in [-1, 1], light letter on
dark background) and returns a new, randomly distorted batch of the same shape, dtype, device and
range. Everything is vectorised over the batch: one draw of every image's parameters, one matrix
product for the sampling grid (affine map plus a smooth random displacement field), one
`grid_sample` and one noise draw, so augmenting costs a fraction of an MLP step. The random
draws come from the caller's `torch.Generator`, so a seeded run is repeatable. Torch's built-in
data ops are fine here: only the model and the loss have to be charrec's own autograd Functions.
"""

from __future__ import annotations

import functools
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
    All per-image numbers come from one draw, and the constant grids are cached: on a 64-image
    batch of 32x32 the fixed cost of many small torch calls was most of the time.
    """
    count, height, width = images.shape
    if count == 0:
        return images.clone()
    cells = ELASTIC_CELLS
    draws = torch.rand(count, PARAMETERS + cells * cells * 2, generator=generator,
                       device=generator.device).to(device=images.device, dtype=images.dtype)
    theta = _affine_matrices(draws[:, :PARAMETERS] * 2 - 1)  # [N, 2, 3]
    coarse = (draws[:, PARAMETERS:] * 2 - 1).view(count, cells * cells, 2) * \
        (ELASTIC_STRENGTH * math.sqrt(3))
    # Sampling grid = affine map of the output pixel centres + a smooth displacement field
    # interpolated from the coarse one: for all images at once, one matrix product
    # [H*W, 3 + cells^2] @ [3 + cells^2, N*2] (batched or broadcast products, and adding a
    # permuted tensor, each cost more than the whole product).
    per_image = torch.cat([theta.transpose(1, 2), coarse], dim=1)  # [N, 3 + cells^2, 2]
    grid = _grid_basis(height, width, images.device, images.dtype) @ \
        per_image.permute(1, 0, 2).reshape(-1, count * 2)
    grid = grid.view(height, width, count, 2).permute(2, 0, 1, 3)
    warped = F.grid_sample(images.unsqueeze(1), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    # uniform pixel noise of std draws[:, NOISE] * NOISE_MAX_STD (uniform: cheaper than normal)
    noise = torch.rand(count, 1, height, width, generator=generator, device=generator.device)
    noise_scale = (draws[:, NOISE] * (NOISE_MAX_STD * math.sqrt(12))).view(count, 1, 1, 1)
    warped = warped + (noise.to(device=images.device, dtype=images.dtype) - 0.5) * noise_scale
    return warped.squeeze(1).clamp(-1.0, 1.0)


# columns of the per-image draws (all uniform in [0, 1), then the elastic field's coarse grid)
ANGLE, SCALE_X, SCALE_Y, SHEAR, SHIFT_X, SHIFT_Y, NOISE = range(7)
PARAMETERS = 7


@functools.lru_cache(maxsize=16)
def _grid_basis(height: int, width: int, device: torch.device, dtype: torch.dtype
                ) -> torch.Tensor:
    """[H*W, 3 + cells^2], cached per image size: each output pixel's centre as homogeneous
    (x, y, 1) in grid_sample's [-1, 1] (for the affine map), then its interpolation weights of
    the coarse elastic grid (smooth, Gaussian: far cheaper than F.interpolate(mode="bicubic"))."""
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([grid_x, grid_y, torch.ones_like(grid_x)], dim=-1).view(-1, 3)
    rows = _upsampling_matrix(height, device, dtype)  # [H, cells]
    cols = _upsampling_matrix(width, device, dtype)  # [W, cells]
    weights = (rows[:, None, :, None] * cols[None, :, None, :]).reshape(height * width, -1)
    return torch.cat([centres, weights], dim=1)


def _upsampling_matrix(size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[size, ELASTIC_CELLS] weights that interpolate a coarse grid smoothly (Gaussian, rows sum
    to 1): a matrix product is much cheaper than F.interpolate(mode="bicubic") on small images."""
    points = torch.linspace(-1, 1, size, device=device, dtype=dtype)
    centres = torch.linspace(-1, 1, ELASTIC_CELLS, device=device, dtype=dtype)
    weights = torch.exp(-((points[:, None] - centres[None, :]) * (ELASTIC_CELLS - 1) / 2) ** 2)
    return weights / weights.sum(dim=1, keepdim=True)


def _affine_matrices(signed: torch.Tensor) -> torch.Tensor:
    """[N, 2, 3] output->input maps from per-image draws in [-1, 1): rotation, per-axis scale,
    shear and shift."""
    angle = signed[:, ANGLE] * math.radians(MAX_ROTATION_DEGREES)
    low, high = SCALE_RANGE
    scale_x = low + (high - low) * (signed[:, SCALE_X] + 1) / 2
    scale_y = low + (high - low) * (signed[:, SCALE_Y] + 1) / 2
    shear = signed[:, SHEAR] * MAX_SHEAR
    cos, sin = torch.cos(angle), torch.sin(angle)
    # rotation @ shear @ 1/scale: sampling coordinates, so dividing by scale enlarges the letter
    shift_x, shift_y = signed[:, SHIFT_X] * MAX_SHIFT, signed[:, SHIFT_Y] * MAX_SHIFT
    return torch.stack([cos / scale_x, (cos * shear - sin) / scale_y, shift_x,
                        sin / scale_x, (sin * shear + cos) / scale_y, shift_y],
                       dim=1).view(-1, 2, 3)
