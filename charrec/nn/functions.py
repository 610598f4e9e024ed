"""Our own differentiable operations: `torch.autograd.Function`s with hand-written backward passes.

Each Function computes its value and its gradient side by side, so the maths can be read off the
code. Notation: `g` is the gradient of the loss L with respect to the Function's output
(`grad_output`), `x` the input, `y` the output, `W` a weight matrix, `b` a bias vector, `B` the
batch size. Only what backward needs is saved; `g` is never modified in place.

The model and the loss are built only from these; torch's built-in layers (`nn.Linear`,
`F.cross_entropy`, ...) appear only as references in tests and benchmarks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch.autograd import Function


class LinearFunction(Function):
    """Affine map `y = x W^T + b` for x [B, in], W [out, in], b [out].

    Backward:  dL/dx = g W,   dL/dW = g^T x,   dL/db = sum over rows of g.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return x @ weight.t()
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = g @ weight if ctx.needs_input_grad[0] else None
        grad_weight = g.t() @ x if ctx.needs_input_grad[1] else None
        grad_bias = g.sum(dim=0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


class ReLUFunction(Function):
    """y = max(x, 0).   Backward from the output:  dL/dx = g * [y > 0]."""

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        y = x.clamp_min(0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (y,) = ctx.saved_tensors
        # y >= 0, so sign(y) is the mask [y > 0] already as 0./1. floats: one fast pass, where
        # comparing and multiplying by a bool tensor takes several times longer
        return g * torch.sign(y)


def sigmoid_values(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + exp(-x)) computed from exp(-|x|) only: no overflow for large |x|."""
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


class SigmoidFunction(Function):
    """y = 1 / (1 + exp(-x)).   Backward from the output:  dL/dx = g * y (1 - y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        y = sigmoid_values(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class TanhFunction(Function):
    """y = tanh(x).   Backward from the output:  dL/dx = g * (1 - y^2)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


def log_softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """Stable log-softmax: z - max(z) - log(sum(exp(z - max(z)))) per row (log-sum-exp)."""
    shifted = logits - logits.max(dim=1, keepdim=True).values
    return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))


class SoftmaxCrossEntropyFunction(Function):
    """Mean cross-entropy of softmax(z) against integer targets t, for logits z [B, C]:

        L = -1/B * sum_i log softmax(z_i)[t_i]

    Backward:  dL/dz = (softmax(z) - onehot(t)) / B * g   (g is a scalar); no gradient for t.
    Finite for logits of any magnitude: the row max is subtracted before exp.

    With label smoothing e > 0 the target is the distribution q = (1 - e) onehot(t) + e / C:

        L = -1/B * sum_i sum_j q_ij log softmax(z_i)_j
          = 1/B * sum_i [(1 - e) (-log softmax(z_i)[t_i]) + e * mean_j (-log softmax(z_i)_j)]
        dL/dz = (softmax(z) - q) / B * g
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0):
        shifted = logits - logits.amax(dim=1, keepdim=True)  # row max 0: exp never overflows
        exp_shifted = shifted.exp()
        sum_exp = exp_shifted.sum(dim=1, keepdim=True)
        rows = targets.view(-1, 1)
        # -log softmax(z)[t] = log(sum_j exp(z_j - max)) - (z_t - max)   (log-sum-exp)
        log_sum = sum_exp.log()
        loss = (log_sum - shifted.gather(1, rows)).mean()
        if smoothing:
            uniform = (log_sum - shifted.mean(dim=1, keepdim=True)).mean()
            loss = (1 - smoothing) * loss + smoothing * uniform
        # softmax(z) - q, in place: all that backward needs
        error = exp_shifted.div_(sum_exp).scatter_add_(
            1, rows, sum_exp.new_full(rows.shape, smoothing - 1.0))
        if smoothing:
            error.sub_(smoothing / logits.shape[1])
        ctx.save_for_backward(error)
        return loss

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (error,) = ctx.saved_tensors
        return error * (g / error.shape[0]), None, None


class SoftmaxMSEFunction(Function):
    """Squared error of softmax outputs against one-hot targets, for logits z [B, C]:

        y = softmax(z),   E = 1/B * sum_i 1/2 * sum_j (y_ij - t_ij)^2   (t = onehot(targets))

    Backward (softmax Jacobian dy_m/dz_j = y_m ([m = j] - y_j), applied to dE/dy = y - t):

        dE/dz_j = y_j (y_j - t_j) - y_j * sum_m y_m (y_m - t_m),   times g / B; none for targets.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor):
        probabilities = torch.exp(log_softmax_rows(logits))
        error = probabilities.clone()
        error[torch.arange(error.shape[0], device=error.device), targets] -= 1
        ctx.save_for_backward(probabilities, error)
        return 0.5 * (error * error).sum() / logits.shape[0]

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        probabilities, error = ctx.saved_tensors
        weighted = probabilities * error  # y_j (y_j - t_j)
        grad = weighted - probabilities * weighted.sum(dim=1, keepdim=True)
        return grad * (g / probabilities.shape[0]), None


ACTIVATION_FUNCTIONS: dict[str, type[Function] | None] = {
    "relu": ReLUFunction,
    "sigmoid": SigmoidFunction,
    "tanh": TanhFunction,
    "none": None,
}


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    return LinearFunction.apply(x, weight, bias)


def activation(name: str, x: torch.Tensor) -> torch.Tensor:
    function = ACTIVATION_FUNCTIONS[name]
    return x if function is None else function.apply(x)


def softmax_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                          smoothing: float = 0.0) -> torch.Tensor:
    return SoftmaxCrossEntropyFunction.apply(logits, targets, smoothing)


def softmax_mse(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return SoftmaxMSEFunction.apply(logits, targets)


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities for inference (no gradient needed)."""
    return torch.exp(log_softmax_rows(logits))


LOSSES = {"ce": softmax_cross_entropy, "mse": softmax_mse}


def loss_function(name: str, label_smoothing: float = 0.0
                  ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss a config names: "ce" (softmax cross-entropy, optionally label-smoothed) or
    "mse" (softmax squared error)."""
    if name == "ce" and label_smoothing:
        return functools.partial(softmax_cross_entropy, smoothing=label_smoothing)
    return LOSSES[name]
