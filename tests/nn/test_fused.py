"""The fused MLP Function against finite differences (float64), against the layer-by-layer
Functions it replaces, and against torch's built-in layers."""

from __future__ import annotations

from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F

from charrec.nn import functions
from charrec.nn.fused import MLPCrossEntropyFunction, MLPFunction, mlp, mlp_cross_entropy
from charrec.nn.model import MLP, logits_and_loss

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


def _gradcheck_inputs(sizes: tuple[int, ...], bias: bool, seed: int
                      ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """float64 input [6, sizes[0]] (kept off relu's kink at 0) and the layers' parameters,
    weight and bias interleaved, all requiring gradients."""
    weights, biases = _params(sizes, bias, seed=seed)
    x = torch.randn(6, sizes[0], dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed + 1))
    x = (x + 0.1 * x.sign()).requires_grad_()
    return x, [tensor for pair in zip(weights, biases, strict=True) for tensor in pair]


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_float64(act: str, bias: bool) -> None:
    x, params = _gradcheck_inputs((5, 4, 3, 2), bias, seed=1)
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


# ------------------------------------------------------------ the MLP and its loss as one Function


def _fused_loss(x, targets, act, params):
    return MLPCrossEntropyFunction.apply(x, targets, act, True, *params)[0]


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_cross_entropy_gradcheck_float64(act: str, bias: bool) -> None:
    x, params = _gradcheck_inputs((5, 4, 3, 4), bias, seed=11)
    targets = torch.tensor([0, 3, 1, 2, 3, 0])
    inputs = (x, *[tensor for tensor in params if tensor is not None])

    def loss(x, *given):
        filled = iter(given)
        return _fused_loss(x, targets, act, [None if tensor is None else next(filled)
                                             for tensor in params])

    assert torch.autograd.gradcheck(loss, inputs)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_mlp_cross_entropy_equals_torch_builtins(act: str, scale: float) -> None:
    """Loss, logits and every gradient (input too) against F.linear + F.cross_entropy, also when
    the loss is scaled before backward (dL/dloss != 1)."""
    weights, biases = _params((12, 8, 7, 5), True, seed=13)
    x = torch.randn(9, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
    x.requires_grad_()
    targets = torch.arange(9) % 5
    tensors = (x, *weights, *biases)

    loss, logits = mlp_cross_entropy(x, targets, act, [t for pair in zip(weights, biases,
                                                                         strict=True)
                                                       for t in pair])
    assert not logits.requires_grad  # for counting right answers only
    (loss * scale).backward()
    ours = [tensor.grad.clone() for tensor in tensors]
    for tensor in tensors:
        tensor.grad = None
    h = x
    for index, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        h = F.linear(h, weight, bias)
        if index < len(weights) - 1:
            h = TORCH_ACTIVATIONS[act](h)
    reference = F.cross_entropy(h, targets)
    (reference * scale).backward()
    torch.testing.assert_close(loss, reference, rtol=0, atol=1e-12)
    torch.testing.assert_close(logits, h.detach(), rtol=0, atol=1e-12)
    for mine, theirs in zip(ours, [tensor.grad for tensor in tensors], strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


def test_mlp_cross_entropy_is_finite_for_huge_logits() -> None:
    weights, biases = _params((3, 4), True, seed=15)
    x = torch.tensor([[1e4, -1e4, 3e3]], dtype=torch.float64)
    loss, _ = mlp_cross_entropy(x, torch.tensor([2]), "relu", [weights[0], biases[0]])
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(weights[0].grad).all()
    torch.testing.assert_close(loss, F.cross_entropy(F.linear(x, weights[0], biases[0]),
                                                     torch.tensor([2])))


def test_mlp_cross_entropy_without_autograd_computes_no_gradients() -> None:
    weights, biases = _params((4, 3, 2), True, seed=16, dtype=torch.float32)
    params = [weights[0], biases[0], weights[1], biases[1]]
    x, targets = torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1])
    with torch.no_grad():
        loss, logits = mlp_cross_entropy(x, targets, "tanh", params)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, functions.softmax_cross_entropy(logits, targets))
    torch.testing.assert_close(logits, mlp(x, "tanh", weights, biases).detach())


def test_the_training_step_runs_the_mlp_and_loss_as_one_function(monkeypatch) -> None:
    """`logits_and_loss` (what charrec.train calls): one fused node for an MLP with
    cross-entropy, no torch built-in layer, and the same loss and gradients as the model's
    forward followed by the loss Function; other models and losses take the plain path."""
    for name in ("linear", "cross_entropy", "softmax", "log_softmax", "relu", "nll_loss"):
        monkeypatch.setattr(F, name, _forbidden)
    torch.manual_seed(0)
    model = MLP(64, 26, (32, 16), act="relu")
    images, targets = torch.randn(8, 8, 8), torch.arange(8)
    logits, loss = logits_and_loss(model, images, targets, "ce")
    assert _graph_node_names(loss.grad_fn) == {"MLPCrossEntropyFunctionBackward", "AccumulateGrad"}
    loss.backward()
    fused_grads = [parameter.grad.clone() for parameter in model.parameters()]
    model.zero_grad(set_to_none=True)
    reference = functions.softmax_cross_entropy(model(images), targets)
    reference.backward()
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(logits, model(images).detach())
    for fused, layered in zip(fused_grads, [p.grad for p in model.parameters()], strict=True):
        torch.testing.assert_close(fused, layered)
    _, mse = logits_and_loss(model, images, targets, "mse")
    assert "SoftmaxMSEFunctionBackward" in _graph_node_names(mse.grad_fn)


def test_mlp_cross_entropy_refuses_a_second_derivative() -> None:
    weights, biases = _params((3, 2), True, seed=17)
    loss, _ = mlp_cross_entropy(torch.randn(2, 3, dtype=torch.float64), torch.tensor([0, 1]),
                                "relu", [weights[0], biases[0]])
    with pytest.raises(RuntimeError, match="second derivative"):
        torch.autograd.grad(loss, weights[0], create_graph=True)


def test_mlp_cross_entropy_backward_twice_through_a_retained_graph() -> None:
    """A second backward (retain_graph=True) computes the gradients again from the saved
    inputs: the same as the first; an input changed in place in between is refused (autograd's
    check of saved tensors), not used for wrong gradients."""
    weights, biases = _params((4, 3, 2), True, seed=18)
    params = [weights[0], biases[0], weights[1], biases[1]]
    x, targets = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    loss, _ = mlp_cross_entropy(x, targets, "tanh", params)
    first = torch.autograd.grad(loss, params, retain_graph=True)
    second = torch.autograd.grad(loss * 3, params, retain_graph=True)
    for once, again in zip(first, second, strict=True):
        torch.testing.assert_close(again, 3 * once, rtol=0, atol=1e-12)
    with torch.no_grad():
        weights[1].add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, params)


def _forbidden(*args, **kwargs):
    raise AssertionError("a torch built-in layer was used inside the model or loss")


def _graph_node_names(node) -> set[str]:
    names, stack = set(), [node]
    while stack:
        current = stack.pop()
        if current is not None:
            names.add(type(current).__name__)
            stack += [next_node for next_node, _ in current.next_functions]
    return names


@pytest.mark.parametrize("bias", [True, False])
def test_the_training_step_follows_replaced_and_copied_parameters(bias: bool) -> None:
    """`MLP.logits_and_cross_entropy` reads each Linear's parameters afresh at every step (from
    the layer's own parameter dict): a parameter replaced by `load_state_dict(assign=True)` is
    the one used and given a gradient, and a deep copy trains its own parameters."""
    torch.manual_seed(0)
    model = MLP(12, 5, (7,), act="tanh", bias=bias)
    images, targets = torch.randn(4, 3, 4), torch.tensor([0, 1, 4, 2])
    fresh = {name: torch.randn_like(tensor) for name, tensor in model.state_dict().items()}
    model.load_state_dict(fresh, assign=True)
    _, loss = logits_and_loss(model, images, targets, "ce")
    loss.backward()
    torch.testing.assert_close(loss, functions.softmax_cross_entropy(model(images), targets))
    assert all(parameter.grad is not None for parameter in model.parameters())

    copy = deepcopy(model)
    model.zero_grad(set_to_none=True)
    logits_and_loss(copy, images, targets, "ce")[1].backward()
    assert all(parameter.grad is None for parameter in model.parameters())
    assert all(parameter.grad is not None for parameter in copy.parameters())
