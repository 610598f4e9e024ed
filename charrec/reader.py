"""A model ready to read letters, on ONNX Runtime or torch: `load_reader(model, backend)`.

This is the library's way in for anything that reads images with a trained model (`charrec
predict`, `charrec test`, a server):

    from charrec.reader import load_reader
    reader = load_reader("bundled")                 # or a .pth checkpoint, or a .onnx file
    predictions, failures = reader.predict_images(["a.png", pil_image])
    print(reader.describe())    # bundled (charrec VERSION, cnn, val NN.N%, ONNX Runtime)

Which backend runs it (`backend="auto"`): ONNX Runtime for a model that has an ONNX form (the
bundled model, or a `.onnx` file) when onnxruntime is installed, and then torch is never
imported; torch otherwise. `"onnx"` and `"torch"` insist. Choosing the file is
`charrec.models.resolve`'s job, reading it `charrec.onnx_model`'s or `charrec.checkpoint`'s,
and the prediction rules (warnings) are `charrec.predict`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from charrec.errors import ConfigError
from charrec.models.resolve import ModelChoice, describe_model, parent_record, resolve_model
from charrec.predict import ImageInput, Prediction, predict_images

if TYPE_CHECKING:
    from charrec.config import TrainConfig

BACKENDS = ("auto", "onnx", "torch")


@dataclass
class Reader:
    """A loaded model: `classes`, `norm_size`, `logits(images)` and what it is (`describe`).
    On the torch backend `torch_model` holds (network, TrainConfig, checkpoint)."""

    choice: ModelChoice
    backend: str  # "onnx" or "torch": the one that runs it
    classes: list[str]
    norm_size: tuple[int, int]
    info: dict[str, Any]  # charrec_version, config (TrainConfig fields), metrics, parent
    run: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    torch_model: tuple[Any, Any, dict[str, Any]] | None = field(default=None, repr=False)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits [N, len(classes)] of preprocessed images float32 [N, 1, H, W]."""
        return self.run(images)

    def predict_images(self, images: Sequence[ImageInput], top_k: int = 1,
                       on_image: Callable[[int, int], None] | None = None, tta: bool = False
                       ) -> tuple[list[Prediction], list[str]]:
        """Each image (path or PIL image) -> (predictions in order, messages of unreadable
        ones); see `charrec.predict.predict_images`."""
        return predict_images(self, images, top_k, on_image, tta)

    def describe(self) -> str:
        """One line: which model answered and on which backend."""
        return describe_model(self.choice, self.info, self.backend)

    def tuned_from(self) -> dict[str, Any]:
        """{"tuned_from": the parent's record} for a model made by `charrec train --from`,
        else {}: what `--json` answers add."""
        parent = parent_record(self.info)
        return {"tuned_from": parent} if parent else {}

    @property
    def config(self) -> TrainConfig:
        """The training config stored with the model (data folder, seed, norm_size, ...)."""
        if self.torch_model is not None:
            return self.torch_model[1]
        from charrec.config import stored_config

        return stored_config(self.info.get("config"), self.choice.path)


def choose_backend(choice: ModelChoice, backend: str = "auto") -> str:
    """"onnx" or "torch": which backend runs `choice` when `backend` is asked for; ConfigError
    (one line) when that cannot be."""
    from charrec.onnx_model import onnxruntime_available

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torch":
        if choice.is_onnx:
            raise ConfigError(f"{choice.path} is an ONNX model, which runs on ONNX Runtime; "
                              f"--backend torch needs a charrec checkpoint (.pth)")
        return "torch"
    if choice.onnx_path is None:
        if backend == "onnx":
            raise ConfigError(f"{choice.path} has no ONNX form; write one with `charrec export "
                              f"--model {choice.path} --out model.onnx` and pass --model "
                              f"model.onnx")
        return "torch"
    if not onnxruntime_available():
        if choice.is_onnx or backend == "onnx":
            raise ConfigError("ONNX models need onnxruntime, which is not installed: "
                              "`pip install onnxruntime` (or pass a .pth checkpoint)")
        return "torch"
    return "onnx"


def open_reader(choice: ModelChoice, backend: str, threads: int | None = 1) -> Reader:
    """Load `choice` on `backend` ("onnx" or "torch", as `choose_backend` decided); `threads`
    is ONNX Runtime's (see `charrec.onnx_model.load_onnx`)."""
    if backend == "onnx":
        from charrec.onnx_model import load_onnx

        assert choice.onnx_path is not None
        model = load_onnx(choice.onnx_path, threads)
        return Reader(choice, "onnx", model.classes, model.norm_size, model.metadata,
                      model.logits)
    return _torch_reader(choice)


def load_reader(model: str | Path | None = None, backend: str = "auto",
                threads: int | None = 1,
                before_torch: Callable[[], None] | None = None) -> Reader:
    """The model `--model` names (a path, "bundled", or None for the default choice, see
    `charrec.models.resolve`), loaded on `backend` ("auto", "onnx" or "torch").
    `before_torch` runs first when torch is to run the model (the CLI imports torch its own
    way; the server sets its threads)."""
    choice = resolve_model(model)
    chosen = choose_backend(choice, backend)
    if chosen == "torch" and before_torch is not None:
        before_torch()
    return open_reader(choice, chosen, threads)


def _torch_reader(choice: ModelChoice) -> Reader:
    import torch

    from charrec.checkpoint import load_model
    from charrec.nn.model import predict_logits

    network, config, checkpoint = load_model(choice.path)

    def run(images: np.ndarray) -> np.ndarray:
        return predict_logits(network, torch.from_numpy(np.ascontiguousarray(images))).numpy()

    info = {key: checkpoint.get(key, {}) for key in ("charrec_version", "config", "metrics")}
    info["parent"] = checkpoint.get("parent")  # the model it was tuned from, if any
    return Reader(choice, "torch", list(checkpoint["classes"]), tuple(config.norm_size), info,
                  run, (network, config, checkpoint))
