"""Convolutional network pieces on our own autograd: Conv2d, MaxPool2d, Flatten and the `CNN`.

Notation as in `charrec.nn.functions`: `g` is dL/d(output), `x` the input [B, C, H, W], `W` the
filters [O, C, kh, kw], `b` the bias [O]. A convolution with 'same' padding and stride 1 is a
matrix product once every kh x kw patch of x is laid out as a column ("im2col", built from
`Tensor.unfold`; the same layout as `F.unfold`):

    X = im2col(x)                 [B, C*kh*kw, H*W]   one column per output pixel
    y = W2 X + b                  [B, O, H*W]         W2 = W viewed as [O, C*kh*kw]

so its backward is the Linear backward applied per pixel, and the input gradient is the columns'
gradient added back onto the pixels they were cut from ("col2im", the adjoint of im2col, what
`F.fold` does):

    dL/dW2 = sum over batch and pixels of g X^T,   dL/db = g summed over batch and pixels,
    dL/dX  = W2^T g,                               dL/dx = col2im(dL/dX).

A CNN is `[Conv2d -> activation -> MaxPool2d 2x2/2] * n -> Flatten -> Linear` (charrec's own
`Linear`); `build_cnn(config, n_classes)` makes one from `--conv 5x5x20,3x3x30`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

from charrec.errors import ConfigError
from charrec.nn.model import Activation, Linear, initialisation_for

if TYPE_CHECKING:
    from charrec.config import TrainConfig

POOL_SIZE = 2


def im2col(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Every kh x kw patch of x ('same' zero padding) as a column: [B, C*kh*kw, H*W], the
    layout of `F.unfold`. `Tensor.unfold` gives the patches as a view of the padded image
    [B, C, H, W, kh, kw]; one reshape copies them into place (several times faster than
    `F.unfold` on CPU)."""
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = kernel
    padded = F.pad(x, (kernel_w // 2, kernel_w // 2, kernel_h // 2, kernel_h // 2))
    patches = padded.unfold(2, kernel_h, 1).unfold(3, kernel_w, 1)
    return patches.permute(0, 1, 4, 5, 2, 3).reshape(batch, channels * kernel_h * kernel_w,
                                                     height * width)


def col2im(columns: torch.Tensor, image_shape: torch.Size, kernel: tuple[int, int]
           ) -> torch.Tensor:
    """The adjoint of `im2col` (what `F.fold` does): each column entry is added back onto the
    pixel it was cut from. One slice-add per kernel offset (dy, dx)."""
    batch, channels, height, width = image_shape
    kernel_h, kernel_w = kernel
    per_offset = columns.view(batch, channels, kernel_h, kernel_w, height, width)
    padded = columns.new_zeros(batch, channels, height + kernel_h - 1, width + kernel_w - 1)
    for dy in range(kernel_h):
        for dx in range(kernel_w):
            padded[:, :, dy:dy + height, dx:dx + width] += per_offset[:, :, dy, dx]
    top, left = kernel_h // 2, kernel_w // 2
    return padded[:, :, top:top + height, left:left + width]


class Conv2dFunction(Function):
    """2-D convolution (cross-correlation, as in torch), stride 1, 'same' zero padding for odd
    kernels: y[b, o] = sum_c W[o, c] * x[b, c] + b[o], output H x W like the input.

    Forward with columns X = im2col(x) [B, C*kh*kw, H*W] and W2 = W.view(O, -1):
        y = W2 X + b
    Backward:
        dL/dW = sum_b g_b X_b^T   (viewed back as [O, C, kh, kw])
        dL/db = sum of g over batch, rows and columns
        dL/dx = col2im(W2^T g)    (each column's gradient added back where it was cut from)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        batch, _, height, width = x.shape
        out_channels, _, kernel_h, kernel_w = weight.shape
        columns = im2col(x, (kernel_h, kernel_w))  # [B, C*kh*kw, H*W]
        # one W2 per image as a stride-0 view: bmm reads `columns` in place (no transposed copy)
        weight_matrix = weight.reshape(out_channels, -1).expand(batch, -1, -1)
        y = torch.bmm(weight_matrix, columns)  # [B, O, H*W]
        if bias is not None:
            y += bias.view(1, -1, 1)  # y is a fresh tensor: adding in place saves a copy
        ctx.save_for_backward(columns, weight)
        ctx.has_bias, ctx.input_shape = bias is not None, x.shape
        return y.view(batch, out_channels, height, width)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        columns, weight = ctx.saved_tensors
        out_channels, _, kernel_h, kernel_w = weight.shape
        g_matrix = g.reshape(g.shape[0], out_channels, -1)  # [B, O, H*W]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            weight_t = weight.reshape(out_channels, -1).t().contiguous()  # W2^T [C*kh*kw, O]
            grad_columns = torch.bmm(weight_t.expand(g.shape[0], -1, -1), g_matrix)
            grad_x = col2im(grad_columns, ctx.input_shape, (kernel_h, kernel_w))
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(g_matrix, columns.transpose(1, 2)).sum(dim=0).view_as(weight)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = g_matrix.sum(dim=(0, 2))
        return grad_x, grad_weight, grad_bias


class MaxPool2dFunction(Function):
    """Max over non-overlapping k x k windows (stride k); rows/columns past the last whole
    window are dropped, as `F.max_pool2d` does.

    Forward:   y[b, c, i, j] = max over the window (i, j) of x, remembering where the max was.
    Backward:  dL/dx = g at the position of each window's maximum, 0 everywhere else.

    The window is reduced in two steps on a view of x (no copy): the max down each column of
    the window (`row` says which row won), then the max across those (`column` says which
    column won). The winner's position in the H x W plane, (i k + row) W + j k + column, is
    saved, so backward is a single scatter of g into zeros: each window's gradient lands on
    exactly one position.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int = POOL_SIZE):
        batch, channels, height, width = x.shape
        out_h, out_w = height // size, width // size
        windows = x[:, :, :out_h * size, :out_w * size].reshape(
            batch, channels, out_h, size, out_w, size)
        column_max, row = windows.max(dim=3)  # [B, C, out_h, out_w, k]: best row per column
        y, column = column_max.max(dim=4)  # [B, C, out_h, out_w]: best column
        row = row.gather(4, column.unsqueeze(4)).squeeze(4)  # the row of the winning column
        window_top = torch.arange(out_h, device=x.device).view(out_h, 1) * size
        window_left = torch.arange(out_w, device=x.device) * size
        where = (window_top + row) * width + window_left + column  # flat index into H x W
        ctx.save_for_backward(where)
        ctx.input_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (where,) = ctx.saved_tensors
        batch, channels, height, width = ctx.input_shape
        grad_x = g.new_zeros(batch, channels, height * width)
        grad_x.scatter_(2, where.view(batch, channels, -1), g.reshape(batch, channels, -1))
        return grad_x.view(batch, channels, height, width), None


class FlattenFunction(Function):
    """[B, C, H, W] -> [B, C*H*W] (row-major).   Backward: dL/dx = g reshaped to x's shape."""

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        ctx.input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        return g.reshape(ctx.input_shape)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
           ) -> torch.Tensor:
    return Conv2dFunction.apply(x, weight, bias)


def max_pool2d(x: torch.Tensor, size: int = POOL_SIZE) -> torch.Tensor:
    return MaxPool2dFunction.apply(x, size)


def flatten(x: torch.Tensor) -> torch.Tensor:
    return FlattenFunction.apply(x)


# ------------------------------------------------------------------------------------ modules


class Conv2d(nn.Module):
    """'same'-padded stride-1 convolution with filters W [O, C, kh, kw] (odd kh, kw) and bias [O].

    init as for `charrec.nn.model.Linear`, with fan_in = C*kh*kw and fan_out = O*kh*kw.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 init: str = "kaiming", bias: bool = True) -> None:
        super().__init__()
        if kernel_size[0] % 2 == 0 or kernel_size[1] % 2 == 0:
            raise ValueError(f"'same' padding needs odd kernel sizes, got {kernel_size}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = tuple(kernel_size)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        area = self.kernel_size[0] * self.kernel_size[1]
        fan_in, fan_out = self.in_channels * area, self.out_channels * area
        stds = {"kaiming": math.sqrt(2.0 / fan_in), "xavier": math.sqrt(2.0 / (fan_in + fan_out)),
                "normal": 1.0}
        with torch.no_grad():
            self.weight.normal_(0.0, stds[init])
            if self.bias is not None:
                self.bias.normal_(0.0, 1.0) if init == "normal" else self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        kernel = "x".join(map(str, self.kernel_size))
        return (f"{self.in_channels}->{self.out_channels}, kernel={kernel}, "
                f"bias={self.bias is not None}")


class MaxPool2d(nn.Module):
    def __init__(self, size: int = POOL_SIZE) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d(x, self.size)

    def extra_repr(self) -> str:
        return f"{self.size}x{self.size}/{self.size}"


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return flatten(x)


class CNN(nn.Module):
    """[Conv2d -> act -> MaxPool2d 2x2/2] per entry of `conv` (kh, kw, out_channels), then
    Flatten and one Linear to `n_classes` logits.

    Input: images [B, H, W] (grayscale, one channel added) or [B, C, H, W] with C = in_channels.
    """

    def __init__(self, image_size: tuple[int, int], n_classes: int,
                 conv: tuple[tuple[int, int, int], ...], in_channels: int = 1, act: str = "relu",
                 init: str = "auto", bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        weight_init = initialisation_for(act, init)
        layers: list[nn.Module] = []
        channels, (height, width) = in_channels, image_size
        for kernel_h, kernel_w, out_channels in conv:
            layers += [Conv2d(channels, out_channels, (kernel_h, kernel_w), weight_init, bias),
                       Activation(act), MaxPool2d(POOL_SIZE)]
            channels, height, width = out_channels, height // POOL_SIZE, width // POOL_SIZE
            if height == 0 or width == 0:
                raise ConfigError(
                    f"{len(conv)} conv layers each halve the image ({image_size[0]}x"
                    f"{image_size[1]}), leaving nothing after layer {len(layers) // 3}; use "
                    f"fewer --conv layers or a larger --norm-size")
        layers += [Flatten(), Linear(channels * height * width, n_classes,
                                     init="normal" if init == "normal" else "xavier", bias=bias)]
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.shape[1] != self.in_channels:
            raise ConfigError(f"this network takes {self.in_channels}-channel images, got "
                              f"{images.shape[1]} channel(s); charrec's preprocessing gives "
                              f"grayscale (1 channel)")
        return self.layers(images)


def build_cnn(config: TrainConfig, n_classes: int) -> CNN:
    """The CNN a config describes (`conv`, `norm_size`, `channels`, `act`, `init`, `bias`)."""
    return CNN(config.norm_size, n_classes, config.conv, config.channels, config.act,
               config.init, config.bias)
