"""Writing a trained network as an ONNX model (`charrec export`), checked by running it.

The graph is written node by node from the network's own layers (`charrec.nn.layers`), each
as the standard ONNX operator that computes the same function:

    Linear      y = x W^T + b           Gemm(transB=1)
    Conv2d      'same', stride 1        Conv(pads = kernel // 2 on each side)
    MaxPool2d   k x k windows, stride k MaxPool(kernel k, stride k; a partial window is dropped)
    BatchNorm2d (running statistics)    folded into the Conv before it where exact (as
                                        `CNN.reading_layers`), else BatchNormalization
    Flatten     [B, C, H, W] -> [B, CHW] Flatten(axis=1)
    relu, sigmoid, tanh                 Relu, Sigmoid, Tanh ("none": nothing)

(torch's exporters trace `forward`; ours runs hand-written autograd Functions that they would
each need a symbolic rule for, while the layers map one to one onto ONNX operators.) The input
is `image` float32 [N, 1, H, W] after charrec's preprocessing with a free batch size N, the
output `logits` [N, classes]; the metadata is described in `charrec.onnx_model`.

Before anything is written, the model's bytes run on ONNX Runtime with a batch of images and
their logits are compared with torch's: a model that differs by more than `TOLERANCE` is
refused, and no file is left behind. Needs the `onnx` package (`pip install charrec[export]`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from charrec import __version__
from charrec.config import TrainConfig
from charrec.errors import ConfigError, ExportError
from charrec.files import atomic_write
from charrec.nn.batchnorm import BN_EPS
from charrec.nn.layers import Activation, BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d
from charrec.nn.model import CNN, MLP, FoldedConv, predict_logits
from charrec.onnx_model import INPUT_NAME, OUTPUT_NAME, PREPROCESSING

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Gemm, Conv, MaxPool, Flatten and the activations as written here
TOLERANCE = 1e-4  # largest |logit difference| between ONNX Runtime and torch that is accepted
CHECK_IMAGES = 64
ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


@dataclass
class ExportResult:
    path: Path
    size_bytes: int
    max_difference: float  # largest |logit difference| from torch on the check batch
    n_checked: int
    opset: int


def import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ExportError("exporting needs the onnx package: pip install 'charrec[export]' "
                          "(or pip install onnx)") from None
    return onnx


def build_onnx(network: nn.Module, config: TrainConfig, classes: list[str],
               metadata: dict[str, Any], opset: int = DEFAULT_OPSET) -> Any:
    """The network as an `onnx.ModelProto` (weights inside, metadata set)."""
    onnx = import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ConfigError(f"--opset {opset}: choose {MIN_OPSET} to "
                          f"{onnx.defs.onnx_opset_version()} (this onnx package's newest)")
    nodes: list[Any] = []
    weights: list[Any] = []
    current = INPUT_NAME

    def add(op: str, inputs: list[str], **attributes: Any) -> None:
        nonlocal current
        name = f"{op.lower()}_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
        current = name

    def weight(name: str, tensor: torch.Tensor) -> str:
        array = tensor.detach().cpu().to(torch.float32).numpy()
        weights.append(numpy_helper.from_array(array, name=f"{name}_{len(weights)}"))
        return weights[-1].name

    if isinstance(network, MLP):
        add("Flatten", [current], axis=1)
    elif not isinstance(network, CNN):
        raise ExportError(f"cannot export a {type(network).__name__}: charrec exports its MLP "
                          f"and CNN")
    # batch norms folded into their convolutions where exact, as torch reads letters
    layers = network.reading_layers() if getattr(network, "batch_norm", False) else \
        list(network.layers)
    for layer in layers:
        if isinstance(layer, Linear):
            inputs = [current, weight("weight", layer.weight)]
            if layer.bias is not None:
                inputs.append(weight("bias", layer.bias))
            add("Gemm", inputs, transB=1)
        elif isinstance(layer, Conv2d | FoldedConv):
            kernel_h, kernel_w = layer.kernel_size
            inputs = [current, weight("filters", layer.weight)]
            if layer.bias is not None:
                inputs.append(weight("bias", layer.bias))
            add("Conv", inputs, kernel_shape=[kernel_h, kernel_w],
                pads=[kernel_h // 2, kernel_w // 2, kernel_h // 2, kernel_w // 2],
                strides=[1, 1])
        elif isinstance(layer, MaxPool2d):
            add("MaxPool", [current], kernel_shape=[layer.size, layer.size],
                strides=[layer.size, layer.size])
        elif isinstance(layer, Flatten):
            add("Flatten", [current], axis=1)
        elif isinstance(layer, BatchNorm2d):
            add("BatchNormalization",
                [current, weight("gamma", layer.weight), weight("beta", layer.bias),
                 weight("mean", layer.running_mean), weight("var", layer.running_var)],
                epsilon=BN_EPS)
        elif isinstance(layer, Activation):
            if layer.name in ACTIVATIONS:
                add(ACTIVATIONS[layer.name], [current])
            elif layer.name != "none":
                raise ExportError(f"cannot export the activation {layer.name!r}")
        else:
            raise ExportError(f"cannot export the layer {type(layer).__name__}")
    nodes[-1].output[0] = OUTPUT_NAME
    height, width = config.norm_size
    graph = helper.make_graph(
        nodes, "charrec",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                       ["N", config.channels, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", len(classes)])],
        initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="charrec", producer_version=__version__)
    model.ir_version = min(model.ir_version, _ir_version_for(onnx, opset))
    helper.set_model_props(model, {key: value if isinstance(value, str) else json.dumps(value)
                                   for key, value in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def _ir_version_for(onnx: Any, opset: int) -> int:
    """The oldest IR version that carries `opset`, so older ONNX Runtimes load the file too."""
    fitting = [row[1] for row in onnx.helper.VERSION_TABLE if row[2] >= opset]
    return min(fitting) if fitting else onnx.IR_VERSION


def model_metadata(config: TrainConfig, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The metadata properties `charrec.onnx_model` reads back."""
    metrics = checkpoint.get("metrics", {})
    headline = {key: metrics[key] for key in ("best_val_accuracy", "best_epoch", "test_accuracy")
                if isinstance(metrics.get(key), int | float)}
    return {"classes": list(checkpoint["classes"]), "norm_size": list(config.norm_size),
            "charrec_version": __version__, "preprocessing": PREPROCESSING,
            "config": checkpoint["config"], "metrics": headline,
            **({"parent": checkpoint["parent"]} if checkpoint.get("parent") else {})}


def check_images(config: TrainConfig, count: int = CHECK_IMAGES, seed: int = 0) -> np.ndarray:
    """A batch to compare the backends on: uniform noise in [-1, 1] and letter-like images
    (bars and blobs on a dark ground), float32 [count, channels, H, W]."""
    rng = np.random.default_rng(seed)
    height, width = config.norm_size
    images = rng.uniform(-1, 1, (count, config.channels, height, width)).astype(np.float32)
    for image in images[count // 2:]:
        image[:] = -1.0
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        image[:, top:top + height // 2, left:left + max(1, width // 6)] = 1.0
        image[:, top:top + max(1, height // 6), left:left + width // 2] = 1.0
    return images


def verify(model_bytes: bytes, network: nn.Module, images: np.ndarray) -> float:
    """Largest |logit difference| between ONNX Runtime (on the bytes) and torch."""
    try:
        import onnxruntime
    except ImportError:
        raise ExportError("exporting checks the model on ONNX Runtime: pip install "
                          "onnxruntime") from None

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(model_bytes, options,
                                               providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own kinds
        first = (str(error).strip().splitlines() or ["unknown error"])[-1][:200]
        raise ExportError(f"ONNX Runtime {onnxruntime.__version__} cannot load the exported "
                          f"model ({first}); try a lower --opset") from None
    theirs = session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    ours = predict_logits(network, torch.from_numpy(images)).numpy()
    if theirs.shape != ours.shape:
        return float("inf")
    return float(np.abs(theirs.astype(np.float64) - ours).max())


def export_model(network: nn.Module, config: TrainConfig, checkpoint: dict[str, Any],
                 out: str | Path, opset: int = DEFAULT_OPSET,
                 images: np.ndarray | None = None) -> ExportResult:
    """Write `network` to `out` as ONNX, if ONNX Runtime's logits match torch's within
    TOLERANCE on `images` (default `check_images`); ExportError, and no file, otherwise. A disk
    error is a `WriteError` (a file already at `out` is left as it was)."""
    model = build_onnx(network, config, list(checkpoint["classes"]),
                       model_metadata(config, checkpoint), opset)
    data = model.SerializeToString()
    images = check_images(config) if images is None else images
    difference = verify(data, network, images)
    if not difference <= TOLERANCE:
        raise ExportError(f"refused to write {out}: ONNX Runtime's logits differ from torch's "
                          f"by {difference:.2g} (more than {TOLERANCE:g})")
    path = atomic_write(out, lambda handle: handle.write(data), "the ONNX model")
    return ExportResult(path, len(data), difference, len(images), opset)
