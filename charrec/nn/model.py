"""Network modules built on our autograd Functions: `Linear`, `Activation` and the `MLP`.

`build_model(config, n_classes)` is the one place that turns a `TrainConfig` into a network, so
training, testing, predicting and checkpoint loading all build the same architecture.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charrec.nn import functions
from charrec.config import TrainConfig


class Linear(nn.Module):
    """`y = x W^T + b` with W [out, in]; initialised by fan-in unless `init == "normal"`.

    init: "kaiming" (std sqrt(2/fan_in), for relu), "xavier" (std sqrt(2/(fan_in+fan_out)),
    for sigmoid/tanh/none) or "normal" (plain N(0, 1), the textbook baseline). Biases start at 0
    (N(0, 1) under "normal").
    """

    def __init__(self, in_features: int, out_features: int, init: str = "kaiming",
                 bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        stds = {
            "kaiming": math.sqrt(2.0 / self.in_features),
            "xavier": math.sqrt(2.0 / (self.in_features + self.out_features)),
            "normal": 1.0,
        }
        with torch.no_grad():
            self.weight.normal_(0.0, stds[init])
            if self.bias is not None:
                self.bias.normal_(0.0, 1.0) if init == "normal" else self.bias.zero_()

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


def initialisation_for(act: str, init: str) -> str:
    """The weight initialisation a config means: fan-in scaled to suit the activation by default."""
    if init == "normal":
        return "normal"
    return "kaiming" if act == "relu" else "xavier"


class MLP(nn.Module):
    """input_size -> hidden_sizes... -> output_size, `act` after every hidden Linear.

    `n_layers` counts Linear layers, so it must equal len(hidden_sizes) + 1; `n_layers=1` is a
    linear classifier. Images [B, H, W] are flattened to [B, H*W]; the output is logits [B, C].
    """

    def __init__(self, input_size: int, output_size: int, hidden_sizes: tuple[int, ...] = (),
                 n_layers: int | None = None, act: str = "relu", init: str = "auto",
                 bias: bool = True) -> None:
        super().__init__()
        if n_layers is not None and n_layers != len(hidden_sizes) + 1:
            raise ValueError(f"n_layers={n_layers} needs {n_layers - 1} hidden sizes, "
                             f"got {len(hidden_sizes)}")
        weight_init = initialisation_for(act, init)
        sizes = (input_size, *hidden_sizes, output_size)
        layers: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            is_output = index == len(sizes) - 2
            layers.append(Linear(fan_in, fan_out, init="xavier" if is_output and init != "normal"
                                 else weight_init, bias=bias))
            if not is_output:
                layers.append(Activation(act))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images.reshape(images.shape[0], -1))


def build_model(config: TrainConfig, n_classes: int) -> nn.Module:
    """The network a config describes (architecture fields only; weights freshly initialised)."""
    if config.arch == "mlp":
        return MLP(config.input_size, n_classes, config.hidden, config.layers, config.act,
                   config.init, config.bias)
    if config.arch == "cnn":
        from charrec.nn.conv import build_cnn  # conv builds on this module's Linear

        return build_cnn(config, n_classes)
    raise ValueError(f"unknown architecture {config.arch!r}")


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
