"""The fused MLP Function against finite differences (float64), against the layer-by-layer
Functions it replaces, and against torch's built-in layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from charrec.nn import functions
from charrec.nn.fused import MLPFunction, mlp

ACTIVATIONS = ("relu", "sigmoid", "tanh", "none")
TORCH_ACTIVATIONS = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                     "none": lambda x: x}


def _params(sizes, bias: bool, seed: int, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    weights, biases = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        weights.append(torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
                       .requires_grad_())
        biases.append(torch.randn(fan_out, generator=generator, dtype=dtype).requires_grad_()
                      if bias else None)
    return weights, biases


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_float64(act: str, bias: bool) -> None:
    weights, biases = _params((5, 4, 3, 2), bias, seed=1)
    x = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x = (x + 0.1 * x.sign()).requires_grad_()  # away from relu's kink at 0
    params = [tensor for pair in zip(weights, biases, strict=True) for tensor in pair]
    assert torch.autograd.gradcheck(lambda x, *p: MLPFunction.apply(x, act, *p), (x, *params))


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_equals_the_layer_by_layer_functions_and_torch(act: str) -> None:
    weights, biases = _params((12, 8, 7, 5), True, seed=3)
    x = torch.randn(9, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    targets = torch.arange(9) % 5

    def chain(use: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for tensor in (*weights, *biases):
            tensor.grad = None
        if use == "fused":
            logits = mlp(x, act, weights, biases)
            loss = functions.softmax_cross_entropy(logits, targets)
        elif use == "layers":
            h = x
            for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
                h = functions.linear(h, weight, bias)
                if index < len(weights) - 1:
                    h = functions.activation(act, h)
            logits, loss = h, functions.softmax_cross_entropy(h, targets)
        else:
            h = x
            for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
                h = F.linear(h, weight, bias)
                if index < len(weights) - 1:
                    h = TORCH_ACTIVATIONS[act](h)
            logits, loss = h, F.cross_entropy(h, targets)
        loss.backward()
        return logits.detach(), [tensor.grad.clone() for tensor in (*weights, *biases)]

    fused_logits, fused_grads = chain("fused")
    for other in ("layers", "torch"):
        logits, grads = chain(other)
        torch.testing.assert_close(fused_logits, logits, rtol=0, atol=1e-12)
        for ours, theirs in zip(fused_grads, grads, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_input_gradient_only_when_asked() -> None:
    weights, biases = _params((4, 3, 2), True, seed=5, dtype=torch.float32)
    x = torch.randn(3, 4, requires_grad=True)
    mlp(x, "relu", weights, biases).sum().backward()
    expected = torch.autograd.grad(
        F.linear(torch.relu(F.linear(x, weights[0], biases[0])), weights[1], biases[1]).sum(), x)
    torch.testing.assert_close(x.grad, expected[0])
