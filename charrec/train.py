"""The one training pipeline: data -> model -> epochs -> checkpoint. No printing.

`run(config, callbacks)` is what `charrec train`, sweep trials, the bundled-model recipe and the
tests call: it makes sure the dataset exists (rendering the built-in letters if needed), reads
it into memory (decoding its files, or taking the pixels of letters rendered just now), builds
the network and optimizer, trains with `fit`, saves the checkpoint whenever the best epoch
changes (and every SAVE_EVERY_SECONDS) and measures the test split at the end.
Inside, `train_epoch` and `evaluate` are plain functions handed a model (the shape of
pytorch/examples' mnist). Progress goes to `Callbacks`, so this module never imports rich;
plots and tables belong to the CLI.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from charrec import CLASSES
from charrec.checkpoint import make_checkpoint, save_checkpoint
from charrec.config import TrainConfig, replace, resolve_augment
from charrec.data.batches import Augment, Rehearsal, training_batches
from charrec.data.loading import LetterData, load_splits, load_tuning_splits
from charrec.errors import ConfigError, DataError, TrainingDiverged, WriteError
from charrec.nn.functions import loss_function, softmax_cross_entropy
from charrec.nn.model import build_model, logits_and_loss, predict_logits
from charrec.tune import (
    Parent,
    blend_weights,
    load_parent,
    load_parent_weights,
    rehearsal_batches,
    trainable_parameters,
    user_batch_size,
    with_parent,
)

SAVE_EVERY_SECONDS = 30.0  # a run's checkpoint is re-saved at least this often (and on new bests)

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def set_seed(seed: int) -> None:
    """Seed every generator charrec uses (python, torch; numpy if present)."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional
        pass


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; "
                          "use --device cpu or auto")
    return torch.device(name)


def make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    optimizers: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "sgd": lambda: torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                                       weight_decay=config.weight_decay),
        "adagrad": lambda: torch.optim.Adagrad(parameters, lr=config.lr,
                                               weight_decay=config.weight_decay),
        "rmsprop": lambda: torch.optim.RMSprop(parameters, lr=config.lr,
                                               momentum=config.momentum,
                                               weight_decay=config.weight_decay),
        "adam": lambda: torch.optim.Adam(parameters, lr=config.lr,
                                         weight_decay=config.weight_decay),
        "adadelta": lambda: torch.optim.Adadelta(parameters, lr=config.lr,
                                                 weight_decay=config.weight_decay),
        # decoupled weight decay: w -= lr * weight_decay * w, apart from the Adam step
        "adamw": lambda: torch.optim.AdamW(parameters, lr=config.lr,
                                           weight_decay=config.weight_decay),
    }
    return optimizers[config.optim]()


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """The learning rate of `epoch` (1-based): constant, or cosine-annealed from `lr` towards 0.
    A function of the epoch alone, so a resumed run follows the same schedule."""
    if config.lr_schedule == "cosine":
        return config.lr * (1 + math.cos(math.pi * (epoch - 1) / config.epochs)) / 2
    return config.lr


def augmenter(config: TrainConfig) -> Augment | None:
    """The batch augmentation `config` asks for, or None."""
    if not config.augment:
        return None
    from charrec.data.augment import augment_batch

    return augment_batch


# ------------------------------------------------------------------------------ state and hooks


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None = None
    val_loss: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrainState:
    """Where a run stands after its last completed epoch: enough to save a checkpoint and to
    continue exactly (`run(..., resume=state)` gives the same weights as an unbroken run)."""

    epoch: int = 0
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    last_state: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer_state: dict[str, Any] = field(default_factory=dict)
    rng_states: list[torch.Tensor] = field(default_factory=list)  # [shuffle, augment]
    train_seconds: float = 0.0

    def metrics(self) -> dict[str, Any]:
        return {
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "last_epoch": self.epoch,
            "train_seconds": round(self.train_seconds, 3),
            "history": self.history,
        }

    def resume_dict(self) -> dict[str, Any]:
        """The plain-type part a checkpoint stores under "resume"."""
        return {"epoch": self.epoch, "state_dict": self.last_state,
                "optimizer_state": self.optimizer_state, "rng_states": self.rng_states}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> TrainState:
        metrics, resume = checkpoint["metrics"], checkpoint["resume"]
        return cls(
            epoch=resume["epoch"], best_epoch=metrics["best_epoch"],
            best_val_accuracy=metrics["best_val_accuracy"], history=list(metrics["history"]),
            best_state=checkpoint["state_dict"], last_state=resume["state_dict"],
            optimizer_state=resume["optimizer_state"], rng_states=list(resume["rng_states"]),
            train_seconds=metrics.get("train_seconds", 0.0),
        )


@dataclass
class TrainResult:
    model: nn.Module  # holds the best weights
    state: TrainState
    interrupted: bool = False
    test_accuracy: float | None = None  # measured by `run` on the test split, if it has one
    checkpoint: Path | None = None  # where `run` saved the best epoch
    config: TrainConfig | None = None  # the config `run` trained with (augment settled)
    parent: dict[str, Any] | None = None  # with --from: the parent record (start accuracy)

    @property
    def best_epoch(self) -> int:
        return self.state.best_epoch

    @property
    def best_val_accuracy(self) -> float | None:
        return self.state.best_val_accuracy

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def train_seconds(self) -> float:
        return self.state.train_seconds

    def metrics(self) -> dict[str, Any]:
        metrics = {**self.state.metrics(), "interrupted": self.interrupted}
        if self.test_accuracy is not None:
            metrics["test_accuracy"] = self.test_accuracy
        return metrics


@dataclass
class Callbacks:
    """Progress hooks of `run`, all optional, called in this order."""

    on_generate: Callable[[Path], None] | None = None  # no dataset there: rendering starts
    on_render: Callable[[int, int], None] | None = None  # (images rendered, total)
    on_generated: Callable[[dict[str, Any]], None] | None = None  # the dataset's manifest
    on_loading: Callable[[Path], None] | None = None  # decoding the images starts
    on_data: Callable[[dict[str, LetterData]], None] | None = None  # decoded splits
    on_start: Callable[[TrainConfig, TrainState | None], None] | None = None  # model built
    # --from: the parent's record, with its accuracy on the validation split before tuning
    on_parent: Callable[[dict[str, Any]], None] | None = None
    on_epoch: Callable[[EpochMetrics, bool], None] | None = None  # (metrics, is new best)
    on_state: Callable[[TrainState], None] | None = None  # after each epoch, once saved


# ------------------------------------------------------------------------------ the pipeline


def run(config: TrainConfig, callbacks: Callbacks | None = None, *, strict: bool = False,
        resume: TrainState | None = None, data: dict[str, LetterData] | None = None,
        save: bool = True, dry_run: bool = False) -> TrainResult:
    """Train per `config` and return the best-validation model.

    Ensures the dataset (built-in letters rendered at `config.data_dir` if it holds none),
    decodes it (unless `data` is given), trains (continuing `resume` exactly if given; starting
    from the weights of `config.from_model` if set, see `charrec.tune`), saves
    the best epoch to `config.out` when `save` (on every new best, at least every
    SAVE_EVERY_SECONDS, and at the end), and measures the test split.
    Ctrl-C stops cleanly: the result has `interrupted=True` and the best weights so far.
    `dry_run` builds everything and runs one batch forward and backward, writing nothing.
    """
    callbacks = callbacks or Callbacks()
    parent = load_parent(config.from_model) if config.from_model else None
    config = with_parent(config, parent)
    if dry_run:
        return _dry_run(config, callbacks, strict, parent)
    check_destinations(config, save)
    # the checkpoint stores the data folder; absolute, `charrec test` finds it from anywhere
    config = replace(config, data_dir=str(Path(config.data_dir).absolute()))
    config, data = prepare_data(config, callbacks, strict, data)
    check_sizes(config, len(data["train"]), len(data["validation"]))
    model, optimizer = build_training(config, parent)
    if callbacks.on_start:
        callbacks.on_start(config, resume)
    parent_record = None
    if parent is not None:
        start = evaluate(model, data["validation"].images, data["validation"].labels,
                         confusion=False)["accuracy"]
        parent_record = parent.record(start)
        if callbacks.on_parent:
            callbacks.on_parent(parent_record)

    last_save = -math.inf
    saved: list[str] = []  # what config.out holds from this run, in words (the last save)

    def save_state(state: TrainState) -> None:
        # a new best is saved at once; otherwise at most every SAVE_EVERY_SECONDS, so that
        # writing the file costs next to nothing per epoch while a crash loses little
        nonlocal last_save
        due = state.best_epoch == state.epoch or \
            time.monotonic() - last_save >= SAVE_EVERY_SECONDS
        if save and due:
            _save(config, make_checkpoint(config, state.best_state, state.metrics(),
                                          state.resume_dict(), parent_record), saved)
            saved[:] = [_describe_saved(state)]
            last_save = time.monotonic()
        if callbacks.on_state:
            callbacks.on_state(state)

    rehearsal = rehearsal_batches(config, next(model.parameters()).device)
    result = fit(config, model, optimizer, data, callbacks.on_epoch, save_state, resume,
                 rehearsal)
    if parent is not None and config.blend < 1 and result.state.best_state \
            and not result.interrupted:
        _blend_with_parent(result, parent, config.blend, data["validation"])
    result.config, result.parent = config, parent_record
    try:
        if not result.interrupted and "test" in data and len(data["test"]):
            result.test_accuracy = evaluate(model, data["test"].images, data["test"].labels,
                                            len(CLASSES))["accuracy"]
    except KeyboardInterrupt:
        result.interrupted = True
    if save and result.state.best_state:
        result.checkpoint = Path(config.out)  # saved after the last epoch already
        try:  # again, with the final metrics; Ctrl-C waits until the file is complete
            _save(config, make_checkpoint(config, result.state.best_state, result.metrics(),
                                          result.state.resume_dict(), parent_record), saved)
        except KeyboardInterrupt:
            result.interrupted = True
    return result


def _blend_with_parent(result: TrainResult, parent: Parent, share: float,
                       validation: LetterData) -> None:
    """Keep `share` of the tuned weights and the rest of the parent's (weight-space averaging:
    it gives back much of what tuning made the model forget, at a small cost on the user's
    letters; docs/finetune.md), and measure the blend on the validation split."""
    state = result.state
    state.best_state = blend_weights(state.best_state, parent.checkpoint["state_dict"], share)
    result.model.load_state_dict(state.best_state)
    state.best_val_accuracy = evaluate(result.model, validation.images, validation.labels,
                                       confusion=False)["accuracy"]


def check_destinations(config: TrainConfig, save: bool = True, hints: bool = False) -> None:
    """Before any work, `WriteError` unless the checkpoint's folder can take a file, and the
    folder the built-in letters would be rendered into too (when `config.data_dir` holds no
    dataset yet): a read-only or full destination must not cost a whole run. `hints`: the
    message names `charrec train`'s options to change."""
    from charrec.data.builtin.synth import holds_anything
    from charrec.files import check_writable

    if save:
        check_writable(Path(config.out).parent, f"the checkpoint {config.out}",
                       "nothing was trained" + ("; choose a writable --out" if hints else ""))
    data_dir = Path(config.data_dir)
    if config.from_model is None and not holds_anything(data_dir):  # --from never renders
        check_writable(data_dir.parent, f"the built-in letters to {data_dir} (no dataset there "
                       f"yet)", "nothing was rendered or trained" + (
                           "; give --data-dir a dataset or a writable folder" if hints else ""))


def _save(config: TrainConfig, checkpoint: dict[str, Any], saved: list[str]) -> None:
    """`save_checkpoint` to `config.out`; a disk error says which model the file still holds."""
    try:
        save_checkpoint(config.out, checkpoint)
    except WriteError as error:
        if not saved:
            raise
        raise WriteError(f"{error} (it holds {saved[0]})", error.errno) from error


def _describe_saved(state: TrainState) -> str:
    accuracy = ("" if state.best_val_accuracy is None else
                f", val acc {100 * state.best_val_accuracy:.1f}%")
    return f"this run's best model up to epoch {state.epoch} (epoch {state.best_epoch}{accuracy})"


def build_training(config: TrainConfig, parent: Parent | None = None
                   ) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The seeded network on its device (with `parent`'s weights if given, its first
    weighted layers but the last `config.train_layers` fixed), and the optimizer of the others."""
    check_channels(config)
    set_seed(config.seed)
    model = build_model(config, len(CLASSES))
    if parent is not None:
        load_parent_weights(model, parent)
    model = model.to(resolve_device(config.device))
    return model, make_optimizer(config, trainable_parameters(model, config.train_layers))


def prepare_data(config: TrainConfig, callbacks: Callbacks, strict: bool = False,
                 data: dict[str, LetterData] | None = None
                 ) -> tuple[TrainConfig, dict[str, LetterData]]:
    """The data step of training, sweep trials and dry runs alike: render the built-in letters
    if `config.data_dir` holds no dataset, settle `augment: auto` and read every split (a
    dataset rendered just now comes from memory, not its files). With `data` (decoded before,
    e.g. once for all of a sweep's trials) only `augment` is settled."""
    rendered = None if data is not None else _render_if_missing(config, callbacks)
    config = resolve_augment(config)  # after rendering: its manifest marks the built-in letters
    if data is None:
        data_dir = Path(config.data_dir)
        if callbacks.on_loading:
            callbacks.on_loading(data_dir)
        if rendered is not None and tuple(rendered.manifest["norm_size"]) == config.norm_size:
            data = rendered.splits(data_dir)  # just written: the pixels decoding would give
        else:
            data = load_data(config, strict)
        if callbacks.on_data:
            callbacks.on_data(data)
    return config, data


def _render_if_missing(config: TrainConfig, callbacks: Callbacks) -> Any:
    """The built-in letters rendered at `config.data_dir` if it holds nothing, else None."""
    from charrec.data.builtin.synth import ensure_dataset

    if config.from_model is not None:  # tuning reads the user's letters, never renders there
        return None
    rendered = ensure_dataset(Path(config.data_dir), on_start=callbacks.on_generate,
                              progress=callbacks.on_render)
    if rendered is not None and callbacks.on_generated:
        callbacks.on_generated(rendered.manifest)
    return rendered


def load_data(config: TrainConfig, strict: bool = False) -> dict[str, LetterData]:
    """Decode `config.data_dir`'s splits: train/validation(/test) as `load_splits` reads them,
    or, with --from, as `load_tuning_splits` does (a folder per letter: train and validation)."""
    if config.from_model is not None:
        return load_tuning_splits(config.data_dir, config.norm_size, config.seed, strict)
    return load_splits(config.data_dir, config.norm_size, config.seed, strict=strict)


def preflight(config: TrainConfig) -> TrainConfig:
    """Check, before anything is written, what can be checked cheaply: with --from, the parent
    checkpoint and the user's letter folders (listed, not decoded) -> the config with the
    parent's architecture."""
    if config.from_model is None:
        return config
    from charrec.data.loading import tuning_items

    config = with_parent(config)
    tuning_items(config.data_dir, config.seed)
    return config


def check_sizes(config: TrainConfig, n_train: int, n_validation: int) -> None:
    """Refuse what cannot train on splits of these sizes, before any work."""
    if config.batch_size > n_train and config.from_model is None:
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the training set "
                          f"({n_train} images); use a smaller batch size")
    if n_validation == 0:
        raise DataError("the validation split is empty")


def check_channels(config: TrainConfig) -> None:
    if config.channels != 1:
        raise ConfigError(f"channels {config.channels} describes colour input, but charrec's "
                          f"images are grayscale (1 channel); train with channels 1 (other "
                          f"values are for `charrec summary`)")


def _dry_run(config: TrainConfig, callbacks: Callbacks, strict: bool,
             parent: Parent | None = None) -> TrainResult:
    """One training step (`train_epoch` on one batch) through everything `run` would build;
    writes nothing. The batch comes from the dataset if there is one, else is rendered in
    memory."""
    from charrec.data.builtin.synth import render_batch
    from charrec.data.loading import first_images

    data_dir = Path(config.data_dir)
    if data_dir.is_dir() and any(data_dir.iterdir()):
        images, labels = first_images(data_dir, config.norm_size, config.batch_size, config.seed)
    else:
        images, labels = render_batch(config.batch_size, config.seed, config.norm_size)
    config, _ = prepare_data(config, callbacks, strict,
                             data={"train": LetterData(images, labels, [""] * len(labels))})
    model, optimizer = build_training(config, parent)
    device = next(model.parameters()).device
    if callbacks.on_start:
        callbacks.on_start(config, None)
    loss, accuracy = train_epoch(model, optimizer, config.loss, images.to(device),
                                 labels.to(device), len(labels), _generators(config, device),
                                 augmenter(config), label_smoothing=config.label_smoothing)
    if not math.isfinite(loss):
        raise TrainingDiverged(f"the first batch gave loss {loss} (lr={config.lr:g})")
    state = TrainState(history=[EpochMetrics(0, loss, accuracy).to_dict()])
    return TrainResult(model=model, state=state)


# ------------------------------------------------------------------------------ epochs


def fit(config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
        data: dict[str, LetterData],
        on_epoch: Callable[[EpochMetrics, bool], None] | None = None,
        on_state: Callable[[TrainState], None] | None = None,
        resume: TrainState | None = None, rehearsal: Rehearsal | None = None) -> TrainResult:
    """Epochs of `train_epoch`, validating every `val_interval`; keeps the best weights
    (`keep_epoch: best`) or the last validated ones (`last`: no choice made on the validation
    split, so its accuracy stays an honest estimate). `rehearsal` adds images to each batch.

    `resume` restores weights, optimizer and random generators, so the result equals an
    unbroken run. Ctrl-C (KeyboardInterrupt) ends training with `interrupted=True`. A NaN/inf
    loss raises TrainingDiverged naming the epoch.
    """
    device = next(model.parameters()).device
    loss_fn = loss_function(config.loss)
    augment = augmenter(config)
    generators = _generators(config, device)
    state = resume or TrainState()
    if resume is not None:
        model.load_state_dict(resume.last_state)
        optimizer.load_state_dict(resume.optimizer_state)
        for generator, rng_state in zip(generators, resume.rng_states, strict=True):
            generator.set_state(rng_state)
    train_data, val_data = data["train"], data["validation"]
    images, labels = train_data.images.to(device), train_data.labels.to(device)
    val_images, val_labels = val_data.images.to(device), val_data.labels.to(device)
    batch_size = user_batch_size(config, len(images))
    started, seconds_before, interrupted = time.perf_counter(), state.train_seconds, False
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            epoch_start = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, epoch)
            train_loss, train_accuracy = train_epoch(
                model, optimizer, config.loss, images, labels, batch_size, generators,
                augment, rehearsal, config.label_smoothing)
            if not math.isfinite(train_loss):
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch}: the loss became {train_loss} "
                    f"(lr={config.lr:g}); try a lower learning rate, e.g. --lr {config.lr / 10:g}"
                )
            metrics = EpochMetrics(epoch, train_loss, train_accuracy)
            is_best = False
            if epoch % config.val_interval == 0 or epoch == config.epochs:
                evaluation = evaluate(model, val_images, val_labels, len(CLASSES), loss_fn,
                                      confusion=False)
                metrics.val_accuracy, metrics.val_loss = evaluation["accuracy"], evaluation["loss"]
                is_best = (config.keep_epoch == "last" or state.best_val_accuracy is None
                           or metrics.val_accuracy > state.best_val_accuracy)
            metrics.seconds = time.perf_counter() - epoch_start
            state = _state_after_epoch(state, model, optimizer, generators, metrics, is_best,
                                       seconds_before + time.perf_counter() - started)
            if on_epoch:
                on_epoch(metrics, is_best)
            if on_state:
                on_state(state)
    except KeyboardInterrupt:
        interrupted = True
    if state.best_state:
        model.load_state_dict(state.best_state)
    return TrainResult(model=model, state=state, interrupted=interrupted)


def _generators(config: TrainConfig, device: torch.device) -> list[torch.Generator]:
    """The seeded random generators of training: [shuffling (CPU), augmentation (device)]."""
    return [torch.Generator(device="cpu").manual_seed(config.seed),
            torch.Generator(device=device).manual_seed(config.seed + 1)]


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loss: str,
                images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                generators: list[torch.Generator], augment: Augment | None,
                rehearsal: Rehearsal | None = None, label_smoothing: float = 0.0
                ) -> tuple[float, float]:
    """One pass over the shuffled images -> (mean loss, accuracy) of the training batches;
    `loss` names the loss ("ce", "mse"), `label_smoothing` softens its targets. Batches are
    augmented one ahead, in a helper thread (`charrec.data.batches`: the same batches as
    augmenting each in turn). With `rehearsal`, each batch also holds its images (in the loss;
    not in the accuracy)."""
    shuffle_generator, augment_generator = generators
    model.train()
    order = torch.randperm(len(images), generator=shuffle_generator).to(images.device)
    # one op per step for the bookkeeping (each costs as much as a small layer); the sums of
    # losses and correct answers are taken once, after the epoch
    losses, predictions = [], []
    extra = rehearsal.per_batch if rehearsal is not None else 0
    with contextlib.closing(training_batches(images, labels, order, batch_size, augment,
                                             augment_generator, rehearsal)) as batches:
        for batch_images, batch_labels in batches:
            # the gradients are dropped before the forward pass: the fused MLP Function
            # (`charrec.nn.fused`) computes the new ones there, and so reuses the memory (still
            # in cache from the optimizer step) instead of holding two sets at once
            optimizer.zero_grad(set_to_none=True)
            logits, batch_loss = logits_and_loss(model, batch_images, batch_labels, loss,
                                                 label_smoothing)
            batch_loss.backward()
            optimizer.step()
            losses.append(batch_loss.detach())
            predictions.append(logits.detach()[:len(batch_labels) - extra].argmax(dim=1))
    batch_losses = torch.stack(losses)
    batch_sizes = torch.full_like(batch_losses, batch_size)
    batch_sizes[-1] = len(images) - batch_size * (len(losses) - 1)
    loss_sum = torch.dot(batch_losses, batch_sizes)
    correct = (torch.cat(predictions) == labels[order]).sum()
    return loss_sum.item() / len(images), correct.item() / len(images)


def _state_after_epoch(state: TrainState, model: nn.Module, optimizer: torch.optim.Optimizer,
                       generators: list[torch.Generator], metrics: EpochMetrics, is_best: bool,
                       train_seconds: float) -> TrainState:
    """A new TrainState holding copies of everything needed to continue after this epoch."""
    last_state = copy.deepcopy(model.state_dict())
    return TrainState(
        epoch=metrics.epoch,
        best_epoch=metrics.epoch if is_best else state.best_epoch,
        best_val_accuracy=metrics.val_accuracy if is_best else state.best_val_accuracy,
        history=[*state.history, metrics.to_dict()],
        best_state=last_state if is_best else state.best_state,
        last_state=last_state,
        optimizer_state=copy.deepcopy(optimizer.state_dict()),
        rng_states=[generator.get_state() for generator in generators],
        train_seconds=train_seconds,
    )


# ------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             n_classes: int = len(CLASSES), loss_fn: LossFunction = softmax_cross_entropy,
             confusion: bool = True) -> dict[str, Any]:
    """Accuracy (exact ratio of counts), `n_correct`, mean loss and, if `confusion`, the
    confusion matrix [true, predicted] (int64)."""
    was_training = model.training
    logits = predict_logits(model, images)
    model.train(was_training)
    labels = labels.to(logits.device)
    predictions = logits.argmax(dim=1)
    n_correct = int((predictions == labels).sum())
    result = {
        "accuracy": n_correct / len(labels) if len(labels) else 0.0,
        "n_correct": n_correct,
        "loss": loss_fn(logits, labels).item() if len(labels) else 0.0,
    }
    if confusion:
        matrix = torch.zeros(n_classes, n_classes, dtype=torch.int64)
        matrix.index_put_((labels.cpu(), predictions.cpu()),
                          torch.ones(len(labels), dtype=torch.int64), accumulate=True)
        result["confusion"] = matrix
    return result
