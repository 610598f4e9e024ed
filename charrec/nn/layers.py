"""Layers: `nn.Module`s that hold weights and call our autograd Functions.

`Linear` and `Conv2d` (weights), `Activation`, `MaxPool2d` and `Flatten` (none). Initialisation
is one table (`init_std`) for both weight layers. The maths lives in `charrec.nn.functions` and
`charrec.nn.conv`; whole networks are assembled in `charrec.nn.model`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charrec.nn import functions
from charrec.nn.conv import POOL_SIZE, conv2d, flatten, max_pool2d

__all__ = ["POOL_SIZE", "Activation", "Conv2d", "Flatten", "Linear", "MaxPool2d", "init_std",
           "initialisation_for"]

INITS = ("kaiming", "xavier", "normal")


def init_std(init: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the initial weights: "kaiming" sqrt(2/fan_in) (for relu), "xavier"
    sqrt(2/(fan_in+fan_out)) (for sigmoid/tanh/none), "normal" 1 (plain N(0, 1), the textbook
    baseline)."""
    stds = {"kaiming": math.sqrt(2.0 / fan_in), "xavier": math.sqrt(2.0 / (fan_in + fan_out)),
            "normal": 1.0}
    return stds[init]


def initialisation_for(act: str, init: str) -> str:
    """The weight initialisation a config means: fan-in scaled to suit the activation by default."""
    if init == "normal":
        return "normal"
    return "kaiming" if act == "relu" else "xavier"


def _reset(weight: nn.Parameter, bias: nn.Parameter | None, init: str, fan_in: int,
           fan_out: int) -> None:
    """Weights N(0, init_std); biases 0 (N(0, 1) under "normal"). Tensors on the "meta" device
    (shapes without storage, to check a checkpoint's shapes) have no values to draw: sampling
    them would only make torch import its compiler, which is slow."""
    if weight.is_meta:
        return
    with torch.no_grad():
        weight.normal_(0.0, init_std(init, fan_in, fan_out))
        if bias is not None:
            bias.normal_(0.0, 1.0) if init == "normal" else bias.zero_()


class Linear(nn.Module):
    """`y = x W^T + b` with W [out, in]."""

    def __init__(self, in_features: int, out_features: int, init: str = "kaiming",
                 bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        _reset(self.weight, self.bias, init, self.in_features, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functions.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, bias={self.bias is not None}"


class Activation(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functions.activation(self.name, x)

    def extra_repr(self) -> str:
        return self.name


class Conv2d(nn.Module):
    """'same'-padded stride-1 convolution with filters W [O, C, kh, kw] (odd kh, kw) and bias [O];
    initialised like `Linear` with fan_in = C*kh*kw and fan_out = O*kh*kw."""

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
        _reset(self.weight, self.bias, init, self.in_channels * area, self.out_channels * area)

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
