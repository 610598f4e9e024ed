"""The `charrec` command line: a thin Typer layer over the library.

Each command parses options into a config, calls the library, and hands results to `report`.
torch and the heavy modules are imported inside the commands, so `charrec --help` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from charrec import __version__
from charrec.cli_common import Debug, fail, friendly_errors, print_json, state
from charrec.report import console, epoch_line, percent

app = typer.Typer(
    name="charrec",
    help="Train, test and use neural networks (hand-written autograd) that recognise letters.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_MODEL = Path("saved_models/recognition.pth")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charrec {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Debug = False,
) -> None:
    """charrec: recognise single English letters (A-Z, case-insensitive) in images."""
    state.debug = debug


# ------------------------------------------------------------------------------------------ train

ModelPath = Annotated[Path, typer.Option("--model", "-m", help="Checkpoint to load.")]


@app.command()
@friendly_errors
def train(
    config_file: Annotated[Path | None, typer.Option("--config", help="YAML file of train options (flags override it).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Dataset folder (course layout or folder per letter). Built-in letters are generated there if it is missing. (default: data/character_classification)")] = None,
    norm_size: Annotated[str | None, typer.Option(help="Image size H,W the network sees. (default: 32,32)")] = None,
    hidden: Annotated[str | None, typer.Option(help="Hidden layer widths, e.g. 64 or 256,128 ('none' for a linear classifier). (default: 256)")] = None,
    layers: Annotated[int | None, typer.Option(help="Number of Linear layers (1 = linear classifier); must be len(hidden)+1.")] = None,
    act: Annotated[str | None, typer.Option(help="Hidden activation: relu, sigmoid, tanh, none. (default: relu)")] = None,
    init: Annotated[str | None, typer.Option(help="Weight init: auto (Kaiming for relu, Xavier otherwise) or normal (N(0,1)). (default: auto)")] = None,
    loss: Annotated[str | None, typer.Option(help="Loss: ce (softmax cross-entropy) or mse (squared error of softmax outputs vs one-hot). (default: ce)")] = None,
    arch: Annotated[str | None, typer.Option(help="Network: mlp or cnn (see --conv). (default: mlp)")] = None,
    conv: Annotated[str | None, typer.Option(help="CNN layers KHxKWxOUT, e.g. 5x5x20,3x3x30: each a 'same' conv, the activation and a 2x2/2 max-pool; then one Linear. (default: 5x5x32,3x3x64,3x3x128)")] = None,
    bias: Annotated[bool | None, typer.Option("--bias/--no-bias", help="Bias in Linear and Conv2d layers. (default: on)")] = None,
    optim: Annotated[str | None, typer.Option(help="Optimizer: sgd, adagrad, rmsprop, adam, adadelta. (default: adam)")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate. (default: 0.002)")] = None,
    momentum: Annotated[float | None, typer.Option(help="Momentum for sgd and rmsprop. (default: 0.9)")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="L2 weight decay. (default: 0)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size. (default: 64)")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs. (default: 30)")] = None,
    val_interval: Annotated[int | None, typer.Option(help="Validate every N epochs. (default: 1)")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (data split, init, shuffling). (default: 0)")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda. (default: auto)")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="Random affine/elastic jitter of training batches. (default: on for the built-in letters)")] = None,
    out: Annotated[str | None, typer.Option(help="Where to save the best checkpoint. (default: saved_models/recognition.pth)")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue an interrupted run from its checkpoint (only --epochs, --out and --device may change).")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on unreadable images instead of skipping them.")] = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch. One is fastest for these small networks on a busy machine: extra threads spin-wait.")] = 1,
    debug: Debug = False,
) -> None:
    """Train a network and save the epoch with the best validation accuracy."""
    import torch

    torch.set_num_threads(threads)
    from charrec.config import load_train_yaml, make_config

    flags = {
        "data_dir": data_dir, "norm_size": norm_size, "hidden": hidden, "layers": layers,
        "act": act, "init": init, "optim": optim, "lr": lr, "momentum": momentum,
        "weight_decay": weight_decay, "batch_size": batch_size, "epochs": epochs,
        "val_interval": val_interval, "seed": seed, "device": device, "augment": augment,
        "out": out, "loss": loss, "arch": arch, "conv": conv, "bias": bias,
    }
    if resume is not None:
        config, state = resume_run(resume, flags, config_file)
        run_training(config, strict=strict, resume=state)
        return
    file_values = load_train_yaml(config_file) if config_file else {}
    if hidden is not None and layers is None:
        file_values.pop("layers", None)  # a new --hidden list defines the depth
    config = make_config(file_values, flags)
    run_training(config, strict=strict)


RESUME_OPTIONS = ("epochs", "out", "device")


def resume_run(path: Path, flags: dict[str, Any], config_file: Path | None) -> tuple[Any, Any]:
    """The config and TrainState to continue the run saved at `path`."""
    from charrec.checkpoint import checkpoint_config, load_checkpoint
    from charrec.config import replace
    from charrec.errors import ConfigError
    from charrec.train import TrainState

    checkpoint = load_checkpoint(path)
    if "resume" not in checkpoint:
        raise ConfigError(f"{path} holds no resume state (it was not saved by `charrec train`)")
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


def ensure_data(data_dir: Path) -> None:
    """Generate the built-in letters at `data_dir` if there is no dataset there yet."""
    if data_dir.exists() and any(data_dir.iterdir()):
        return
    from rich.progress import Progress

    from charrec.data import synth

    console.print(f"No dataset at {data_dir}: generating the built-in synthetic letters there.")
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("rendering letters", total=None)
        manifest = synth.generate_dataset(
            data_dir, progress=lambda done, total: progress.update(task, completed=done,
                                                                   total=total))
    counts = manifest.get("counts", {})
    console.print(f"Generated {sum(counts.get('splits', counts).values()) if counts else '?'} "
                  f"images at {data_dir}.")


def run_training(config: Any, strict: bool = False, resume: Any = None) -> Any:
    """Load data, train with a progress bar, save the best checkpoint (after every epoch, so a
    crash loses at most one epoch) and the curves PNG."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from charrec import config as config_module
    from charrec.checkpoint import make_checkpoint, save_checkpoint
    from charrec.data.loading import load_splits
    from charrec.report import plot_training_curves
    from charrec.train import Callbacks, train

    data_dir = Path(config.data_dir)
    ensure_data(data_dir)
    config = config_module.resolve_augment(config)
    with console.status(f"Reading images from {data_dir} ..."):
        data = load_splits(data_dir, config.norm_size, config.seed, strict=strict)
    sizes = ", ".join(f"{split} {len(letters)}" for split, letters in data.items())
    console.print(f"Data: {sizes} images of {config.norm_size[0]}x{config.norm_size[1]}")
    skipped = sum(len(letters.skipped) for letters in data.values())
    if skipped:
        first = next(letters.skipped[0] for letters in data.values() if letters.skipped)
        console.print(f"[yellow]Warning:[/yellow] skipped {skipped} unreadable images "
                      f"(first: {first[1]}); use --strict to fail instead", soft_wrap=True)
    from charrec.nn.summary import architecture_line

    console.print(f"Model: {architecture_line(config)}  loss={config.loss} "
                  f"act={config.act}  optim={config.optim} lr={config.lr:g}  "
                  f"augment={'on' if config.augment else 'off'}")

    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    def save(state: Any, interrupted: bool = False) -> Path:
        metrics = {**state.metrics(), "interrupted": interrupted}
        return save_checkpoint(config.out, make_checkpoint(config, state.best_state, metrics,
                                                           state.resume_dict()))

    if resume is not None:
        console.print(f"Resuming from epoch {resume.epoch} (best so far: epoch "
                      f"{resume.best_epoch}, val acc {percent(resume.best_val_accuracy)})")
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("training", total=config.epochs,
                                 completed=resume.epoch if resume else 0)

        def on_epoch(metrics: Any, is_best: bool) -> None:
            progress.update(task, completed=metrics.epoch, description=f"epoch {metrics.epoch}")
            if metrics.val_accuracy is not None:
                progress.console.print(epoch_line(metrics, is_best))

        result = train(config, data, Callbacks(on_epoch=on_epoch, on_state=save), resume=resume)

    if not result.state.best_state:  # interrupted before the first epoch ended
        raise fail("training interrupted before the first epoch finished; nothing saved", 130)
    out = save(result.state, result.interrupted)
    curves = plot_training_curves(result.history, out.with_name(out.stem + "_curves.png"),
                                  title=f"charrec {out.name}")
    if result.interrupted:
        if result.best_epoch:
            console.print(f"Interrupted: saved the best model so far (epoch {result.best_epoch}, "
                          f"val acc {percent(result.best_val_accuracy)}) to {out}")
        raise fail("training interrupted by Ctrl-C", 130)
    console.print(f"Best validation accuracy {percent(result.best_val_accuracy)} at epoch "
                  f"{result.best_epoch} of {config.epochs} ({result.train_seconds:.1f} s). "
                  f"Saved that epoch's model to {out}; curves in {curves}.")
    return result


# ------------------------------------------------------------------------------------------- test


@app.command()
@friendly_errors
def test(
    model: ModelPath = DEFAULT_MODEL,
    data_dir: Annotated[str | None, typer.Option(help="Dataset to test on. (default: the one the model was trained on)")] = None,
    split: Annotated[str, typer.Option(help="train, validation or test.")] = "test",
    plot: Annotated[Path | None, typer.Option(help="Confusion-matrix PNG. (default: next to the model, <name>_confusion.png)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on unreadable images instead of skipping them.")] = False,
    debug: Debug = False,
) -> None:
    """Measure a saved model's accuracy on a dataset split."""
    from charrec.checkpoint import load_model
    from charrec.data.loading import detect_layout, load_split
    from charrec.report import confused_pairs, per_class_table, plot_confusion
    from charrec.train import evaluate

    network, config, checkpoint = load_model(model)
    classes = checkpoint["classes"]
    directory = Path(data_dir or config.data_dir)
    # A folder-per-class tree the model was not trained on is a test set as a whole; the one
    # it was trained on is split with the training seed, so its train images are not tested.
    trained_here = directory.resolve() == Path(config.data_dir).resolve()
    whole = detect_layout(directory) == "folders" and not trained_here
    data = load_split(directory, split, config.norm_size, config.seed, whole_folder=whole,
                      strict=strict)
    result = evaluate(network, data.images, data.labels, n_classes=len(classes))
    confusion = result["confusion"]
    per_class = {
        letter: {"n_images": int(confusion[index].sum()),
                 "accuracy": (int(confusion[index, index]) / int(confusion[index].sum())
                              if int(confusion[index].sum()) else None)}
        for index, letter in enumerate(classes)
    }
    plot_path = plot or model.with_name(model.stem + "_confusion.png")
    plot_confusion(confusion, plot_path, classes,
                   title=f"{model.name} on {directory.name}/{split}")
    summary = {
        "accuracy": result["accuracy"], "n_images": len(data), "n_correct": int(confusion.trace()),
        "n_skipped": len(data.skipped), "split": split, "data_dir": str(directory),
        "model": str(model), "per_class": per_class,
        "confused_pairs": [{"true": t, "predicted": p, "count": n}
                           for t, p, n in confused_pairs(confusion, classes, top=10)],
        "confusion_png": str(plot_path),
    }
    if json_output:
        print_json(summary)
        return
    console.print(per_class_table(confusion, classes))
    pairs = ", ".join(f"{t}→{p} ({n})" for t, p, n in confused_pairs(confusion, classes))
    console.print(f"Most confused (true→predicted): {pairs or 'none'}")
    if data.skipped:
        console.print(f"[yellow]Warning:[/yellow] skipped {len(data.skipped)} unreadable images")
    console.print(f"Confusion matrix: {plot_path}")
    console.print(f"[bold]Accuracy on {directory}/{split}: {percent(result['accuracy'])}[/bold] "
                  f"({summary['n_correct']}/{len(data)} images)")


# ---------------------------------------------------------------------------------------- predict


def _expand_image_paths(paths: list[Path]) -> list[Path]:
    from charrec.data.preprocess import IMAGE_SUFFIXES

    expanded: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                from charrec.errors import ImageError

                raise ImageError(f"{path}: folder holds no images "
                                 f"({', '.join(IMAGE_SUFFIXES[:4])}, ...)")
            expanded += found
        else:
            expanded.append(path)
    return expanded


@app.command()
@friendly_errors
def predict(
    im_path: Annotated[list[Path], typer.Option("--im-path", "-i", help="Image file(s) or folder(s); repeat the option for several.")],
    model: ModelPath = DEFAULT_MODEL,
    top_k: Annotated[int, typer.Option(min=1, max=26, help="Also show the K most likely letters.")] = 1,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list of results.")] = False,
    debug: Debug = False,
) -> None:
    """Recognise the letter in each image: prints `Prediction: X`."""
    import torch

    from charrec.checkpoint import load_model
    from charrec.errors import ImageError
    from charrec.nn.functions import softmax
    from charrec.data.preprocess import load_image
    from charrec.train import predict_logits

    network, config, checkpoint = load_model(model)
    classes = checkpoint["classes"]
    paths = _expand_image_paths(im_path)
    results, failures = [], []
    for path in paths:
        try:
            image = load_image(path, config.norm_size)
        except ImageError as error:
            failures.append(str(error))
            continue
        probabilities = softmax(predict_logits(network, image.unsqueeze(0)))[0]
        values, indices = torch.topk(probabilities, k=min(top_k, len(classes)))
        top = [{"letter": classes[int(i)], "probability": round(float(v), 6)}
               for v, i in zip(values, indices, strict=True)]
        results.append({"path": str(path), "prediction": top[0]["letter"], "top_k": top})
    if json_output:
        print_json(results)
    else:
        for result in results:
            prefix = f"{result['path']}: " if len(paths) > 1 else ""
            line = f"{prefix}Prediction: {result['prediction']}"
            if top_k > 1:
                line += "  (" + ", ".join(f"{entry['letter']} {100 * entry['probability']:.1f}%"
                                          for entry in result["top_k"]) + ")"
            console.print(line, soft_wrap=True)
    if failures:
        for message in failures[:-1]:
            fail(message)
        raise fail(failures[-1] if len(failures) == 1 else
                   f"{failures[-1]} ({len(failures)} of {len(paths)} images could not be read)")


def main() -> None:
    app()


from charrec.cli_data import data_app  # noqa: E402  (sub-apps register after the main app)

app.add_typer(data_app, name="data")

from charrec.cli_sweep import sweep_command  # noqa: E402

app.command("sweep")(sweep_command)

from charrec import cli_models  # noqa: E402

cli_models.register(app)
