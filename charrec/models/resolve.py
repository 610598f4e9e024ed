"""Which model answers: an explicit `--model PATH`, `--model bundled`, or by default
`saved_models/recognition.pth` in the current folder if it exists, else the bundled model.

The bundled model is package data (`charrec/models/bundled.pth`, and the same network as
`bundled.onnx` for ONNX Runtime), found with `importlib.resources` and loaded like any
checkpoint (`charrec.checkpoint.load_model`, `weights_only=True`) or ONNX file
(`charrec.onnx_model`). This module only chooses and describes; reading and validating the
files belong to `charrec.checkpoint` and `charrec.onnx_model`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

from charrec.errors import CheckpointError

BUNDLED = "bundled"
BUNDLED_FILE = "bundled.pth"
ONNX_SUFFIX = ".onnx"
DEFAULT_MODEL = Path("saved_models/recognition.pth")
BACKEND_NAMES = {"onnx": "ONNX Runtime", "torch": "torch"}


@dataclass(frozen=True)
class ModelChoice:
    """The checkpoint to load and why: `source` is "option" (--model PATH), "local"
    (./saved_models/recognition.pth) or "bundled"."""

    path: Path
    source: str

    @property
    def bundled(self) -> bool:
        return self.source == BUNDLED

    @property
    def is_onnx(self) -> bool:
        """The chosen file is an ONNX model (`--model x.onnx`), not a checkpoint."""
        return self.path.suffix.lower() == ONNX_SUFFIX

    @property
    def onnx_path(self) -> Path | None:
        """The model's ONNX form, if it has one: the file itself, or the bundled model's
        `bundled.onnx` beside `bundled.pth`."""
        if self.is_onnx:
            return self.path
        if self.bundled:
            sibling = self.path.with_suffix(ONNX_SUFFIX)
            return sibling if sibling.is_file() else None
        return None


def bundled_resource() -> Traversable:
    """The bundled checkpoint inside the installed package (it may not exist)."""
    return resources.files("charrec.models").joinpath(BUNDLED_FILE)


_resource_paths = ExitStack()  # keeps a zip-extracted copy alive until the process exits


def bundled_path() -> Path:
    """A file-system path to the bundled checkpoint; CheckpointError if this install has none."""
    resource = bundled_resource()
    if not resource.is_file():
        raise CheckpointError("no bundled model in this install; train one with `charrec train`")
    return Path(_resource_paths.enter_context(resources.as_file(resource)))


def resolve_model(model: str | Path | None, cwd: str | Path | None = None) -> ModelChoice:
    """The model `charrec predict`/`charrec test` use for `--model` (None when not given)."""
    if model is not None and str(model) == BUNDLED:
        return ModelChoice(bundled_path(), BUNDLED)
    if model is not None:
        return ModelChoice(Path(model), "option")
    local = Path(cwd or ".") / DEFAULT_MODEL
    if local.is_file():
        return ModelChoice(DEFAULT_MODEL if cwd is None else local, "local")
    return ModelChoice(bundled_path(), BUNDLED)


def describe_model(choice: ModelChoice, checkpoint: dict[str, Any],
                   backend: str | None = None) -> str:
    """One line naming the model that answered, e.g. `bundled (charrec VERSION, cnn, val NN.N%)`
    or the checkpoint's path; with `backend`, which one ran it (`..., ONNX Runtime)`).
    `checkpoint` needs only `charrec_version`, `config` and `metrics` (an ONNX file's
    metadata carries them too)."""
    config = checkpoint.get("config", {})
    metrics = checkpoint.get("metrics", {})
    details = [f"charrec {checkpoint.get('charrec_version', '?')}", str(config.get("arch", "mlp"))]
    if isinstance(metrics.get("best_val_accuracy"), float):
        details.append(f"val {100 * metrics['best_val_accuracy']:.1f}%")
    parent = tuned_from(checkpoint)
    if parent:
        details.append(f"tuned from {parent}")
    if backend is not None:
        details.append(BACKEND_NAMES.get(backend, backend))
    if choice.bundled:
        return f"bundled ({', '.join(details)})"
    return f"{choice.path} ({', '.join(details)})"


WEAK_ACCURACY = 0.5  # a default model below this validation accuracy gets the hint
WEAK_GAP = 0.2  # ... or one this far below the bundled model's


def weak_model_hint(choice: ModelChoice, checkpoint: dict[str, Any],
                    bundled_val_accuracy: float | None) -> str | None:
    """A one-line hint when the model picked from the folder (not named with --model) reads far
    worse than the bundled one: a newcomer's quick `charrec train` run replaces
    saved_models/recognition.pth, and predict would then answer with it."""
    if choice.source != "local":
        return None
    accuracy = checkpoint.get("metrics", {}).get("best_val_accuracy")
    if not isinstance(accuracy, float):
        return None
    weak = accuracy < WEAK_ACCURACY or (bundled_val_accuracy is not None
                                        and accuracy < bundled_val_accuracy - WEAK_GAP)
    if not weak:
        return None
    bundled = (f" (val {100 * bundled_val_accuracy:.1f}%)" if bundled_val_accuracy is not None
               else "")
    return (f"{choice.path} reads poorly (val {100 * accuracy:.1f}%); the bundled model{bundled} "
            f"may do better: add --model bundled")


def parent_record(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the model this one was tuned from (`charrec train --from`), or None."""
    parent = checkpoint.get("parent")
    return parent if isinstance(parent, dict) and parent.get("model") else None


def tuned_from(checkpoint: dict[str, Any]) -> str | None:
    """E.g. `bundled (charrec 0.1.0, val 88.7%)`: the parent, its version and accuracy."""
    parent = parent_record(checkpoint)
    if parent is None:
        return None
    details = [f"charrec {parent.get('charrec_version', '?')}"]
    if isinstance(parent.get("val_accuracy"), float):
        details.append(f"val {100 * parent['val_accuracy']:.1f}%")
    return f"{parent['model']} ({', '.join(details)})"
