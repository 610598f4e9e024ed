"""The checkpoint file format: the one place that writes and reads it.

A checkpoint is a plain dict saved with `torch.save`:

    {"format_version": 1, "charrec_version": str, "config": {...TrainConfig fields...},
     "classes": ["A", ..., "Z"], "metrics": {"best_val_accuracy", "best_epoch", "history", ...},
     "state_dict": {name: tensor},
     "resume": {"epoch", "state_dict", "optimizer_state", "rng_states"} (optional, for --resume),
     "parent": {"model", "charrec_version", "arch", "val_accuracy", "start_val_accuracy"}
               (optional: the model it was tuned from, `charrec train --from`)}

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
from charrec.config import TrainConfig, stored_config
from charrec.errors import CheckpointError
from charrec.files import atomic_write, keep_previous

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "config", "classes", "metrics", "state_dict")


def make_checkpoint(config: TrainConfig, state_dict: dict[str, torch.Tensor],
                    metrics: dict[str, Any], resume: dict[str, Any] | None = None,
                    parent: dict[str, Any] | None = None,
                    classes: tuple[str, ...] = CLASSES) -> dict[str, Any]:
    """The checkpoint dict; `resume` (last epoch's weights, optimizer and RNG states) lets
    `charrec train --resume` continue the run exactly; `parent` records the model it was
    tuned from (see `charrec.tune.Parent.record`)."""
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
    if parent is not None:
        checkpoint["parent"] = parent
    return checkpoint


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write atomically: the previous file at `path` stays intact until the new one is complete.
    A disk error raises `WriteError` (the previous file is unchanged)."""
    return atomic_write(path, lambda handle: torch.save(checkpoint, handle), "the checkpoint")


def keep_previous_checkpoint(path: str | Path) -> Path | None:
    """Before training into `path`: keep the model already there as `<stem>.prev.pth` (it
    stays at `path` too until the first new epoch replaces it). None if there was none."""
    return keep_previous(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint (data only: code inside the pickle is refused)."""
    path = Path(path)
    if not path.is_file():
        hint = " (train one with `charrec train`)" if not path.exists() else ""
        raise CheckpointError(f"checkpoint not found: {path}{hint}")
    if path.suffix.lower() == ".onnx":
        raise CheckpointError(f"{path} is an ONNX model (for predict and test, on ONNX "
                              f"Runtime); this needs a charrec checkpoint (.pth)")
    if not _looks_like_torch_file(path):
        raise CheckpointError(f"{path}: not a readable checkpoint (not a file saved by torch; "
                              f"give a .pth file that `charrec train` wrote)")
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


def _looks_like_torch_file(path: Path) -> bool:
    """Whether the file starts as torch.save writes: a zip archive, or (older torch) a pickle.
    A text or image file given by mistake is then named as such, not as unsafe code."""
    try:
        with path.open("rb") as handle:
            start = handle.read(4)
    except OSError:
        return True  # torch.load reports it
    return start.startswith(b"PK\x03\x04") or start.startswith(b"\x80")


def validate_checkpoint(checkpoint: Any, path: str | Path = "checkpoint") -> dict[str, Any]:
    """Check the layout and the types of every part, so later code never meets a surprise."""
    if not isinstance(checkpoint, dict) or "format_version" not in checkpoint:
        raise CheckpointError(f"{path}: not a charrec checkpoint (no format_version; a bare "
                              f"state_dict or another program's file?)")
    version = checkpoint["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:
        shown = repr(version) if isinstance(version, int | float | str) else type(version).__name__
        raise CheckpointError(f"{path}: checkpoint format version {shown[:40]}; this charrec "
                              f"({__version__}) reads version {FORMAT_VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    problems = [key for key, check in _PART_CHECKS.items() if not check(checkpoint[key])]
    if problems:
        raise CheckpointError(f"{path}: checkpoint is damaged ({', '.join(problems)} "
                              f"{'is' if len(problems) == 1 else 'are'} not what charrec "
                              f"writes); train again or use another file")
    return checkpoint


def _is_string_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(key, str) for key in value)


_PART_CHECKS = {
    "config": _is_string_dict,
    "classes": lambda value: (isinstance(value, list) and len(value) >= 2
                              and all(isinstance(item, str) and item for item in value)),
    "metrics": _is_string_dict,
    "state_dict": lambda value: (_is_string_dict(value) and
                                 all(isinstance(item, torch.Tensor) for item in value.values())),
}


def checkpoint_config(checkpoint: dict[str, Any], path: str | Path = "checkpoint") -> TrainConfig:
    return stored_config(checkpoint["config"], path)


def load_model(path: str | Path) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the network from a checkpoint alone -> (model in eval mode, config, checkpoint)."""
    from charrec.nn.model import build_model

    checkpoint = load_checkpoint(path)
    config = checkpoint_config(checkpoint, path)
    classes = checkpoint["classes"]
    try:
        # first without memory ("meta" tensors): a damaged config could ask for any size
        with torch.device("meta"):
            skeleton = build_model(config, len(classes))
        _check_shapes(skeleton.state_dict(), checkpoint["state_dict"], path)
        model = build_model(config, len(classes))
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, TypeError, AttributeError, ValueError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path}: weights do not match the stored architecture "
                              f"({first_line[:300]})") from None
    model.eval()
    return model, config, checkpoint


def _check_shapes(expected: dict[str, torch.Tensor], stored: dict[str, torch.Tensor],
                  path: str | Path) -> None:
    for name in sorted(set(expected) | set(stored)):
        want = tuple(expected[name].shape) if name in expected else None
        have = tuple(stored[name].shape) if name in stored else None
        if want != have:
            raise CheckpointError(
                f"{path}: weights do not match the stored architecture ({name}: the config "
                f"needs {'nothing' if want is None else list(want)}, the file holds "
                f"{'nothing' if have is None else list(have)})")
