"""The checkpoint file format: the one place that writes and reads it.

A checkpoint is a plain dict saved with `torch.save`:

    {"format_version": 1, "charrec_version": str, "config": {...TrainConfig fields...},
     "classes": ["A", ..., "Z"], "metrics": {"best_val_accuracy", "best_epoch", "history", ...},
     "state_dict": {name: tensor},
     "resume": {"epoch", "state_dict", "optimizer_state", "rng_states"} (optional, for --resume)}

Only plain types go in, so it loads with `torch.load(weights_only=True)`, which refuses pickled
code. Files are written to a temporary file in the same folder and `os.replace`d, so a crash or
Ctrl-C never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from charrec import CLASSES, __version__
from charrec.config import TrainConfig, config_from_dict
from charrec.errors import CheckpointError, ConfigError
from charrec.files import atomic_write

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "config", "classes", "metrics", "state_dict")


def make_checkpoint(config: TrainConfig, state_dict: dict[str, torch.Tensor],
                    metrics: dict[str, Any], resume: dict[str, Any] | None = None,
                    classes: tuple[str, ...] = CLASSES) -> dict[str, Any]:
    """The checkpoint dict; `resume` (last epoch's weights, optimizer and RNG states) lets
    `charrec train --resume` continue the run exactly."""
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "charrec_version": __version__,
        "config": config.to_dict(),
        "classes": list(classes),
        "metrics": metrics,
        "state_dict": {name: tensor.detach().cpu().clone() for name, tensor in state_dict.items()},
    }
    if resume is not None:
        checkpoint["resume"] = resume
    return checkpoint


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write atomically: the previous file at `path` stays intact until the new one is complete."""
    return atomic_write(path, lambda handle: torch.save(checkpoint, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint (data only: code inside the pickle is refused)."""
    path = Path(path)
    if not path.is_file():
        hint = " (train one with `charrec train`)" if not path.exists() else ""
        raise CheckpointError(f"checkpoint not found: {path}{hint}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{path}: refused to load: the file contains objects other than plain data "
            f"(possibly code); only charrec checkpoints are accepted. {first_line}"[:400]
        ) from None
    except Exception as error:  # noqa: BLE001 - torch's unpickler raises many kinds on bad bytes
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch "
                              f"file: {type(error).__name__})") from None
    return validate_checkpoint(checkpoint, path)


def validate_checkpoint(checkpoint: Any, path: str | Path = "checkpoint") -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
        raise CheckpointError(f"{path}: not a charrec checkpoint (no format_version; a bare "
                              f"state_dict or another program's file?)")
    version = checkpoint["format_version"]
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}; this charrec "
                              f"({__version__}) reads version {FORMAT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return checkpoint


def checkpoint_config(checkpoint: dict[str, Any], path: str | Path = "checkpoint") -> TrainConfig:
    try:
        return config_from_dict(checkpoint["config"])
    except (ConfigError, AttributeError, TypeError) as error:
        raise CheckpointError(f"{path}: invalid config inside checkpoint: {error}") from None


def load_model(path: str | Path) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the network from a checkpoint alone -> (model in eval mode, config, checkpoint)."""
    from charrec.nn.model import build_model

    checkpoint = load_checkpoint(path)
    config = checkpoint_config(checkpoint, path)
    classes = checkpoint["classes"]
    model = build_model(config, len(classes))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: weights do not match the stored architecture "
                              f"({str(error).splitlines()[0]})") from None
    model.eval()
    return model, config, checkpoint
