"""Fine-tuning a trained model on a user's own letters (`charrec train --from MODEL`).

What `charrec.train.run` needs beyond an ordinary run when `config.from_model` is set: the
parent checkpoint (a path or "bundled"), checked to be a 26-letter grayscale model, whose
architecture the run takes (`with_parent`) and whose weights it starts from; the layers that
keep their weights (`trainable_parameters`); the built-in letters mixed into each batch so the
model keeps reading what the user did not show it (`rehearsal_letters`, rendered in memory in
about a second); and the parent's record the new checkpoint keeps. The epochs themselves are
`charrec.train`'s; the tuning defaults live in `charrec.config.TUNING_DEFAULTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from charrec import CLASSES
from charrec.checkpoint import checkpoint_config, load_checkpoint
from charrec.config import ARCHITECTURE_FIELDS, TrainConfig, replace
from charrec.data.batches import Rehearsal
from charrec.errors import CheckpointError
from charrec.models.resolve import BUNDLED, bundled_path

REHEARSAL_PER_LETTER = 40  # built-in letters rendered per class for rehearsal (docs/finetune.md)


@dataclass(frozen=True)
class Parent:
    """The model a run is tuned from: its name as given ("bundled" or a path), the file and
    the checkpoint read from it."""

    name: str
    path: Path
    checkpoint: dict[str, Any]

    @property
    def config(self) -> TrainConfig:
        return checkpoint_config(self.checkpoint, self.path)

    def record(self, start_val_accuracy: float | None) -> dict[str, Any]:
        """The plain-type record the tuned checkpoint keeps under "parent"."""
        metrics = self.checkpoint.get("metrics", {})
        best = metrics.get("best_val_accuracy")
        return {
            "model": self.name,
            "charrec_version": str(self.checkpoint.get("charrec_version", "?")),
            "arch": str(self.checkpoint["config"].get("arch", "mlp")),
            "val_accuracy": best if isinstance(best, float) else None,
            "start_val_accuracy": start_val_accuracy,
        }


def load_parent(from_model: str) -> Parent:
    """Read and check the `--from` checkpoint: it must hold the 26 letters A-Z and read
    grayscale images; CheckpointError otherwise."""
    path = bundled_path() if from_model == BUNDLED else Path(from_model)
    checkpoint = load_checkpoint(path)
    if checkpoint["classes"] != list(CLASSES):
        shown = ",".join(checkpoint["classes"][:8]) + ("..." if len(checkpoint["classes"]) > 8
                                                       else "")
        raise CheckpointError(f"--from {from_model}: the model reads {len(checkpoint['classes'])} "
                              f"classes ({shown}), but tuning needs one of the 26 letters A-Z")
    parent = Parent(from_model, path, checkpoint)
    if parent.config.channels != 1:
        raise CheckpointError(f"--from {from_model}: the model reads {parent.config.channels}-"
                              f"channel images, but charrec's images are grayscale (1 channel)")
    return parent


def with_parent(config: TrainConfig, parent: Parent | None = None) -> TrainConfig:
    """`config` with the parent's architecture (norm size, layers, ...); unchanged without
    `from_model`."""
    if config.from_model is None:
        return config
    parent = parent or load_parent(config.from_model)
    stored = parent.config.to_dict()
    return replace(config, **{name: stored[name] for name in ARCHITECTURE_FIELDS})


def load_parent_weights(model: nn.Module, parent: Parent) -> None:
    try:
        model.load_state_dict(parent.checkpoint["state_dict"])
    except RuntimeError as error:
        first_line = (str(error).strip().splitlines() or ["?"])[0]
        raise CheckpointError(f"--from {parent.name}: weights do not match the stored "
                              f"architecture ({first_line[:300]})") from None


def blend_weights(tuned: dict[str, torch.Tensor], parent: dict[str, torch.Tensor],
                  share: float) -> dict[str, torch.Tensor]:
    """share * tuned + (1 - share) * parent, tensor by tensor (on the tuned tensors' device)."""
    return {name: share * tensor + (1 - share) * parent[name].to(tensor.device)
            for name, tensor in tuned.items()}


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The layers that own parameters, input first (convolutions, then Linear layers)."""
    return [module for module in model.modules()
            if any(True for _ in module.parameters(recurse=False))]


def trainable_parameters(model: nn.Module, train_layers: int) -> list[nn.Parameter]:
    """Train only the last `train_layers` weighted layers (0: all); the earlier ones keep their
    weights (no gradient) -> the parameters to train. Counting from the output keeps the
    meaning the same for any depth: the classifier and the layer before it, say."""
    layers = weighted_layers(model)
    first_trained = max(0, len(layers) - train_layers) if train_layers else 0
    for index, layer in enumerate(layers):
        for parameter in layer.parameters(recurse=False):
            parameter.requires_grad_(index >= first_trained)
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def rehearsal_letters(seed: int, norm_size: tuple[int, int],
                      per_letter: int = REHEARSAL_PER_LETTER) -> tuple[torch.Tensor, torch.Tensor]:
    """Built-in letters rendered in memory, preprocessed as training sees them ->
    (images float32 [N, H, W] in [-1, 1], labels int64 [N]); every letter `per_letter` times."""
    from charrec.data.builtin.synth import render_batch

    return render_batch(per_letter * len(CLASSES), seed, norm_size)


def user_batch_size(config: TrainConfig, n_train: int) -> int:
    """Images of the training split per batch: the batch less its rehearsal share (with
    --from, never more than the split holds, so a few letters of a few images train too)."""
    if config.from_model is None:
        return config.batch_size
    return min(_user_share(config), n_train)


def rehearsal_batches(config: TrainConfig, device: torch.device) -> Rehearsal | None:
    """The built-in letters mixed into each batch (`config.rehearsal` of it), or None."""
    if not config.rehearsal:
        return None
    images, labels = rehearsal_letters(config.seed, config.norm_size)
    return Rehearsal(images.to(device), labels.to(device),
                     config.batch_size - _user_share(config))


def _user_share(config: TrainConfig) -> int:
    return max(1, round(config.batch_size * (1 - config.rehearsal)))
