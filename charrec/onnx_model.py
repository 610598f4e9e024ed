"""Reading a charrec model in ONNX form with ONNX Runtime: the file's checks and its metadata.

An ONNX model charrec reads (what `charrec export` writes) has one input `image`, float32
[N, 1, H, W] (N free: any batch), holding images after charrec's preprocessing
(`charrec.data.preprocess`), one output `logits` [N, len(classes)], and these metadata
properties (JSON values, except the two plain strings):

    classes          ["A", ..., "Z"]            the letter of each output, in order
    norm_size        [H, W]                     the image size the network reads
    charrec_version  "0.1.0"                    the charrec that exported it
    preprocessing    text                       what the input must be (PREPROCESSING)
    config           {...TrainConfig fields...} the checkpoint's config (data_dir, seed, ...)
    metrics          {"best_val_accuracy": ...} the checkpoint's headline figures

Files are read whole and given to ONNX Runtime as bytes, so a model that points to external
data files cannot load them: those are refused, like models that need custom operator
libraries (none are registered). Only numpy and onnxruntime are imported: predicting with an
ONNX model never imports torch. Writing ONNX files belongs to `charrec.export`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrec.errors import CheckpointError

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
PREPROCESSING = (
    "charrec preprocessing (charrec.data.preprocess): the image upright per EXIF, grayscale "
    "(transparency over black or white, whichever contrasts), resized bilinearly to norm_size "
    "(H, W), contrast stretched to its full range, inverted when the median of its border ring "
    "(1/8 of each side) is above its mean (light letter on dark), mapped to [-1, 1]; float32 "
    "[N, 1, H, W]")


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime can be imported here (charrec falls back to torch where not)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


@dataclass
class OnnxModel:
    """An ONNX model loaded into an ONNX Runtime session, with charrec's metadata read."""

    path: Path
    session: Any  # onnxruntime.InferenceSession
    classes: list[str]
    norm_size: tuple[int, int]
    metadata: dict[str, Any]  # charrec_version, config, metrics (what `describe_model` reads)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits [N, len(classes)] of preprocessed images float32 [N, 1, H, W]."""
        if len(images) == 0:
            return np.empty((0, len(self.classes)), dtype=np.float32)
        return self.session.run(None, {self.session.get_inputs()[0].name:
                                       np.ascontiguousarray(images, dtype=np.float32)})[0]


def load_onnx(path: str | Path, threads: int | None = 1) -> OnnxModel:
    """Read and check an .onnx file -> OnnxModel; CheckpointError (one line) if it is not a
    charrec model ONNX Runtime can run here. `threads`: ONNX Runtime's threads per operator
    (None: one per core). One by default: these networks are small, and on a busy machine
    extra threads wait for cores more than they help (docs/benchmarks.md)."""
    path = Path(path)
    if not path.is_file():
        hint = " (write one with `charrec export`)" if not path.exists() else ""
        raise CheckpointError(f"ONNX model not found: {path}{hint}")
    data = path.read_bytes()
    if not data:
        raise CheckpointError(f"{path}: empty file, not an ONNX model")
    session = _session(path, data, threads)
    metadata = session.get_modelmeta().custom_metadata_map
    classes, norm_size = _charrec_metadata(path, metadata)
    _check_signature(path, session, classes, norm_size)
    extra = {key: _mapping(_json(metadata.get(key), {})) for key in ("config", "metrics")}
    extra["charrec_version"] = metadata.get("charrec_version", "?")
    # `charrec train --from`'s record
    extra["parent"] = _mapping(_json(metadata.get("parent"), None)) or None
    return OnnxModel(path, session, classes, norm_size, extra)


def _session(path: Path, data: bytes, threads: int | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are not the user's business
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises its own kinds for bad files
        raise CheckpointError(f"{path}: {_load_problem(str(error))}") from None


def _load_problem(message: str) -> str:
    """What an ONNX Runtime load error means, in one line."""
    lowered = message.lower()
    if "external" in lowered and "data" in lowered:
        return ("the model keeps its weights in external data files; charrec reads only "
                "self-contained .onnx files (as `charrec export` writes)")
    if "not a registered function/op" in lowered or "no opset import for domain" in lowered:
        return ("the model needs a custom operator library, which charrec does not load; "
                "use a model of standard ONNX operators (as `charrec export` writes)")
    first = (message.strip().splitlines() or ["unknown error"])[-1][:200]
    return f"not a readable ONNX model (truncated, or not an .onnx file: {first})"


def _mapping(value: Any) -> dict[str, Any]:
    """A metadata value that must be a JSON object: anything else counts as absent."""
    return value if isinstance(value, dict) else {}


def _json(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


def _charrec_metadata(path: Path, metadata: dict[str, str]) -> tuple[list[str], tuple[int, int]]:
    classes = _json(metadata.get("classes"), None)
    norm_size = _json(metadata.get("norm_size"), None)
    if classes is None or norm_size is None:
        raise CheckpointError(f"{path}: not a charrec ONNX model (no `classes` and `norm_size` "
                              f"metadata); write one with `charrec export`")
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(item, str) and item for item in classes)):
        raise CheckpointError(f"{path}: its `classes` metadata is not a list of letters")
    if (not isinstance(norm_size, list) or len(norm_size) != 2
            or not all(type(side) is int and side > 0 for side in norm_size)):
        raise CheckpointError(f"{path}: its `norm_size` metadata is not [height, width]")
    return classes, (norm_size[0], norm_size[1])


def _check_signature(path: Path, session: Any, classes: list[str],
                     norm_size: tuple[int, int]) -> None:
    """One float input [N, 1, H, W] and one output [N, len(classes)], N free or any."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    wanted_in = ["N", 1, *norm_size]
    wanted_out = ["N", len(classes)]
    if (len(inputs) != 1 or inputs[0].type != "tensor(float)"
            or not _shape_fits(inputs[0].shape, wanted_in)):
        shown = ", ".join(f"{item.name} {item.type} {item.shape}" for item in inputs)
        raise CheckpointError(f"{path}: the model takes {shown}; charrec models take one "
                              f"float32 image [N, 1, {norm_size[0]}, {norm_size[1]}] (any N)")
    if len(outputs) != 1 or not _shape_fits(outputs[0].shape, wanted_out):
        shown = ", ".join(f"{item.name} {item.shape}" for item in outputs)
        raise CheckpointError(f"{path}: the model gives {shown}; charrec models give one "
                              f"output of logits [N, {len(classes)}] (one per class, any N)")


def _shape_fits(shape: list[Any], wanted: list[Any]) -> bool:
    """Same rank, each fixed size as wanted, and a free batch size ("N": not a fixed number,
    so one run reads a whole batch)."""
    if shape is None or len(shape) != len(wanted):
        return False
    return all(not isinstance(have, int) if want == "N" else have == want
               for have, want in zip(shape, wanted, strict=True))
