"""The training loop (the only one in charrec) and evaluation. No printing: progress goes to
callbacks, so the CLI, sweeps and tests all run this same code.

`train(config, data)` trains a fresh model (or continues from a saved `TrainState`) on
`data["train"]`, evaluates on `data["validation"]` every `val_interval` epochs, keeps the weights
of the best validation accuracy, and returns them with the per-epoch history.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from charrec.nn import functions
from charrec.config import TrainConfig
from charrec.data.loading import LetterData
from charrec.errors import ConfigError, DataError, TrainingDiverged
from charrec.nn.model import build_model


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
    }
    return optimizers[config.optim]()


def loss_function(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    losses = {"ce": functions.softmax_cross_entropy, "mse": functions.softmax_mse}
    return losses[name]


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
class Callbacks:
    """Hooks for progress reporting; all optional."""

    on_batch: Callable[[int, int], None] | None = None  # (batches done this epoch, total)
    on_epoch: Callable[[EpochMetrics, bool], None] | None = None  # (metrics, is new best)
    on_state: Callable[[TrainState], None] | None = None  # after every epoch, e.g. to save


@dataclass
class TrainState:
    """Where a run stands after its last completed epoch: enough to save a checkpoint and to
    continue exactly (`train(..., resume=state)` gives the same weights as an unbroken run)."""

    epoch: int
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, Any]]
    best_state: dict[str, torch.Tensor]
    last_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng_states: list[torch.Tensor]  # [shuffle generator, augment generator]
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

    @property
    def best_epoch(self) -> int:
        return self.state.best_epoch

    @property
    def best_val_accuracy(self) -> float:
        return self.state.best_val_accuracy

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.state.history

    @property
    def train_seconds(self) -> float:
        return self.state.train_seconds

    def metrics(self) -> dict[str, Any]:
        return {**self.state.metrics(), "interrupted": self.interrupted}


def _augmenter(config: TrainConfig) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    if not config.augment:
        return lambda images, generator: images
    from charrec.data.augment import augment_batch

    return augment_batch


def train(config: TrainConfig, data: dict[str, LetterData], callbacks: Callbacks | None = None,
          resume: TrainState | None = None, n_classes: int = 26) -> TrainResult:
    """Train per `config`; return the best-validation model and the run's state.

    `resume` continues a run from its last completed epoch (weights, optimizer and random
    generators restored, so the result equals an unbroken run). Ctrl-C (KeyboardInterrupt) stops
    training cleanly: the result holds the best weights so far and `interrupted=True`. A NaN/inf
    loss raises TrainingDiverged naming the epoch.
    """
    callbacks = callbacks or Callbacks()
    train_data, val_data = data["train"], data["validation"]
    if config.batch_size > len(train_data):
        raise ConfigError(f"--batch-size {config.batch_size} is larger than the training set "
                          f"({len(train_data)} images); use a smaller batch size")
    if len(val_data) == 0:
        raise DataError("the validation split is empty")
    if config.channels != 1:
        raise ConfigError(f"channels {config.channels} describes colour input, but charrec's "
                          f"images are grayscale (1 channel); train with channels 1 (other "
                          f"values are for `charrec summary`)")
    set_seed(config.seed)
    device = resolve_device(config.device)
    model = build_model(config, n_classes).to(device)
    optimizer = make_optimizer(config, model.parameters())
    loss_fn = loss_function(config.loss)
    augment = _augmenter(config)
    generators = [torch.Generator(device="cpu").manual_seed(config.seed),
                  torch.Generator(device=device).manual_seed(config.seed + 1)]
    if resume is not None:
        model.load_state_dict(resume.last_state)
        optimizer.load_state_dict(resume.optimizer_state)
        for generator, rng_state in zip(generators, resume.rng_states, strict=True):
            generator.set_state(rng_state)
        state = resume
    else:
        state = TrainState(0, 0, -1.0, [], {}, {}, {}, [])
    shuffle_generator, augment_generator = generators

    images, labels = train_data.images.to(device), train_data.labels.to(device)
    val_images, val_labels = val_data.images.to(device), val_data.labels.to(device)
    n_batches = math.ceil(len(train_data) / config.batch_size)
    started, seconds_before, interrupted = time.perf_counter(), state.train_seconds, False
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(len(train_data), generator=shuffle_generator).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            for batch_index in range(n_batches):
                index = order[batch_index * config.batch_size:(batch_index + 1) * config.batch_size]
                batch, targets = augment(images[index], augment_generator), labels[index]
                logits = model(batch)
                loss = loss_fn(logits, targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(index)
                correct += (logits.detach().argmax(dim=1) == targets).sum()
                if callbacks.on_batch:
                    callbacks.on_batch(batch_index + 1, n_batches)
            train_loss = loss_sum.item() / len(train_data)
            if not math.isfinite(train_loss):
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch}: the loss became {train_loss} "
                    f"(lr={config.lr:g}); try a lower learning rate, e.g. --lr {config.lr / 10:g}"
                )
            metrics = EpochMetrics(epoch, train_loss, correct.item() / len(train_data))
            is_best = False
            if epoch % config.val_interval == 0 or epoch == config.epochs:
                evaluation = evaluate(model, val_images, val_labels, loss_fn=loss_fn)
                metrics.val_accuracy, metrics.val_loss = evaluation["accuracy"], evaluation["loss"]
                is_best = metrics.val_accuracy > state.best_val_accuracy
            metrics.seconds = time.perf_counter() - epoch_start
            state = _state_after_epoch(state, model, optimizer, generators, metrics, is_best,
                                       seconds_before + time.perf_counter() - started)
            if callbacks.on_epoch:
                callbacks.on_epoch(metrics, is_best)
            if callbacks.on_state:
                callbacks.on_state(state)
    except KeyboardInterrupt:
        interrupted = True

    if state.best_state:
        model.load_state_dict(state.best_state)
    return TrainResult(model=model, state=state, interrupted=interrupted)


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


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    outputs = [model(images[start:start + batch_size].to(device))
               for start in range(0, len(images), batch_size)]
    return torch.cat(outputs) if outputs else torch.empty(0)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             n_classes: int = 26, loss_fn=functions.softmax_cross_entropy) -> dict[str, Any]:
    """Accuracy, mean loss, predictions and the confusion matrix [true, predicted]."""
    was_training = model.training
    logits = predict_logits(model, images)
    model.train(was_training)
    labels = labels.to(logits.device)
    predictions = logits.argmax(dim=1)
    confusion = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    confusion.index_put_((labels.cpu(), predictions.cpu()),
                         torch.ones(len(labels), dtype=torch.int64), accumulate=True)
    return {
        "accuracy": (predictions == labels).float().mean().item() if len(labels) else 0.0,
        "loss": loss_fn(logits, labels).item() if len(labels) else 0.0,
        "predictions": predictions.cpu(),
        "confusion": confusion,
    }
