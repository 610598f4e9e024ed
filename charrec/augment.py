"""Training-time augmentation of whole mini-batches: random affine and elastic jitter, blur, noise.

`augment_batch` takes the preprocessed batch tensor (float32 [N, H, W] in [-1, 1], light letter on
dark background) and returns a new, randomly distorted batch of the same shape, dtype, device and
range. Everything is vectorised over the batch: one `affine_grid` plus a smooth random
displacement field, one `grid_sample`, one blur convolution and one noise draw, so augmenting costs
a fraction of an MLP step. The random draws come from the caller's `torch.Generator`, so a seeded
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
BLUR_PROBABILITY = 0.3
NOISE_MAX_STD = 0.08


def augment_batch(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """images: float32 [N, H, W] in [-1, 1] (any device) -> augmented copy, same shape/dtype/range.

    Each image gets its own rotation, per-axis scale, shear, shift and elastic displacement field;
    about a third are blurred a little; all get a little pixel noise.
    """
    count, height, width = images.shape
    if count == 0:
        return images.clone()

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        draw = torch.rand(*shape, generator=generator, device=generator.device)
        return (low + (high - low) * draw).to(device=images.device, dtype=images.dtype)

    theta = _affine_matrices(count, uniform)
    grid = F.affine_grid(theta, [count, 1, height, width], align_corners=False)
    coarse = uniform(count, 2, ELASTIC_CELLS, ELASTIC_CELLS) * (ELASTIC_STRENGTH * math.sqrt(3))
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    grid = grid + field.permute(0, 2, 3, 1)
    warped = F.grid_sample(images.unsqueeze(1), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)

    # Blur a random subset: mix each image with its 3x3 box-blurred self.
    blurred = F.avg_pool2d(F.pad(warped, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    blur_weight = (uniform(count, 1, 1, 1, low=0.0, high=1.0) < BLUR_PROBABILITY).to(images.dtype)
    blur_weight = blur_weight * uniform(count, 1, 1, 1, low=0.3, high=1.0)
    warped = warped + (blurred - warped) * blur_weight

    noise_std = uniform(count, 1, 1, 1, low=0.0, high=NOISE_MAX_STD)
    noise = torch.randn(count, 1, height, width, generator=generator, device=generator.device)
    warped = warped + noise.to(device=images.device, dtype=images.dtype) * noise_std
    return warped.squeeze(1).clamp(-1.0, 1.0)


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
