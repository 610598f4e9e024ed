"""Our autograd Functions against finite differences (gradcheck) and against torch's built-ins."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from charrec.nn import functions
from charrec.nn.functions import (
    LinearFunction,
    ReLUFunction,
    SigmoidFunction,
    SoftmaxCrossEntropyFunction,
    TanhFunction,
)

ACTIVATIONS = {
    "relu": (ReLUFunction, torch.relu),
    "sigmoid": (SigmoidFunction, torch.sigmoid),
    "tanh": (TanhFunction, torch.tanh),
}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random(*shape: int, seed: int = 0, dtype=torch.float64, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(*shape, generator=_generator(seed), dtype=dtype) * scale).requires_grad_()


def _away_from_zero(x: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """ReLU has a kink at 0; finite differences across it are meaningless, so avoid it."""
    with torch.no_grad():
        x[x.abs() < margin] += 2 * margin
    return x


# -------------------------------------------------------------------------------- linear


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gradcheck(with_bias: bool) -> None:
    x, weight = _random(5, 4, seed=1), _random(3, 4, seed=2)
    bias = _random(3, seed=3) if with_bias else None
    assert gradcheck(LinearFunction.apply, (x, weight, bias), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_f_linear(with_bias: bool) -> None:
    x, weight = _random(7, 6, seed=4), _random(5, 6, seed=5)
    bias = _random(5, seed=6) if with_bias else None
    ours = functions.linear(x, weight, bias)
    upstream = torch.randn(7, 5, generator=_generator(7), dtype=torch.float64)
    ours_grads = torch.autograd.grad(ours, [t for t in (x, weight, bias) if t is not None],
                                     upstream)
    reference = F.linear(x, weight, bias)
    reference_grads = torch.autograd.grad(reference,
                                          [t for t in (x, weight, bias) if t is not None],
                                          upstream)
    torch.testing.assert_close(ours, reference)
    assert len(ours_grads) == (3 if with_bias else 2)
    for mine, theirs in zip(ours_grads, reference_grads, strict=True):
        torch.testing.assert_close(mine, theirs)


def test_linear_float32_matches_f_linear() -> None:
    x, weight, bias = (_random(16, 32, seed=8, dtype=torch.float32),
                       _random(10, 32, seed=9, dtype=torch.float32),
                       _random(10, seed=10, dtype=torch.float32))
    functions.linear(x, weight, bias).square().sum().backward()
    ours = [t.grad.clone() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    F.linear(x, weight, bias).square().sum().backward()
    for mine, t in zip(ours, (x, weight, bias), strict=True):
        torch.testing.assert_close(mine, t.grad, rtol=1e-5, atol=1e-5)


def test_linear_skips_gradients_nobody_asked_for() -> None:
    x = torch.randn(4, 3, dtype=torch.float64)  # an input image: no gradient wanted
    weight = _random(2, 3, seed=11)
    functions.linear(x, weight).sum().backward()
    assert x.grad is None
    torch.testing.assert_close(weight.grad, x.sum(dim=0).expand(2, 3))


# --------------------------------------------------------------------------- activations


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradcheck(name: str) -> None:
    function, _ = ACTIVATIONS[name]
    x = _away_from_zero(_random(6, 5, seed=12, scale=2.0))
    assert gradcheck(function.apply, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_builtin(name: str) -> None:
    function, builtin = ACTIVATIONS[name]
    x = _away_from_zero(_random(8, 9, seed=13, scale=3.0))
    upstream = torch.randn(8, 9, generator=_generator(14), dtype=torch.float64)
    ours = function.apply(x)
    (ours_grad,) = torch.autograd.grad(ours, x, upstream)
    reference = builtin(x)
    (reference_grad,) = torch.autograd.grad(reference, x, upstream)
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours_grad, reference_grad)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_finite_for_huge_inputs(name: str) -> None:
    function, builtin = ACTIVATIONS[name]
    x = torch.tensor([-1e4, -100.0, 100.0, 1e4], requires_grad=True)
    y = function.apply(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(y, builtin(x.detach()))


def test_activation_none_is_identity() -> None:
    x = _random(3, 4, seed=15)
    assert functions.activation("none", x) is x


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "none"])
def test_activation_by_name_matches_builtin(name: str) -> None:
    x = torch.randn(4, 5, generator=_generator(16))
    expected = x if name == "none" else ACTIVATIONS[name][1](x)
    torch.testing.assert_close(functions.activation(name, x), expected)


# ------------------------------------------------------------------------- cross-entropy


def _targets(batch: int, classes: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, classes, (batch,), generator=_generator(seed))


def test_softmax_cross_entropy_gradcheck() -> None:
    logits, targets = _random(6, 5, seed=17), _targets(6, 5, seed=18)
    assert gradcheck(lambda z: SoftmaxCrossEntropyFunction.apply(z, targets), (logits,),
                     eps=1e-6, atol=1e-5)


def test_softmax_cross_entropy_gradcheck_through_upstream_gradient() -> None:
    """The backward scales by g: check with a loss that is multiplied afterwards."""
    logits, targets = _random(4, 3, seed=19), _targets(4, 3, seed=20)
    assert gradcheck(lambda z: 3.5 * SoftmaxCrossEntropyFunction.apply(z, targets), (logits,),
                     eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_softmax_cross_entropy_matches_f_cross_entropy(dtype: torch.dtype) -> None:
    logits, targets = _random(32, 26, seed=21, dtype=dtype, scale=4.0), _targets(32, 26, seed=22)
    ours = functions.softmax_cross_entropy(logits, targets)
    (ours_grad,) = torch.autograd.grad(ours, logits)
    reference = F.cross_entropy(logits, targets)
    (reference_grad,) = torch.autograd.grad(reference, logits)
    assert ours.shape == reference.shape == ()
    torch.testing.assert_close(ours, reference)
    torch.testing.assert_close(ours_grad, reference_grad)


def test_softmax_cross_entropy_finite_for_logits_of_magnitude_1e4() -> None:
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3], [1e4, 1e4, -1e4]],
                          requires_grad=True)
    targets = torch.tensor([1, 1, 2])
    loss = functions.softmax_cross_entropy(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    reference = logits.detach().double().clone().requires_grad_()
    expected = F.cross_entropy(reference, targets)
    expected.backward()
    torch.testing.assert_close(loss.double(), expected)
    torch.testing.assert_close(logits.grad.double(), reference.grad)
    # per row: 2e4 (target 2e4 below the max), ~0 (target is the max), 2e4 + log 2 (tied max)
    assert loss.item() == pytest.approx((4e4 + math.log(2)) / 3, rel=1e-6)


def test_softmax_cross_entropy_targets_get_no_gradient() -> None:
    logits, targets = _random(5, 4, seed=23), _targets(5, 4, seed=24)
    loss = SoftmaxCrossEntropyFunction.apply(logits, targets)
    # a custom Function's grad_fn is the ctx its forward saw: call backward directly
    grads = SoftmaxCrossEntropyFunction.backward(loss.grad_fn,
                                                 torch.tensor(1.0, dtype=torch.float64))
    assert len(grads) == 3 and grads[1] is None and grads[2] is None  # targets, smoothing
    (expected,) = torch.autograd.grad(F.cross_entropy(logits, targets), logits)
    torch.testing.assert_close(grads[0], expected)


def test_softmax_cross_entropy_gradient_rows_sum_to_zero() -> None:
    """(softmax - onehot) / B: each row sums to 0, the target entry is negative."""
    logits, targets = _random(8, 6, seed=25), _targets(8, 6, seed=26)
    (grad,) = torch.autograd.grad(functions.softmax_cross_entropy(logits, targets), logits)
    torch.testing.assert_close(grad.sum(dim=1), torch.zeros(8, dtype=torch.float64))
    assert (grad[torch.arange(8), targets] < 0).all()


def test_softmax_probabilities() -> None:
    logits = torch.tensor([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]])
    probabilities = functions.softmax(logits)
    torch.testing.assert_close(probabilities, torch.softmax(logits, dim=1))
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(2))


# ------------------------------------------------------------ backward leaves g untouched


def _checked_upstream(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    upstream = torch.randn(shape, generator=_generator(27), dtype=torch.float64)
    return upstream, upstream.clone()


@pytest.mark.parametrize("name", ["linear", "linear_no_bias", "relu", "sigmoid", "tanh", "ce"])
def test_backward_does_not_modify_grad_output(name: str) -> None:
    x = _away_from_zero(_random(4, 3, seed=28))
    if name.startswith("linear"):
        weight, bias = _random(2, 3, seed=29), _random(2, seed=30)
        output = functions.linear(x, weight, bias if name == "linear" else None)
    elif name == "ce":
        output = functions.softmax_cross_entropy(x, _targets(4, 3, seed=31))
    else:
        output = ACTIVATIONS[name][0].apply(x)
    upstream, original = _checked_upstream(tuple(output.shape))
    output.backward(upstream)
    assert torch.equal(upstream, original)
    assert x.grad is not None and torch.isfinite(x.grad).all()
