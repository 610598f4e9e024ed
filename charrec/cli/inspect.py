"""`charrec summary`, `charrec gradcheck` and `charrec som`: looking inside the networks.

Thin commands over `charrec.tools.summary`, `charrec.tools.gradcheck` and `charrec.tools.som`;
`register(app)` adds
them to the main Typer app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from charrec.cli.common import Command, Debug, fail, friendly_errors, print_json, write_extra
from charrec.report import console


@friendly_errors
def summary_command(
    model: Annotated[str | None, typer.Option("--model", "-m", metavar="PATH|bundled", help="Checkpoint to describe, or 'bundled' (instead of the architecture options).")] = None,
    arch: Annotated[str | None, typer.Option(help="mlp or cnn. [default: mlp]", show_default=False)] = None,
    conv: Annotated[str | None, typer.Option(help="CNN layers KHxKWxOUT, e.g. 5x5x20,3x3x30.")] = None,
    hidden: Annotated[str | None, typer.Option(help="MLP hidden widths, e.g. 256,128.")] = None,
    layers: Annotated[int | None, typer.Option(help="MLP Linear layers; must be len(hidden)+1.")] = None,
    norm_size: Annotated[str | None, typer.Option(help="Input image size H,W in pixels. [default: 32,32]", show_default=False)] = None,
    channels: Annotated[int | None, typer.Option(help="Input channels: 3 for colour (charrec's own images are grayscale: 1). [default: 1]", show_default=False)] = None,
    bias: Annotated[bool | None, typer.Option("--bias/--no-bias", help="Bias in Linear and Conv2d layers. [default: on]", show_default=False)] = None,
    classes: Annotated[int, typer.Option(min=1, help="Number of output classes.")] = 26,
    json_output: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Show a network's layers: input, filter/stride, output and parameters of each, and the total."""
    from rich.table import Table

    from charrec.config import make_config
    from charrec.errors import ConfigError
    from charrec.tools.summary import summarise, summarise_config, total_params

    options = {"arch": arch, "conv": conv, "hidden": hidden, "layers": layers,
               "norm_size": norm_size, "channels": channels, "bias": bias}
    given = [name for name, value in options.items() if value is not None]
    if model is not None:
        if given:
            raise ConfigError(f"--model describes a saved network; drop "
                              f"{', '.join('--' + name.replace('_', '-') for name in given)}")
        from charrec.checkpoint import load_model
        from charrec.models.resolve import resolve_model

        choice = resolve_model(model)
        network, config, checkpoint = load_model(choice.path)
        rows = summarise(network, (*config.norm_size, config.channels))
        title = f"{model} ({config.arch}, {len(checkpoint['classes'])} classes)"
    else:
        config = make_config(options)
        rows = summarise_config(config, classes)
        title = f"{config.arch}, {classes} classes"
    total = total_params(rows)
    if json_output:
        print_json({"layers": [row.to_dict() for row in rows], "total_params": total})
        return
    table = Table(title=title)
    for column in ("Layer", "Input", "Filter/Stride", "Output", "Params"):
        table.add_column(column, justify="right" if column == "Params" else "left")
    for row in rows:
        table.add_row(row.layer, row.input, row.filter, row.output, str(row.params))
    table.add_section()
    table.add_row("[bold]Total[/bold]", "", "", "", f"[bold]{total}[/bold]")
    console.print(table)


@friendly_errors
def gradcheck_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Verify every hand-written backward against numerical gradients and torch (float64).

    Each autograd Function, and each architecture end to end with each loss, is checked against
    central differences and against the same computation from torch's built-ins. Exits 1 if any
    check fails.
    """
    from rich.table import Table

    from charrec.tools.gradcheck import REFERENCE_TOLERANCE, run_checks

    with console.status("running gradient checks ..."):
        results = run_checks()
    failed = [result for result in results if not result.passed]
    if json_output:
        print_json([result.to_dict() for result in results])
    else:
        table = Table(title="Gradient checks (float64)")
        for column in ("Op", "Torch equivalent", "Max err vs numerical", "Max diff vs torch",
                       "Result"):
            table.add_column(column, justify="right" if column.startswith("Max") else "left",
                             no_wrap=column == "Op")
        for result in results:
            verdict = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
            table.add_row(result.op, result.reference, f"{result.numerical_error:.1e}",
                          f"{result.reference_diff:.1e}", verdict)
        console.print(table)
        console.print(f"{len(results) - len(failed)} of {len(results)} checks passed "
                      f"(gradcheck eps 1e-6, atol 1e-5, rtol 1e-3; ours vs torch within "
                      f"{REFERENCE_TOLERANCE:g}).")
    if failed:
        raise fail(f"{len(failed)} gradient check(s) failed: "
                   f"{', '.join(result.op for result in failed)}")


@friendly_errors
def som_command(
    data_dir: Annotated[Path, typer.Option(help="Dataset (course layout or folder per letter); trains on its train split, tests on its test split.")] = Path("data/character_classification"),
    grid: Annotated[str, typer.Option(help="Map size ROWSxCOLS.")] = "12x12",
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training images (fewer if the map stops changing, see --tol).")] = 20,
    lr: Annotated[float, typer.Option(help="Starting learning rate eta (shrinks to 1% of it).")] = 0.5,
    sigma: Annotated[float | None, typer.Option(help="Starting neighbourhood width sigma in grid units (shrinks to 0.5). [default: half the longer grid side]", show_default=False)] = None,
    tol: Annotated[float, typer.Option(help="Stop when an epoch changes no weight by more than this.")] = 1e-4,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (initial weights, order, subset, data split).")] = 0,
    norm_size: Annotated[str, typer.Option(help="Image size H,W in pixels.")] = "32,32",
    max_images: Annotated[int | None, typer.Option(min=1, help="Train the map on at most this many training images (a seeded random subset; all of them label the units). [default: 5000]", show_default=False)] = 5000,
    out: Annotated[Path, typer.Option(help="PNG of the unit prototypes, each marked with its majority letter.")] = Path("som.png"),
    json_output: Annotated[bool, typer.Option("--json", help="Print the results as one JSON object.")] = False,
    debug: Debug = False,
) -> None:
    """Train a self-organising (Kohonen) map of the letter images and use it as a classifier."""
    from charrec import CLASSES
    from charrec.config import PARSERS
    from charrec.data.loading import load_splits
    from charrec.report import percent, plot_som
    from charrec.tools.som import SOMConfig, fit_and_evaluate, parse_grid

    config = SOMConfig(parse_grid(grid), epochs, lr, sigma, tol, seed)
    size = PARSERS["norm_size"](norm_size)
    with console.status(f"Reading images from {data_dir} ..."):
        data = load_splits(data_dir, size, seed, splits=("train", "test"))
    train, test = data["train"], data["test"]

    def flat(images: Any) -> Any:
        return images.reshape(len(images), -1).numpy()

    def on_epoch(row: dict[str, float]) -> None:
        if not json_output:
            console.print(f"epoch {row['epoch']:>3}  lr {row['lr']:.4f}  sigma "
                          f"{row['sigma']:.2f}  max change {row['max_weight_change']:.4f}  "
                          f"quantisation error {row['quantisation_error']:.3f}")

    if not json_output:
        n_fit = min(len(train), max_images or len(train))
        console.print(f"SOM {config.grid[0]}x{config.grid[1]} on {n_fit} of {len(train)} "
                      f"training images ({size[0]}x{size[1]}); testing on {len(test)}")
    report = fit_and_evaluate(flat(train.images), train.labels.numpy(), flat(test.images),
                              test.labels.numpy(), config, len(CLASSES), max_images, on_epoch)
    labels = ["" if index < 0 else CLASSES[index] for index in report.unit_labels]
    prototypes = report.result.weights.reshape(*config.grid, *size)
    drawn = write_extra(lambda: plot_som(
        prototypes, labels, out,
        title=f"SOM {config.grid[0]}x{config.grid[1]}: unit prototypes and majority letters"))
    summary = {
        "quantisation_error": report.quantisation_error, "test_accuracy": report.test_accuracy,
        "n_test": report.n_test, "n_train": len(train), "epochs_run": report.result.epochs_run,
        "stopped_early": report.result.stopped_early,
        "units_labelled": sum(1 for label in labels if label),
        "png": str(drawn) if drawn else None,
        "history": report.result.history,
    }
    if json_output:
        print_json(summary)
        return
    stop = " (stopped early: below --tol)" if report.result.stopped_early else ""
    console.print(f"Trained {report.result.epochs_run} epochs{stop}. Quantisation error "
                  f"(mean distance to the winning unit, training images): "
                  f"{report.quantisation_error:.3f}")
    console.print(f"[bold]Test accuracy as a classifier (unit → majority letter): "
                  f"{percent(report.test_accuracy)}[/bold] on {report.n_test} images; "
                  f"{summary['units_labelled']} of {len(labels)} units labelled."
                  f"{f' Map: {drawn}' if drawn else ''}")


def register(app: typer.Typer) -> None:
    app.command("summary", cls=Command)(summary_command)
    app.command("gradcheck", cls=Command)(gradcheck_command)
    app.command("som", cls=Command)(som_command)
