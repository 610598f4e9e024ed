"""The checks behind `charrec gradcheck`: every hand-written backward against finite differences
and against torch's built-in equivalent, in float64.

Each check evaluates one of our ops (a Function, or a whole model with its loss, as a function of
its inputs and parameters) on small random float64 tensors and measures:
- the largest |analytic - numerical| entry of its Jacobian, the analytic one from our backward,
  the numerical one from central differences (f(x + eps) - f(x - eps)) / 2 eps;
- the largest |ours - torch| difference, over the output values and the Jacobian, against the
  same computation from torch's built-ins (`F.conv2d`, `F.cross_entropy`, `nn.Linear`, ...);
- whether every Jacobian entry is within gradcheck's tolerance |a - n| <= atol + rtol |n|, and
  `torch.autograd.gradcheck`'s own verdict (in fast mode: random projections of the Jacobian,
  as the full Jacobian is already compared here).
A check passes when both gradient tests pass and ours agrees with torch to
`REFERENCE_TOLERANCE`.
`builtin_equivalent(model)` (the torch-built-in twin of an MLP or CNN) also serves the speed
benchmark.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from charrec.config import make_config
from charrec.nn import batchnorm, conv, functions, fused, layers
from charrec.nn.layers import Activation, Linear
from charrec.nn.model import CNN, build_model

EPS = 1e-6
GRADCHECK_ATOL, GRADCHECK_RTOL = 1e-5, 1e-3
REFERENCE_TOLERANCE = 1e-8
MODEL_CLASSES = 5

Inputs = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class CheckResult:
    op: str
    reference: str  # the torch built-in we compare with
    numerical_error: float  # max |analytic - numerical| over the Jacobian
    reference_diff: float  # max |ours - torch| over values and Jacobian
    gradcheck_passed: bool

    @property
    def passed(self) -> bool:
        return self.gradcheck_passed and self.reference_diff <= REFERENCE_TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class Check:
    """`make()` -> (inputs needing gradients, our function of them, torch's function of them)."""

    op: str
    reference: str
    make: Callable[[], tuple[Inputs, Callable[..., torch.Tensor], Callable[..., torch.Tensor]]]


# ------------------------------------------------------------------------------ measurements


def numerical_jacobian(function: Callable[..., torch.Tensor], inputs: Inputs,
                       eps: float = EPS) -> list[torch.Tensor]:
    """Central differences: one [output size, input size] matrix per input."""
    jacobians = []
    with torch.no_grad():
        for tensor in inputs:
            flat = tensor.view(-1)
            columns = []
            for index in range(flat.numel()):
                original = flat[index].item()
                flat[index] = original + eps
                plus = function(*inputs).reshape(-1).clone()
                flat[index] = original - eps
                minus = function(*inputs).reshape(-1).clone()  # outputs may be views of inputs
                flat[index] = original
                columns.append((plus - minus) / (2 * eps))
            jacobians.append(torch.stack(columns, dim=1))
    return jacobians


def analytic_jacobian(function: Callable[..., torch.Tensor], inputs: Inputs
                      ) -> list[torch.Tensor]:
    """From backward passes: one [output size, input size] matrix per input."""
    jacobians = torch.autograd.functional.jacobian(function, inputs)
    n_outputs = function(*inputs).numel()
    return [jacobian.reshape(n_outputs, -1) for jacobian in jacobians]


def max_abs_diff(first: Sequence[torch.Tensor], second: Sequence[torch.Tensor]) -> float:
    return max((a - b).abs().max().item() for a, b in zip(first, second, strict=True))


def run_check(check: Check) -> CheckResult:
    inputs, ours, torch_version = check.make()
    analytic = analytic_jacobian(ours, inputs)
    numerical = numerical_jacobian(ours, inputs)
    with torch.no_grad():
        values = (ours(*inputs), torch_version(*inputs))
    reference = analytic_jacobian(torch_version, inputs)
    within_tolerance = all(
        bool(((a - n).abs() <= GRADCHECK_ATOL + GRADCHECK_RTOL * n.abs()).all())
        for a, n in zip(analytic, numerical, strict=True))
    passed = within_tolerance and torch.autograd.gradcheck(
        ours, inputs, eps=EPS, atol=GRADCHECK_ATOL, rtol=GRADCHECK_RTOL, raise_exception=False,
        fast_mode=True)
    return CheckResult(
        op=check.op, reference=check.reference,
        numerical_error=max_abs_diff(analytic, numerical),
        reference_diff=max(max_abs_diff([values[0]], [values[1]]),
                           max_abs_diff(analytic, reference)),
        gradcheck_passed=bool(passed),
    )


def run_checks(checks: Sequence[Check] | None = None) -> list[CheckResult]:
    """Run `checks` (default: all) single-threaded: the tensors are tiny, and on a busy machine
    waking a second thread for each of thousands of small ops costs more than the ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [run_check(check) for check in (all_checks() if checks is None else checks)]
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------ torch's built-in equivalents


def reference_mse(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1/2 sum_j (softmax(z)_j - onehot_j)^2, mean over the batch, by torch autograd."""
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
    return 0.5 * ((torch.softmax(logits, dim=1) - one_hot) ** 2).sum(dim=1).mean()


REFERENCE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ce": F.cross_entropy,
    "mse": reference_mse,
}
BUILTIN_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "none": nn.Identity,
}


class _AddChannel(nn.Module):
    """[B, H, W] -> [B, 1, H, W], as our CNN does for grayscale images."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.unsqueeze(1) if images.dim() == 3 else images


def _builtin_layer(layer: nn.Module) -> nn.Module:
    if isinstance(layer, Linear):
        twin = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    elif isinstance(layer, layers.Conv2d):
        twin = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                         padding="same", bias=layer.bias is not None)
    elif isinstance(layer, layers.MaxPool2d):
        return nn.MaxPool2d(layer.size)
    elif isinstance(layer, layers.Flatten):
        return nn.Flatten()
    elif isinstance(layer, Activation):
        return BUILTIN_ACTIVATIONS[layer.name]()
    elif isinstance(layer, layers.BatchNorm2d):
        twin = nn.BatchNorm2d(layer.channels, eps=batchnorm.BN_EPS,
                              momentum=batchnorm.BN_MOMENTUM)
        twin.load_state_dict(layer.state_dict())
        return twin.to(layer.weight.dtype)
    else:
        raise TypeError(f"no built-in equivalent for {type(layer).__name__}")
    with torch.no_grad():
        twin.weight.copy_(layer.weight)
        if layer.bias is not None:
            twin.bias.copy_(layer.bias)
    return twin.to(layer.weight.dtype)


def builtin_equivalent(model: nn.Module) -> nn.Sequential:
    """The same network (same weights, same parameter order) from nn.Linear, nn.Conv2d,
    nn.MaxPool2d, nn.ReLU, ...: the reference for gradchecks and speed benchmarks."""
    front = _AddChannel() if isinstance(model, CNN) else nn.Flatten()
    return nn.Sequential(front, *(_builtin_layer(layer) for layer in model.layers))


# ----------------------------------------------------------------------------------- the checks


def _random(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=generator, dtype=torch.float64) * scale
            ).requires_grad_()


def _targets(batch: int, classes: int, seed: int) -> torch.Tensor:
    return torch.randint(0, classes, (batch,), generator=torch.Generator().manual_seed(seed))


def _away_from_zero(tensor: torch.Tensor, margin: float = 0.05) -> torch.Tensor:
    """Finite differences across relu's kink at 0 are meaningless: keep inputs clear of it."""
    with torch.no_grad():
        tensor[tensor.abs() < margin] += 2 * margin
    return tensor


_RUNNING_MEAN = torch.tensor([0.5, -1.0], dtype=torch.float64)
_RUNNING_VAR = torch.tensor([2.0, 0.25], dtype=torch.float64)


def _op_checks() -> list[Check]:
    checks = [
        Check("Linear", "F.linear", lambda: (
            (_random(4, 5, seed=1), _random(3, 5, seed=2), _random(3, seed=3)),
            functions.linear, F.linear)),
        Check("Linear (no bias)", "F.linear", lambda: (
            (_random(4, 5, seed=4), _random(3, 5, seed=5)),
            functions.linear, F.linear)),
    ]
    for name, builtin in (("relu", torch.relu), ("sigmoid", torch.sigmoid),
                          ("tanh", torch.tanh)):
        function = functions.ACTIVATION_FUNCTIONS[name]
        checks.append(Check(name, f"torch.{name}", lambda function=function, builtin=builtin: (
            (_away_from_zero(_random(4, 6, seed=6, scale=2.0)),), function.apply, builtin)))
    targets = _targets(5, 4, seed=8)
    checks += [
        Check("softmax cross-entropy", "F.cross_entropy", lambda: (
            (_random(5, 4, seed=7, scale=2.0),),
            lambda logits: functions.softmax_cross_entropy(logits, targets),
            lambda logits: F.cross_entropy(logits, targets))),
        Check("softmax cross-entropy, smoothing 0.1", "F.cross_entropy(label_smoothing)",
              lambda: ((_random(5, 4, seed=17, scale=2.0),),
                       lambda logits: functions.softmax_cross_entropy(logits, targets, 0.1),
                       lambda logits: F.cross_entropy(logits, targets, label_smoothing=0.1))),
        Check("softmax MSE", "torch.softmax, squared error", lambda: (
            (_random(5, 4, seed=9, scale=2.0),),
            lambda logits: functions.softmax_mse(logits, targets),
            lambda logits: reference_mse(logits, targets))),
        Check("Conv2d 3×3", "F.conv2d", lambda: (
            (_random(2, 2, 5, 6, seed=10), _random(3, 2, 3, 3, seed=11), _random(3, seed=12)),
            conv.conv2d, lambda x, w, b: F.conv2d(x, w, b, padding="same"))),
        Check("Conv2d 5×3 (no bias)", "F.conv2d", lambda: (
            (_random(2, 2, 6, 5, seed=13), _random(2, 2, 5, 3, seed=14)),
            conv.conv2d, lambda x, w: F.conv2d(x, w, padding="same"))),
        Check("MaxPool2d 2×2/2", "F.max_pool2d", lambda: (
            (_random(2, 3, 6, 7, seed=15),), conv.max_pool2d, lambda x: F.max_pool2d(x, 2))),
        Check("BatchNorm2d (batch statistics)", "F.batch_norm(training=True)", lambda: (
            (_random(3, 2, 3, 4, seed=18, scale=2.0), _random(2, seed=19), _random(2, seed=26)),
            lambda x, gamma, beta: batchnorm.batch_norm2d(x, gamma, beta)[0],
            lambda x, gamma, beta: F.batch_norm(x, None, None, gamma, beta, training=True,
                                                eps=batchnorm.BN_EPS))),
        Check("BatchNorm2d (running statistics)", "F.batch_norm(training=False)", lambda: (
            (_random(3, 2, 3, 4, seed=27), _random(2, seed=28), _random(2, seed=29)),
            lambda x, gamma, beta: batchnorm.batch_norm2d(x, gamma, beta, _RUNNING_MEAN,
                                                          _RUNNING_VAR)[0],
            lambda x, gamma, beta: F.batch_norm(x, _RUNNING_MEAN, _RUNNING_VAR, gamma, beta,
                                                training=False, eps=batchnorm.BN_EPS))),
        Check("Flatten", "torch.flatten", lambda: (
            (_random(2, 3, 2, 2, seed=16),), conv.flatten, lambda x: torch.flatten(x, 1))),
    ]
    fused_targets = _targets(5, 3, seed=20)
    for name, builtin in (("relu", torch.relu), ("tanh", torch.tanh)):
        checks.append(Check(
            f"MLP {name} + ce, fused",
            f"F.linear, torch.{name}, F.cross_entropy",
            lambda name=name, builtin=builtin: (
                (_away_from_zero(_random(5, 4, seed=21)), _random(6, 4, seed=22),
                 _random(6, seed=23), _random(3, 6, seed=24), _random(3, seed=25)),
                lambda x, *params: fused.mlp_cross_entropy(x, fused_targets, name,
                                                           list(params))[0],
                lambda x, w1, b1, w2, b2: F.cross_entropy(
                    F.linear(builtin(F.linear(x, w1, b1)), w2, b2), fused_targets))))
    return checks


MODEL_SPECS: tuple[tuple[str, dict[str, Any]], ...] = (
    *((f"MLP {act} + {loss}", {"arch": "mlp", "act": act, "loss": loss, "hidden": "5",
                               "norm_size": "4,4"})
      for loss in ("ce", "mse") for act in ("relu", "sigmoid", "tanh", "none")),
    *((f"CNN {act} + {loss}", {"arch": "cnn", "act": act, "loss": loss, "conv": "3x3x2,3x3x2",
                               "norm_size": "6,6"})
      for act, loss in (("relu", "ce"), ("relu", "mse"), ("tanh", "ce"))),
    ("CNN 5×5 no bias + ce", {"arch": "cnn", "act": "relu", "loss": "ce", "conv": "5x5x2",
                              "norm_size": "6,6", "bias": False}),
    ("CNN batch norm + smoothed ce", {"arch": "cnn", "act": "relu", "loss": "ce",
                                      "conv": "3x3x2,3x3x2", "norm_size": "8,8",
                                      "batch_norm": True, "label_smoothing": 0.1}),
)


def model_check(name: str, options: dict[str, Any], seed: int = 0) -> Check:
    """Loss of a whole model as a function of (images, *parameters), against its twin made of
    torch built-ins with the same weights."""
    from torch.func import functional_call


    def make() -> tuple[Inputs, Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        config = make_config(options)
        torch.manual_seed(seed)
        model = build_model(config, MODEL_CLASSES).double()
        twin = builtin_equivalent(model).double()
        names = [name for name, _ in model.named_parameters()]
        twin_names = [name for name, _ in twin.named_parameters()]
        images = _random(2, *config.norm_size, seed=seed + 100)
        targets = _targets(2, MODEL_CLASSES, seed=seed + 101)
        parameters = tuple(parameter.detach().clone().requires_grad_()
                           for parameter in model.parameters())
        ours_loss = functions.loss_function(config.loss, config.label_smoothing)
        torch_loss = REFERENCE_LOSSES[config.loss]
        if config.label_smoothing:
            torch_loss = functools.partial(F.cross_entropy,
                                           label_smoothing=config.label_smoothing)

        def ours(images: torch.Tensor, *parameters: torch.Tensor) -> torch.Tensor:
            logits = functional_call(model, dict(zip(names, parameters, strict=True)), (images,))
            return ours_loss(logits, targets)

        def theirs(images: torch.Tensor, *parameters: torch.Tensor) -> torch.Tensor:
            logits = functional_call(twin, dict(zip(twin_names, parameters, strict=True)),
                                     (images,))
            return torch_loss(logits, targets)

        return (images, *parameters), ours, theirs

    modules = "nn.Conv2d, nn.MaxPool2d, nn.Linear" if options["arch"] == "cnn" else "nn.Linear"
    if options.get("batch_norm"):
        modules = modules.replace("nn.MaxPool2d", "nn.MaxPool2d, nn.BatchNorm2d")
    loss = "F.cross_entropy" if options["loss"] == "ce" else "torch softmax MSE"
    return Check(name, f"{modules}, {loss}", make)


def all_checks() -> list[Check]:
    return _op_checks() + [model_check(name, options) for name, options in MODEL_SPECS]
