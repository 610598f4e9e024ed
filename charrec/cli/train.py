"""`charrec train`: options -> a `TrainConfig` -> `charrec.train.run`, with live progress.

Also `--resume` (continue a run from its checkpoint) and the training progress display; the
training loop itself lives in `charrec.train` and knows nothing of the terminal.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from charrec.cli.common import (
    Command,
    Debug,
    friendly_errors,
    import_torch,
    interrupted,
    write_extra,
)
from charrec.report import console, epoch_line, escape, percent

# The options that set a TrainConfig field, each written once, here, by its field's name: the flag
# is derived from it (`config.option_name`: `--weight-decay`, `--from`), booleans get their
# `--no-` twin, and `train_command` receives them all in `flags`. (type, help[, metavar])
CONFIG_OPTIONS: dict[str, tuple[Any, ...]] = {
    "data_dir": (str, "Dataset folder (course layout or folder per letter). Built-in letters are generated there if it is missing. [default: data/character_classification]"),
    "norm_size": (str, "Image size H,W in pixels the network sees. [default: 32,32]"),
    "hidden": (str, "Hidden layer widths, e.g. 64 or 256,128 ('none' for a linear classifier). [default: 256]"),
    "layers": (int, "Number of Linear layers (1 = linear classifier); must be len(hidden)+1."),
    "act": (str, "Hidden activation: relu, sigmoid, tanh, none. [default: relu]"),
    "init": (str, "Weight init: auto (Kaiming for relu, Xavier otherwise) or normal (N(0,1)). [default: auto]"),
    "loss": (str, "Loss: ce (softmax cross-entropy) or mse (squared error of softmax outputs vs one-hot). [default: ce]"),
    "arch": (str, "Network: mlp or cnn (see --conv). [default: mlp]"),
    "conv": (str, "CNN layers KHxKWxOUT, e.g. 5x5x20,3x3x30: each a 'same' conv, the activation and a 2x2/2 max-pool; then one Linear. [default: 3x3x16,3x3x32,3x3x64,3x3x128]"),
    "bias": (bool, "Bias in Linear and Conv2d layers. [default: on]"),
    "batch_norm": (bool, "CNN: batch normalisation after each conv layer's pooling (the bundled model's recipe). [default: off]"),
    "label_smoothing": (float, "Cross-entropy against (1-e)*one-hot + e/26 instead of one-hot, 0 <= e <= 0.5. [default: 0]"),
    "optim": (str, "Optimizer: sgd, adagrad, rmsprop, adam, adadelta, adamw (Adam with decoupled weight decay). [default: adam]"),
    "lr_schedule": (str, "Learning rate over the epochs: cosine (from --lr down towards 0 at the last epoch) or constant. [default: cosine]"),
    "lr": (float, "Learning rate. [default: 0.002]"),
    "momentum": (float, "Momentum for sgd and rmsprop. [default: 0.9]"),
    "weight_decay": (float, "Weight decay: L2 added to the gradient, or decoupled with --optim adamw. [default: 0]"),
    "batch_size": (int, "Mini-batch size. [default: 64]"),
    "epochs": (int, "Training epochs. [default: 30; 10 with --arch cnn]"),
    "val_interval": (int, "Validate every N epochs. [default: 1]"),
    "seed": (int, "Random seed (data split, init, shuffling). [default: 0]"),
    "device": (str, "auto, cpu or cuda. [default: auto]"),
    "augment": (bool, "Random affine/elastic jitter of training batches. [default: on for the built-in letters]"),
    "out": (str, "Where to save the best checkpoint. [default: saved_models/recognition.pth]"),
    "from_model": (str, "Fine-tune this model (a checkpoint, or 'bundled') on --data-dir's letters: its network and weights are the start, architecture options cannot change. Defaults then: --lr 0.001, --epochs 30, --augment, --rehearsal 0.5, --blend 0.8, and the last epoch is kept.", "PATH|bundled"),
    "rehearsal": (float, "With --from: share of each batch that is built-in letters, so the model keeps reading what your letters do not show (0 turns it off). [default: 0.5]"),
    "train_layers": (int, "With --from: train only the last N layers with weights, the others keep theirs (0: all train). [default: 0]"),
    "blend": (float, "With --from: share of the tuned weights in the saved model, the rest being the starting model's (1 keeps the tuned ones only). [default: 0.8]"),
}


@friendly_errors
def train_command(
    config_file: Annotated[str | None, typer.Option("--config", metavar="NAME|FILE", help="YAML file of train options, or a built-in one by name (e.g. train_example); flags override it.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run from its checkpoint (only --epochs, --out and --device may change).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on unreadable images instead of skipping them.")] = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch. One is fastest for these small networks on a busy machine: extra threads spin-wait.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build everything and run one batch forward and backward; write nothing.")] = False,
    debug: Debug = False,
    **flags: Any,
) -> None:
    """Train a network and save the epoch with the best validation accuracy."""
    import_torch()
    import torch

    torch.set_num_threads(threads)
    from charrec.config import load_train_yaml, make_config, optimizer_hint

    if resume is not None:
        config, state = resume_run(resume, flags, config_file)
    else:
        from charrec.studies import find_config

        file_values = load_train_yaml(find_config(config_file, "train")) if config_file else {}
        if flags["hidden"] is not None and flags["layers"] is None:
            file_values.pop("layers", None)  # a new --hidden list defines the depth
        config, state = make_config(file_values, flags), None
        hint = optimizer_hint(config)
        if hint:
            console.print(f"[yellow]Note:[/yellow] {escape(hint)}", soft_wrap=True)
    if state is None:
        from charrec.train import preflight

        config = preflight(config)  # --from: parent and letters checked before any file moves
    if not dry_run:
        from charrec.train import check_destinations

        check_destinations(config, hints=True)  # a read-only --out or data folder: up front
        _keep_previous_model(config.out)
    run_training(config, strict=strict, resume=state, dry_run=dry_run)


def _keep_previous_model(out: str) -> None:
    from charrec.checkpoint import keep_previous_checkpoint

    backup = keep_previous_checkpoint(out)
    if backup is not None:
        console.print(f"{out} already exists: kept a copy of it as {backup}", soft_wrap=True)


RESUME_OPTIONS = ("epochs", "out", "device")


def resume_run(path: Path, flags: dict[str, Any], config_file: str | None) -> tuple[Any, Any]:
    """The config and TrainState to continue the run saved at `path`."""
    from charrec.checkpoint import checkpoint_config, load_checkpoint
    from charrec.config import replace
    from charrec.errors import ConfigError
    from charrec.train import TrainState

    checkpoint = load_checkpoint(path)
    if "resume" not in checkpoint:
        raise ConfigError(f"{path} holds no resume state (it was not saved by `charrec train`)")
    if flags.get("from_model") is not None:
        raise ConfigError("--from starts a new run from a model's weights, --resume continues "
                          "a run; give one of them")
    others = [name for name, value in flags.items()
              if value is not None and name not in RESUME_OPTIONS]
    if others or config_file is not None:
        names = ", ".join("--" + name.replace("_", "-") for name in others) or "--config"
        raise ConfigError(f"--resume continues a run with its own options; {names} cannot "
                          f"change (only --epochs, --out, --device)")
    config = checkpoint_config(checkpoint, path)
    changes = {name: flags[name] for name in RESUME_OPTIONS if flags[name] is not None}
    if "out" not in changes:
        changes["out"] = str(path)
    config = replace(config, **changes)
    state = TrainState.from_checkpoint(checkpoint)
    if state.epoch >= config.epochs:
        raise ConfigError(f"{path} has already trained {state.epoch} of {config.epochs} epochs; "
                          f"raise --epochs to train further")
    return config, state


def run_training(config: Any, strict: bool = False, resume: Any = None,
                 dry_run: bool = False) -> Any:
    """`charrec.train.run` with rich progress: rendering, decoding, a bar over the epochs and a
    line per validation; then the curves PNG and one summary line."""
    from charrec.train import run

    with progress_display() as progress:
        callbacks = training_callbacks(progress, config, resume)
        result = run(config, callbacks, strict=strict, resume=resume, dry_run=dry_run)
    if dry_run:
        metrics = result.history[0]
        console.print(f"Dry run: one batch of {config.batch_size} forward and backward, loss "
                      f"{metrics['train_loss']:.4f}; nothing was written.")
        return result
    out = result.checkpoint
    if not result.state.best_state or out is None or not out.is_file():
        raise interrupted(" before the first epoch finished; nothing saved")
    saved = (f"saved the best model so far (epoch {result.best_epoch}, val acc "
             f"{percent(result.best_val_accuracy)}) to {out}")
    if result.interrupted:
        raise interrupted(f"; {saved}")
    from charrec.report import options_summary, plot_training_curves

    try:
        curves = write_extra(lambda: plot_training_curves(
            result.history, out.with_name(out.stem + "_curves.png"),
            title=f"{out.name}: {options_summary(result.config or config)}"))
    except KeyboardInterrupt:
        raise interrupted(f" while drawing the curves; {saved}") from None
    test = f", test {percent(result.test_accuracy)}" if result.test_accuracy is not None else ""
    if config.from_model is not None:
        _print_gain(result, config)
    which = "Best validation accuracy" if config.keep_epoch == "best" else "Validation accuracy"
    console.print(f"{which} {percent(result.best_val_accuracy)} at epoch "
                  f"{result.best_epoch} of {config.epochs}{test} ({result.train_seconds:.1f} s). "
                  f"Saved that epoch's model to {out}"
                  f"{f'; curves in {curves}' if curves else ' (no curves: see the warning)'}.")
    return result


def _print_gain(result: Any, config: Any) -> None:
    """With --from: the validation accuracy before and after tuning (the gain)."""
    parent = result.parent or {}
    before, after = parent.get("start_val_accuracy"), result.best_val_accuracy
    if before is None or after is None:
        return
    console.print(f"[bold]Tuned from {escape(str(config.from_model))}: validation accuracy "
                  f"{percent(before)} -> {percent(after)} ({100 * (after - before):+.1f} "
                  f"points)[/bold]", soft_wrap=True)


class _LinesOnly:
    """What `training_callbacks` uses of a rich Progress, for output that is not a terminal:
    there a transient bar shows nothing, and importing rich.progress is not free. Lines still
    go to the console."""

    def __init__(self) -> None:
        self.console = console.rich

    def __enter__(self) -> _LinesOnly:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def add_task(self, description: str, **fields: Any) -> int:
        return 0

    def update(self, task: int, **fields: Any) -> None:
        return None

    def remove_task(self, task: int) -> None:
        return None


def progress_display() -> Any:
    """A transient rich Progress (rendering, decoding, epochs) on a terminal; lines only
    elsewhere."""
    if not console.is_terminal:
        return _LinesOnly()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=console.rich, transient=True)


def training_callbacks(progress: Any, config: Any, resume: Any) -> Any:
    """The `Callbacks` that show `run`'s progress on `progress` (a rich Progress)."""
    from charrec.train import Callbacks

    tasks: dict[str, Any] = {}

    def on_generate(data_dir: Path) -> None:
        progress.console.print(f"No dataset at {data_dir}: generating the built-in synthetic "
                               f"letters there.")
        tasks["render"] = progress.add_task("rendering letters", total=None)

    def on_render(done: int, total: int) -> None:
        progress.update(tasks["render"], completed=done, total=total)

    def on_generated(manifest: dict) -> None:
        progress.remove_task(tasks.pop("render"))
        counts = manifest.get("counts", {})
        progress.console.print(f"Generated {sum(counts.values())} images at {config.data_dir}.")

    def on_loading(data_dir: Path) -> None:
        tasks["load"] = progress.add_task(f"reading images from {data_dir}", total=None)

    def on_data(data: dict) -> None:
        progress.remove_task(tasks.pop("load"))
        sizes = ", ".join(f"{split} {len(letters)}" for split, letters in data.items())
        progress.console.print(f"Data: {sizes} images of {config.norm_size[0]}x"
                               f"{config.norm_size[1]}")
        skipped = sum(len(letters.skipped) for letters in data.values())
        if skipped:
            first = next(letters.skipped[0] for letters in data.values() if letters.skipped)
            progress.console.print(f"[yellow]Warning:[/yellow] skipped {skipped} unreadable "
                                   f"images (first: {first[1]}); use --strict to fail instead",
                                   soft_wrap=True)

    def on_start(resolved: Any, state: Any) -> None:
        from charrec.tools.summary import architecture_line

        progress.console.print(
            f"Model: {architecture_line(resolved)}  loss={resolved.loss} act={resolved.act}  "
            f"optim={resolved.optim} lr={resolved.lr:g}  "
            f"augment={'on' if resolved.augment else 'off'}")
        if state is not None:
            progress.console.print(f"Resuming from epoch {state.epoch} (best so far: epoch "
                                   f"{state.best_epoch}, val acc "
                                   f"{percent(state.best_val_accuracy)})")
        tasks["train"] = progress.add_task("training", total=resolved.epochs,
                                           completed=state.epoch if state else 0)

    def on_parent(record: dict) -> None:
        progress.console.print(f"Starting from {escape(str(record['model']))}: validation "
                               f"accuracy {percent(record['start_val_accuracy'])} before tuning")

    def on_epoch(metrics: Any, is_best: bool) -> None:
        progress.update(tasks["train"], completed=metrics.epoch,
                        description=f"epoch {metrics.epoch}")
        if metrics.val_accuracy is not None:
            # keeping the last epoch, every one is "kept": no star
            progress.console.print(epoch_line(metrics, is_best and config.keep_epoch == "best"))

    return Callbacks(on_generate=on_generate, on_render=on_render, on_generated=on_generated,
                     on_loading=on_loading, on_data=on_data, on_start=on_start,
                     on_parent=on_parent, on_epoch=on_epoch)


def _config_parameter(field: str, spec: tuple[Any, ...]) -> inspect.Parameter:
    """The Typer option of one TrainConfig field (see CONFIG_OPTIONS)."""
    from charrec.config import option_name

    kind, help_text, *metavar = spec
    flag = option_name(field)
    declarations = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
    option = typer.Option(*declarations, help=help_text, show_default=False,
                          metavar=metavar[0] if metavar else None)
    return inspect.Parameter(field, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind | None, option])


def _with_config_options(command: Any) -> Any:
    """`command` with the CONFIG_OPTIONS in its signature (after --config), where Typer reads
    its options from, in place of its `**flags`."""
    signature = inspect.signature(command, eval_str=True)
    fixed = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)
             for parameter in signature.parameters.values()
             if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
    derived = [_config_parameter(field, spec) for field, spec in CONFIG_OPTIONS.items()]
    command.__signature__ = signature.replace(parameters=[fixed[0], *derived, *fixed[1:]])
    command.__annotations__ = {parameter.name: parameter.annotation
                               for parameter in command.__signature__.parameters.values()}
    return command


def register(app: typer.Typer) -> None:
    app.command("train", cls=Command)(_with_config_options(train_command))
