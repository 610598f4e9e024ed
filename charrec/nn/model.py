"""Whole networks from charrec's layers: the `MLP` and the `CNN`, and `build_model`.

`build_model(config, n_classes)` is the one place that turns a `TrainConfig` into a network, so
training, testing, predicting and checkpoint loading all build the same architecture. Layers and
their initialisation are in `charrec.nn.layers`; nothing here trains or reads data.
"""

from __future__ import annotations

import torch
from torch import nn

from charrec.config import TrainConfig
from charrec.errors import ConfigError
from charrec.nn.functions import loss_function
from charrec.nn.fused import mlp, mlp_cross_entropy
from charrec.nn.layers import (
    POOL_SIZE,
    Activation,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    initialisation_for,
)


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
        self.act = act
        self.linears = [layer for layer in layers if isinstance(layer, Linear)]  # not registered
        # each Linear's own parameter dict (the same dict for the module's lifetime, updated when a
        # parameter is replaced, e.g. by `load_state_dict(assign=True)` or `.to()`): the training
        # step reads W_l, b_l from it at every batch, several times cheaper than `layer.weight`,
        # `layer.bias` (nn.Module's __getattr__; docs/benchmarks.md)
        self._linear_parameters = [layer._parameters for layer in self.linears]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The layers as one fused Function (`charrec.nn.fused`): the same maths as running
        `self.layers` in turn, with less per-call overhead."""
        return mlp(images.flatten(1), self.act,
                   [layer.weight for layer in self.linears],
                   [layer.bias for layer in self.linears])

    def logits_and_cross_entropy(self, images: torch.Tensor, targets: torch.Tensor
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, mean softmax cross-entropy) with the layers and the loss as one fused
        Function (`charrec.nn.fused.MLPCrossEntropyFunction`); the logits carry no gradient."""
        params = [tensor for parameters in self._linear_parameters
                  for tensor in (parameters["weight"], parameters.get("bias"))]
        loss, logits = mlp_cross_entropy(images.flatten(1), targets, self.act, params)
        return logits, loss


class CNN(nn.Module):
    """[Conv2d -> act -> MaxPool2d 2x2/2] per entry of `conv` (kh, kw, out_channels), then
    Flatten and one Linear to `n_classes` logits. (Computed as Conv2d -> MaxPool2d -> act,
    which is the same function: the activations are non-decreasing.)

    Input: images [B, H, W] (grayscale, one channel added) or [B, C, H, W] with C = in_channels.
    """

    def __init__(self, image_size: tuple[int, int], n_classes: int,
                 conv: tuple[tuple[int, int, int], ...], in_channels: int = 1, act: str = "relu",
                 init: str = "auto", bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        weight_init = initialisation_for(act, init)
        layers: list[nn.Module] = []
        channels, (height, width) = in_channels, image_size
        for kernel_h, kernel_w, out_channels in conv:
            # pool before the activation: every activation here is non-decreasing, so
            # max(f(x)) = f(max(x)) and the gradients agree too, with f on 4x fewer values
            layers += [Conv2d(channels, out_channels, (kernel_h, kernel_w), weight_init, bias),
                       MaxPool2d(POOL_SIZE), Activation(act)]
            channels, height, width = out_channels, height // POOL_SIZE, width // POOL_SIZE
            if height == 0 or width == 0:
                raise ConfigError(
                    f"{len(conv)} conv layers each halve the image ({image_size[0]}x"
                    f"{image_size[1]}), leaving nothing after layer {len(layers) // 3}; use "
                    f"fewer --conv layers or a larger --norm-size")
        layers += [Flatten(), Linear(channels * height * width, n_classes,
                                     init="normal" if init == "normal" else "xavier", bias=bias)]
        self.layers = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.shape[1] != self.in_channels:
            raise ConfigError(f"this network takes {self.in_channels}-channel images, got "
                              f"{images.shape[1]} channel(s); charrec's preprocessing gives "
                              f"grayscale (1 channel)")
        return self.layers(images)


def build_model(config: TrainConfig, n_classes: int) -> nn.Module:
    """The network a config describes (architecture fields only; weights freshly initialised)."""
    if config.arch == "mlp":
        return MLP(config.input_size, n_classes, config.hidden, config.layers, config.act,
                   config.init, config.bias)
    if config.arch == "cnn":
        return CNN(config.norm_size, n_classes, config.conv, config.channels, config.act,
                   config.init, config.bias)
    raise ValueError(f"unknown architecture {config.arch!r}")


def logits_and_loss(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                    loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss) of `model` on a batch, for training: the loss a config names ("ce",
    "mse"). An MLP with cross-entropy runs as one fused Function (the same maths, less
    per-call overhead); its logits carry no gradient, only the loss does."""
    if isinstance(model, MLP) and loss == "ce":
        return model.logits_and_cross_entropy(images, targets)
    logits = model(images)
    return logits, loss_function(loss)(logits, targets)


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The model's logits for `images`, in eval mode and batches of `batch_size`, on the model's
    device."""
    model.eval()
    device = next(model.parameters()).device
    outputs = [model(images[start:start + batch_size].to(device))
               for start in range(0, len(images), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0)
