"""The whole MLP as one autograd Function, and the whole MLP with its softmax cross-entropy loss
as one: the same maths as chaining `LinearFunction`, the activation Functions and
`SoftmaxCrossEntropyFunction` of `charrec.nn.functions`, with one Python call per step instead
of two per layer.

Why: each Python `autograd.Function` costs interpreter and autograd bookkeeping per call
(forward and backward), which for a small MLP at batch 64 is as much as the matrix products
(docs/benchmarks.md). Fusing the layers, and the loss with them, makes charrec's MLP as fast
as torch's C++ `nn.Linear` + `F.cross_entropy` (`benchmarks/train_speed.py`).

Notation as in `charrec.nn.functions`. For layers l = 1..L with weights W_l [out_l, in_l] and
biases b_l, and the activation f after every layer but the last:

    h_0 = x,    z_l = h_{l-1} W_l^T + b_l,    h_l = f(z_l) for l < L,    y = z_L.

Backward, from g_L = g = dL/dy down to the input:

    dL/dW_l = g_l^T h_{l-1},    dL/db_l = sum over rows of g_l,
    g_{l-1} = (g_l W_l) * f'(z_{l-1}),    dL/dx = g_1 W_1,

with f' read off the saved outputs h (relu: [h > 0]; sigmoid: h (1 - h); tanh: 1 - h^2;
none: 1). With the loss fused in, g_L = (softmax(y) - onehot(t)) / B is known in forward, so
forward computes every gradient at once and backward only scales them by dL/dloss (1 for
`loss.backward()`). Nothing here holds parameters: `charrec.nn.model.MLP` owns them as
`Linear` layers.
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


def _times_derivative_(name: str, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """g * f'(z) written with the output h = f(z), in place on g (a fresh g W product)."""
    if name == "relu":
        return g.mul_(torch.sign(h))  # h >= 0: sign(h) is the mask [h > 0] as floats, one pass
    if name == "sigmoid":
        return g.mul_(h * (1 - h))
    if name == "tanh":
        return g.mul_(1 - h * h)
    return g


def _forward_layers(x: torch.Tensor, act: str, weights: tuple[torch.Tensor, ...],
                    biases: tuple[torch.Tensor | None, ...]
                    ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(h_0 .. h_{L-1}, y): the layer inputs backward needs, and the output. (Matrix products
    as `.mm` calls: the `@` operator costs an extra Python wrapper each.)"""
    outputs = [x]
    h = x
    for weight, bias in zip(weights, biases, strict=True):
        z = h.mm(weight.t()) if bias is None else torch.addmm(bias, h, weight.t())
        if len(outputs) == len(weights):
            return outputs, z
        h = _activate(act, z)
        outputs.append(h)
    raise ValueError("an MLP needs at least one layer")


def _backward_layers(g: torch.Tensor, act: str, outputs: list[torch.Tensor] | tuple,
                     weights: tuple[torch.Tensor, ...], needs_grad: tuple[bool, ...]
                     ) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """From g = dL/dy: (dL/dx, [dL/dW_1, dL/db_1, ..., dL/dW_L, dL/db_L]), None for each
    input that `needs_grad` = (x, W_1, b_1, ..., W_L, b_L) marks False (autograd's
    `needs_input_grad`: False for a b_l that is None, too)."""
    grads: list[torch.Tensor | None] = [None] * (2 * len(weights))
    for layer in range(len(weights) - 1, 0, -1):
        h_below = outputs[layer]
        if needs_grad[2 * layer + 1]:
            grads[2 * layer] = g.t().mm(h_below)
        if needs_grad[2 * layer + 2]:
            grads[2 * layer + 1] = g.sum(0)
        g = _times_derivative_(act, g.mm(weights[layer]), h_below)
    if needs_grad[1]:
        grads[0] = g.t().mm(outputs[0])
    if needs_grad[2]:
        grads[1] = g.sum(0)
    return (g.mm(weights[0]) if needs_grad[0] else None), grads


class MLPFunction(Function):
    """y = MLP(x) for x [B, in]; `params` = W_1, b_1, ..., W_L, b_L (b_l None without bias)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, act: str, *params: torch.Tensor | None):
        weights, biases = params[0::2], params[1::2]
        outputs, y = _forward_layers(x, act, weights, biases)
        ctx.save_for_backward(*outputs, *weights)
        ctx.act, ctx.n_layers = act, len(weights)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        saved = ctx.saved_tensors
        outputs, weights = saved[:ctx.n_layers], saved[ctx.n_layers:]
        needs = (ctx.needs_input_grad[0], *ctx.needs_input_grad[2:])
        grad_x, grads = _backward_layers(g, ctx.act, outputs, weights, needs)
        return (grad_x, None, *grads)


class MLPCrossEntropyFunction(Function):
    """(L, y) for x [B, in] and integer targets t [B]: the logits y = MLP(x) and their mean
    softmax cross-entropy

        L = -1/B * sum_i log softmax(y_i)[t_i]
          =  1/B * sum_i (log sum_j exp(y_ij - m_i) - (y_it - m_i))

    with m_i the row max (log-sum-exp: finite for logits of any magnitude). `params` =
    W_1, b_1, ..., W_L, b_L as in `MLPFunction`; `with_grads` False (no autograd wanted, e.g.
    under `torch.no_grad()`) skips the gradients.

    Forward also runs the backward pass of the MLP from g_L = dL/dy = (softmax(y) - onehot(t))/B,
    so backward is:  dL/dθ (computed in forward) * g, with g = dL/dL' the scalar from above.
    The logits are returned for accuracy counting only: they carry no gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, targets: torch.Tensor, act: str, with_grads: bool,
                *params: torch.Tensor | None):
        ctx.set_materialize_grads(False)  # no zero tensor for the logits' (absent) gradient
        if with_grads:
            needs_input_grad = ctx.needs_input_grad  # a fresh tuple at each read
            needs = (needs_input_grad[0], *needs_input_grad[4:])
        else:
            needs = None
        loss, logits, ctx.grads = _loss_and_gradients(x, targets, act, params, needs)
        ctx.mark_non_differentiable(logits)
        ctx.with_grads = with_grads
        if with_grads:  # (references only) to compute the gradients again for a 2nd backward
            ctx.save_for_backward(x, targets, *params)
            ctx.act, ctx.needs = act, needs
        return loss, logits

    @staticmethod
    def backward(ctx, g: torch.Tensor | None, _g_logits: None):
        if torch.is_grad_enabled():
            raise RuntimeError("MLPCrossEntropyFunction has no second derivative "
                               "(create_graph=True)")
        if not ctx.with_grads:
            raise RuntimeError("MLPCrossEntropyFunction was applied with with_grads=False")
        if ctx.grads is None:  # a second backward through the same graph (retain_graph=True)
            x, targets, *params = ctx.saved_tensors
            ctx.grads = _loss_and_gradients(x, targets, ctx.act, params, ctx.needs)[2]
        grad_x, grads = ctx.grads
        # handed over: autograd stores these very tensors as the .grad (no copy); were they
        # kept here too, it would copy them
        ctx.grads = None
        if g is None:  # the loss itself was not differentiated (only the logits were used)
            return (None,) * (4 + len(grads))
        # g is exactly 1 after loss.backward(); reading it costs nothing on the CPU, where a GPU
        # would have to wait, so there it is always multiplied in
        if not g.is_cpu or g.item() != 1.0:
            grads = [None if grad is None else grad.mul_(g) for grad in grads]
            grad_x = None if grad_x is None else grad_x.mul_(g)
        return (grad_x, None, None, None, *grads)


def _loss_and_gradients(x: torch.Tensor, targets: torch.Tensor, act: str,
                        params: tuple | list, needs: tuple[bool, ...] | None
                        ) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
    """(L, y, (dL/dx, [dL/dW_1, dL/db_1, ...]) or None when `needs` is None): the maths of
    `MLPCrossEntropyFunction`; `needs` = which of x, W_1, b_1, ... want a gradient."""
    # each torch call costs a few µs of Python and dispatch, as much as the arithmetic on [B, C]
    # logits: so as few calls as the maths allows, in place where a value is not needed again
    weights, biases = params[0::2], params[1::2]
    outputs, logits = _forward_layers(x, act, weights, biases)
    batch = logits.shape[0]
    rows = targets.view(-1, 1)
    shifted = logits.sub(logits.amax(1, True))  # row max 0: exp never overflows
    picked = shifted.gather(1, rows)
    exp_shifted = shifted.exp_()
    sum_exp = exp_shifted.sum(1, True)
    loss = sum_exp.log().sub_(picked).mean()
    if needs is None:
        return loss, logits, None
    # g_L = (softmax(y) - onehot(t)) / B, in place: exp / (B sum exp), then -1/B at t
    g = exp_shifted.div_(sum_exp.mul_(batch))
    g.scatter_(1, rows, -1.0 / batch, reduce="add")
    return loss, logits, _backward_layers(g, act, outputs, weights, needs)


def mlp(x: torch.Tensor, act: str, weights: list[torch.Tensor],
        biases: list[torch.Tensor | None]) -> torch.Tensor:
    params = [tensor for pair in zip(weights, biases, strict=True) for tensor in pair]
    return MLPFunction.apply(x, act, *params)


def mlp_cross_entropy(x: torch.Tensor, targets: torch.Tensor, act: str,
                      params: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean softmax cross-entropy, logits) of the MLP on x, `params` = W_1, b_1, ..., W_L, b_L:
    `MLPCrossEntropyFunction`, with gradients when autograd is on."""
    return MLPCrossEntropyFunction.apply(x, targets, act, torch.is_grad_enabled(), *params)
