"""The whole MLP as one autograd Function: the same maths as chaining `LinearFunction` and the
activation Functions of `charrec.nn.functions`, with one Python call per step instead of two
per layer.

Why: each Python `autograd.Function` costs ~15-30 µs of interpreter and autograd bookkeeping
per call, which for a small MLP at batch 64 is as much as the matrix products. Fusing the layers
makes charrec's MLP as fast as torch's C++ `nn.Linear` (`benchmarks/train_speed.py`).

Notation as in `charrec.nn.functions`. For layers l = 1..L with weights W_l [out_l, in_l] and
biases b_l, and the activation f after every layer but the last:

    h_0 = x,    z_l = h_{l-1} W_l^T + b_l,    h_l = f(z_l) for l < L,    y = z_L.

Backward, from g_L = g = dL/dy down to the input:

    dL/dW_l = g_l^T h_{l-1},    dL/db_l = sum over rows of g_l,
    g_{l-1} = (g_l W_l) * f'(z_{l-1}),    dL/dx = g_1 W_1,

with f' read off the saved outputs h (relu: [h > 0]; sigmoid: h (1 - h); tanh: 1 - h^2;
none: 1). Nothing here holds parameters: `charrec.nn.model.MLP` owns them as `Linear` layers.
"""

from __future__ import annotations

import torch
from torch.autograd import Function

from charrec.nn.functions import sigmoid_values


def _activate(name: str, z: torch.Tensor) -> torch.Tensor:
    """f(z) for a fresh tensor z (relu works in place: z is not needed afterwards)."""
    if name == "relu":
        return z.clamp_min_(0)
    if name == "sigmoid":
        return sigmoid_values(z)
    if name == "tanh":
        return torch.tanh(z)
    return z


def _times_derivative(name: str, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """g * f'(z) written with the output h = f(z)."""
    if name == "relu":
        return g * torch.sign(h)  # h >= 0: sign(h) is the mask [h > 0] as floats, one pass
    if name == "sigmoid":
        return g * h * (1 - h)
    if name == "tanh":
        return g * (1 - h * h)
    return g


class MLPFunction(Function):
    """y = MLP(x) for x [B, in]; `params` = W_1, b_1, ..., W_L, b_L (b_l None without bias)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, act: str, *params: torch.Tensor | None):
        weights, biases = params[0::2], params[1::2]
        outputs = [x]  # h_0 .. h_{L-1}: what backward needs
        h = x
        for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            z = h @ weight.t() if bias is None else torch.addmm(bias, h, weight.t())
            if index == len(weights) - 1:
                h = z
            else:
                h = _activate(act, z)
                outputs.append(h)
        ctx.save_for_backward(*outputs, *weights)
        ctx.act, ctx.n_layers = act, len(weights)
        ctx.has_bias = [bias is not None for bias in biases]
        return h

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        saved = ctx.saved_tensors
        outputs, weights = saved[:ctx.n_layers], saved[ctx.n_layers:]
        grads: list[torch.Tensor | None] = [None] * (2 * ctx.n_layers)
        for layer in reversed(range(ctx.n_layers)):
            h_below = outputs[layer]
            if ctx.needs_input_grad[2 + 2 * layer]:
                grads[2 * layer] = g.t() @ h_below
            if ctx.has_bias[layer] and ctx.needs_input_grad[3 + 2 * layer]:
                grads[2 * layer + 1] = g.sum(dim=0)
            if layer > 0:
                g = _times_derivative(ctx.act, g @ weights[layer], h_below)
            elif ctx.needs_input_grad[0]:
                g = g @ weights[0]
            else:
                g = None
        return (g, None, *grads)


def mlp(x: torch.Tensor, act: str, weights: list[torch.Tensor],
        biases: list[torch.Tensor | None]) -> torch.Tensor:
    params = [tensor for pair in zip(weights, biases, strict=True) for tensor in pair]
    return MLPFunction.apply(x, act, *params)
