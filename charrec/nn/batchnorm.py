"""Batch normalisation as our own autograd Function, with its backward written out.

Notation as in `charrec.nn.functions`: `g` is dL/dy, `x` the input [B, C, H, W]; every statistic
is per channel c, over the N = B*H*W values of that channel. `gamma`, `beta` are [C].

    mu = mean(x),  var = mean((x - mu)^2)         (batch statistics, training)
    s  = sqrt(var + eps),  xhat = (x - mu) / s
    y  = gamma * xhat + beta

Backward (training: mu and var depend on x):

    dL/dbeta  = sum g,        dL/dgamma = sum g * xhat
    dL/dx     = gamma / s * (g - mean(g) - xhat * mean(g * xhat))

In evaluation mode the running statistics (`mean`, `var`, constants) replace the batch ones, so
the map is affine in x and `dL/dx = gamma / s * g`. The running statistics are updated by the
layer (`charrec.nn.layers.BatchNorm2d`), outside the graph. Only the Function lives here.
"""

from __future__ import annotations

import torch
from torch.autograd import Function

BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # running = (1 - m) * running + m * batch, as torch's BatchNorm2d


class BatchNorm2dFunction(Function):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta per channel of x [B, C, H, W].

    With `mean`/`var` None the batch statistics are used (training) and returned alongside y
    (biased variance, no gradient) for the layer's running averages; otherwise the given
    statistics (evaluation). See the module docstring for the backward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                mean: torch.Tensor | None = None, var: torch.Tensor | None = None,
                eps: float = BN_EPS):
        batch_stats = mean is None
        if batch_stats:
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        inv_std = torch.rsqrt(var + eps)
        xhat = (x - mean.view(1, -1, 1, 1)) * inv_std.view(1, -1, 1, 1)
        y = xhat * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1)
        ctx.batch_stats = batch_stats
        ctx.save_for_backward(xhat, gamma, inv_std)
        ctx.mark_non_differentiable(mean, var)
        return y, mean.detach(), var.detach()

    @staticmethod
    def backward(ctx, g: torch.Tensor, _grad_mean, _grad_var):
        xhat, gamma, inv_std = ctx.saved_tensors
        grad_x = grad_gamma = grad_beta = None
        sum_g = g.sum(dim=(0, 2, 3))
        sum_g_xhat = (g * xhat).sum(dim=(0, 2, 3))
        if ctx.needs_input_grad[1]:
            grad_gamma = sum_g_xhat
        if ctx.needs_input_grad[2]:
            grad_beta = sum_g
        if ctx.needs_input_grad[0]:
            scale = (gamma * inv_std).view(1, -1, 1, 1)
            if ctx.batch_stats:
                count = g.numel() // g.shape[1]
                mean_g = (sum_g / count).view(1, -1, 1, 1)
                mean_g_xhat = (sum_g_xhat / count).view(1, -1, 1, 1)
                grad_x = scale * (g - mean_g - xhat * mean_g_xhat)
            else:
                grad_x = scale * g
        return grad_x, grad_gamma, grad_beta, None, None, None


def batch_norm2d(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                 mean: torch.Tensor | None = None, var: torch.Tensor | None = None,
                 eps: float = BN_EPS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y, mean used, var used); batch statistics when `mean`/`var` are None."""
    return BatchNorm2dFunction.apply(x, gamma, beta, mean, var, eps)
