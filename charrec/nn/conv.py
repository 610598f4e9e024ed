"""Convolution Functions on our own autograd: Conv2d (im2col), MaxPool2d and Flatten.

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

Only Functions live here (the maths); the modules that hold their weights are in
`charrec.nn.layers`, the CNN built from them in `charrec.nn.model`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd import Function

POOL_SIZE = 2
COLUMNS_MAX = 32  # patch length C*kh*kw up to which im2col beats the correlation primitive


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

    The same three products can be computed without materialising X, as correlations:
        y     = x * W + b                          (* = 'same' cross-correlation)
        dL/dx = g *^T W                            (the transposed correlation: col2im(W2^T g))
        dL/dW = x^T * g^T                          (per channel pair, summed over the batch:
                dL/dW[o, c] = sum_b x[b, c] * g[b, o], batch as the correlation's channels)
    using torch's correlation primitive (`F.conv2d`, `F.conv_transpose2d`) the way Linear uses
    the matrix product. Columns are cheaper when a patch is short (C*kh*kw <= COLUMNS_MAX, e.g.
    the first layer on a grayscale image); the correlations win for deeper layers
    (`benchmarks/cnn_speed.py`). Both give the same values (tests compare them).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                method: str = "auto"):
        batch, channels, height, width = x.shape
        out_channels, _, kernel_h, kernel_w = weight.shape
        if method == "auto":
            method = "columns" if channels * kernel_h * kernel_w <= COLUMNS_MAX else "correlate"
        ctx.method, ctx.has_bias, ctx.input_shape = method, bias is not None, x.shape
        if method == "correlate":
            ctx.save_for_backward(x, weight)
            return F.conv2d(x, weight, bias, padding=(kernel_h // 2, kernel_w // 2))
        columns = im2col(x, (kernel_h, kernel_w))  # [B, C*kh*kw, H*W]
        # one W2 per image as a stride-0 view: bmm reads `columns` in place (no transposed copy)
        weight_matrix = weight.reshape(out_channels, -1).expand(batch, -1, -1)
        y = torch.bmm(weight_matrix, columns)  # [B, O, H*W]
        if bias is not None:
            y += bias.view(1, -1, 1)  # y is a fresh tensor: adding in place saves a copy
        ctx.save_for_backward(columns, weight)
        return y.view(batch, out_channels, height, width)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        saved, weight = ctx.saved_tensors
        out_channels, _, kernel_h, kernel_w = weight.shape
        grad_x = grad_weight = grad_bias = None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = g.sum(dim=(0, 2, 3))
        if ctx.method == "correlate":
            x, padding = saved, (kernel_h // 2, kernel_w // 2)
            if ctx.needs_input_grad[0]:
                grad_x = F.conv_transpose2d(g, weight, padding=padding)
            if ctx.needs_input_grad[1]:
                grad_weight = F.conv2d(x.transpose(0, 1), g.transpose(0, 1),
                                       padding=padding).transpose(0, 1)
            return grad_x, grad_weight, grad_bias, None
        columns = saved
        g_matrix = g.reshape(g.shape[0], out_channels, -1)  # [B, O, H*W]
        if ctx.needs_input_grad[0]:
            weight_t = weight.reshape(out_channels, -1).t().contiguous()  # W2^T [C*kh*kw, O]
            grad_columns = torch.bmm(weight_t.expand(g.shape[0], -1, -1), g_matrix)
            grad_x = col2im(grad_columns, ctx.input_shape, (kernel_h, kernel_w))
        if ctx.needs_input_grad[1]:
            grad_weight = torch.bmm(g_matrix, columns.transpose(1, 2)).sum(dim=0).view_as(weight)
        return grad_x, grad_weight, grad_bias, None


class MaxPool2dFunction(Function):
    """Max over non-overlapping k x k windows (stride k); rows/columns past the last whole
    window are dropped, as `F.max_pool2d` does.

    Forward:   y[b, c, i, j] = max over the window (i, j) of x, remembering where the max was.
    Backward:  dL/dx = g at the position of each window's maximum, 0 everywhere else.

    The values and each winner's flat position in its H x W plane come from torch's pooling
    primitive (`F.max_pool2d(..., return_indices=True)`, as Linear's product comes from torch's
    matmul); backward is ours: a single scatter of g into zeros, each window's gradient landing
    on exactly one position.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int = POOL_SIZE):
        y, where = F.max_pool2d(x, size, return_indices=True)
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


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           method: str = "auto") -> torch.Tensor:
    """`method`: "columns" (im2col), "correlate" (correlation primitive) or "auto"."""
    return Conv2dFunction.apply(x, weight, bias, method)


def max_pool2d(x: torch.Tensor, size: int = POOL_SIZE) -> torch.Tensor:
    return MaxPool2dFunction.apply(x, size)


def flatten(x: torch.Tensor) -> torch.Tensor:
    return FlattenFunction.apply(x)
