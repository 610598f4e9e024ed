"""Layer-by-layer description of a network: what `charrec summary` shows (computed here, drawn by
the CLI).

`summarise(model, image_shape)` walks the model's layers and follows the shape of one image
through them: each Conv2d, MaxPool2d and Linear becomes a row with its input, filter/stride,
output and parameter count (activations and the flattening have no parameters and no row).
Shapes are written H×W×C; a flat vector is its length. Models for a config are built on torch's
"meta" device, which has shapes but no storage, so even a 400×400×3 network costs no memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from charrec.config import TrainConfig

NO_FILTER = "–"


@dataclass(frozen=True)
class LayerRow:
    """One row of the table: shapes as text (H×W×C or a length), parameters as a count."""

    layer: str
    input: str
    filter: str
    output: str
    params: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def summarise(model: nn.Module, image_shape: tuple[int, int, int]) -> list[LayerRow]:
    """Rows for `model` (an MLP or CNN: layers in `model.layers`) fed one H×W×C image."""
    from charrec.nn.layers import Conv2d, Linear, MaxPool2d

    shape: tuple[int, ...] = tuple(image_shape)
    layers = list(model.layers)
    n_linear = sum(isinstance(layer, Linear) for layer in layers)
    counts = {"Conv": 0, "Pool": 0, "FC": 0}
    rows = []
    for layer in layers:
        if isinstance(layer, Conv2d):
            counts["Conv"] += 1
            output = (shape[0], shape[1], layer.out_channels)
            filter_text = f"{layer.kernel_size[0]}×{layer.kernel_size[1]}/1"
            name = f"Conv{counts['Conv']}"
        elif isinstance(layer, MaxPool2d):
            counts["Pool"] += 1
            output = (shape[0] // layer.size, shape[1] // layer.size, shape[2])
            filter_text = f"{layer.size}×{layer.size}/{layer.size}"
            name = f"Pool{counts['Pool']}"
        elif isinstance(layer, Linear):
            counts["FC"] += 1
            shape = (layer.in_features,)  # whatever came before is flattened
            output = (layer.out_features,)
            filter_text = NO_FILTER
            name = "FC" if n_linear == 1 else f"FC{counts['FC']}"
        else:  # activations and Flatten: no parameters, shape unchanged or flattened
            continue
        params = sum(parameter.numel() for parameter in layer.parameters())
        rows.append(LayerRow(name, shape_text(shape), filter_text, shape_text(output), params))
        shape = output
    return rows


def total_params(rows: list[LayerRow]) -> int:
    return sum(row.params for row in rows)


def image_shape(config: TrainConfig) -> tuple[int, int, int]:
    return (config.norm_size[0], config.norm_size[1], config.channels)


def summarise_config(config: TrainConfig, n_classes: int = 26) -> list[LayerRow]:
    """Rows for the network `config` describes, built without allocating its weights."""
    import torch

    from charrec.nn.model import build_model

    with torch.device("meta"):
        model = build_model(config, n_classes)
    return summarise(model, image_shape(config))


def architecture_line(config: TrainConfig, n_classes: int = 26) -> str:
    """One line: the input shape, the shape after each conv block / Linear, the parameter count.

    e.g. "cnn 32×32×1 → 16×16×32 → 8×8×64 → 26 (66,138 parameters)".
    """
    rows = summarise_config(config, n_classes)
    shapes = [shape_text(image_shape(config))] + [
        row.output for row in rows if not row.layer.startswith("Conv")]
    return f"{config.arch} {' → '.join(shapes)} ({total_params(rows):,} parameters)"
