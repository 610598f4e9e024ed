"""`charrec test` and `charrec predict`: reading letters with a saved or the bundled model.

Choosing the model is `charrec.models.resolve`'s job, loading it on ONNX Runtime or torch
`charrec.reader`'s, measuring `charrec.measure`'s and reading images `charrec.predict`'s; this
module turns their results into tables, lines and JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from charrec.cli.common import (
    Command,
    Debug,
    fail,
    friendly_errors,
    import_torch,
    plain_line,
    print_json,
    write_extra,
)
from charrec.errors import CharrecError
from charrec.report import console, percent

ModelOption = Annotated[str | None, typer.Option("--model", "-m", metavar="PATH|bundled", help="Checkpoint (.pth) or ONNX model (.onnx) to load, or 'bundled' for the model that ships with charrec. [default: saved_models/recognition.pth if it exists, else bundled]", show_default=False)]
BackendOption = Annotated[str, typer.Option(metavar="auto|onnx|torch", help="What runs the model: onnx (ONNX Runtime, no torch: for .onnx files and the bundled model), torch (for .pth checkpoints), or auto (onnx where the model has an ONNX form).")]
TtaOption = Annotated[bool, typer.Option("--tta", help="Test-time augmentation: average the answers over 5 views (scaled, rotated) of each image the model is not sure of; slower, a little more accurate (docs/models.md).")]
SheetOption = Annotated[Path | None, typer.Option(help="Also draw a contact sheet PNG of the images with their predicted letters and probabilities (wrong or doubtful ones first, framed in red).", show_default=False)]


def load_chosen_reader(model: str | None, backend: str) -> Any:
    """Resolve `--model` and load it on the backend `--backend` asks for (see
    `charrec.reader`); torch is imported only when it runs the model."""
    from charrec.reader import load_reader

    return load_reader(model, backend, before_torch=import_torch)


def say_which_model(label: str, choice: Any = None, checkpoint: Any = None) -> None:
    """One line on stderr naming the model that answered (printed once it has answered, so a
    run that reads nothing ends in its one error line), and a hint when the model picked from
    the folder reads far worse than the bundled one."""
    plain_line(f"Model: {label}", err=True)
    if choice is not None and choice.source == "local":
        from charrec.checkpoint import load_checkpoint
        from charrec.models.resolve import bundled_path, weak_model_hint

        try:
            bundled = load_checkpoint(bundled_path()).get("metrics", {}).get("best_val_accuracy")
        except CharrecError:
            bundled = None
        hint = weak_model_hint(choice, checkpoint, bundled if isinstance(bundled, float) else None)
        if hint:
            plain_line(f"Hint: {hint}", err=True)


SPLITS = ("train", "validation", "test")


@friendly_errors
def test_command(
    model: ModelOption = None,
    data_dir: Annotated[str | None, typer.Option(help="Dataset to test on. [default: the one the model was trained on]", show_default=False)] = None,
    split: Annotated[str, typer.Option(help="Which split: train, validation or test.")] = "test",
    plot: Annotated[Path | None, typer.Option(help="Confusion-matrix PNG. [default: next to the model, <name>_confusion_<data>.png]", show_default=False)] = None,
    sheet: SheetOption = None,
    sheet_n: Annotated[int, typer.Option(min=1, max=1024, help="Images on the --sheet (the wrong ones first).")] = 64,
    backend: BackendOption = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on unreadable images instead of skipping them.")] = False,
    tta: TtaOption = False,
    debug: Debug = False,
) -> None:
    """Measure a saved model's accuracy on a dataset split."""
    import re

    from charrec.errors import ConfigError

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: --split must be one of {', '.join(SPLITS)}")

    from charrec.measure import measure_data, test_images
    from charrec.report import per_class_table, plot_confusion, step

    reader = load_chosen_reader(model, backend)
    choice, config = reader.choice, reader.config
    directory = data_dir or config.data_dir
    with step(f"Reading images from {directory}", quiet=json_output):
        data, name = test_images(config, data_dir, split, strict)
    with step(f"Testing {len(data)} images", quiet=json_output):
        result = measure_data(reader, data, name, tta)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.data_name)
    stem = "bundled" if choice.bundled else choice.path.stem
    folder = Path(".") if choice.bundled else choice.path.parent
    plot_path = write_extra(lambda: plot_confusion(
        result.confusion, plot or folder / f"{stem}_confusion_{slug}.png", result.classes,
        title=f"{stem} on {result.data_name}"))
    summary = {
        "accuracy": result.accuracy, "n_correct": result.n_correct,
        "n_images": len(result.data), "n_skipped": len(result.data.skipped),
        "data": result.data_name, "split": split,
        "data_dir": str(Path(directory).resolve()),
        "model": reader.describe(), "model_path": str(choice.path), "backend": reader.backend,
        **reader.tuned_from(),
        "per_class": result.per_class(),
        "confused_pairs": [{"true": t, "predicted": p, "count": n}
                           for t, p, n in result.confused_pairs(top=10)],
        "confusion_png": str(plot_path) if plot_path else None,
    }
    say_which_model(summary["model"], choice, reader.info)
    if sheet is not None:
        from charrec.data.contact_sheet import prediction_sheet
        from charrec.measure import predicted_images

        with step(f"Drawing the contact sheet {sheet}", quiet=json_output):
            drawn = write_extra(lambda: prediction_sheet(
                predicted_images(reader, result), sheet, f"{stem} on {result.data_name}",
                n=sheet_n))
        summary["sheet_png"] = str(drawn.path) if drawn else None
    if json_output:
        print_json(summary)
        return
    console.print(per_class_table(result.confusion, result.classes))
    pairs = ", ".join(f"{t}→{p} ({n})" for t, p, n in result.confused_pairs())
    console.print(f"Most confused (true→predicted): {pairs or 'none'}")
    if result.data.skipped:
        console.print(f"[yellow]Warning:[/yellow] skipped {len(result.data.skipped)} unreadable "
                      f"images")
    if plot_path:
        console.print(f"Confusion matrix: {plot_path}", soft_wrap=True)
    if summary.get("sheet_png"):
        console.print(f"Contact sheet: {summary['sheet_png']}", soft_wrap=True)
    console.print(f"[bold]Accuracy on {result.data_name}: {percent(result.accuracy)}[/bold] "
                  f"({result.n_correct}/{len(result.data)} images)")


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


@friendly_errors
def predict_command(
    images: Annotated[list[Path] | None, typer.Argument(metavar="IMAGE...", help="Image files or folders (every image inside, recursively); shell globs work.", show_default=False)] = None,
    im_path: Annotated[list[Path] | None, typer.Option("--im-path", "-i", metavar="PATH", help="Image file or folder; repeat the option for several (same as the arguments).", show_default=False)] = None,
    model: ModelOption = None,
    top_k: Annotated[int, typer.Option(min=1, max=26, help="Also show the K most likely letters.")] = 1,
    sheet: SheetOption = None,
    sheet_n: Annotated[int, typer.Option(min=1, max=1024, help="Images on the --sheet (the doubtful ones first).")] = 64,
    backend: BackendOption = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON list of results.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any image cannot be read (by default such images get a warning and the rest are answered).")] = False,
    tta: TtaOption = False,
    debug: Debug = False,
) -> None:
    """Recognise the letter in each image: prints `Prediction: X (probability)`, and a warning
    when the image holds no letter, several letters, or the model is unsure."""
    from charrec.errors import ConfigError
    from charrec.report import progress_task

    given = [*(images or []), *(im_path or [])]
    if not given:
        raise ConfigError("give one or more images or folders, e.g. `charrec predict a.png "
                          "photos/` (or --im-path a.png)")
    reader = load_chosen_reader(model, backend)
    choice = reader.choice
    paths = _expand_image_paths(given)
    with progress_task(f"reading {len(paths)} images", quiet=True,
                       show=len(paths) > 100) as update:
        results, failures = reader.predict_images(paths, top_k, on_image=update, tta=tta)
    label = reader.describe()
    if results:
        say_which_model(label, choice, reader.info)
    if json_output:
        print_json([{**result.to_dict(), "model": label, **reader.tuned_from()}
                    for result in results])
    else:
        for result in results:
            prefix = f"{result.path}: " if len(paths) > 1 else ""
            line = f"{prefix}Prediction: {result.letter} ({100 * result.probability:.1f}%)"
            if top_k > 1:
                line += "  next: " + ", ".join(f"{entry['letter']} "
                                               f"{100 * entry['probability']:.1f}%"
                                               for entry in result.top_k[1:])
            plain_line(line)
            if result.warning:
                plain_line(result.warning, warning=True)
    if sheet is not None:
        from charrec.data.contact_sheet import PredictedImage, prediction_sheet

        drawn = write_extra(lambda: prediction_sheet(
            [PredictedImage(result.path, result.letter, result.probability,
                            warning=result.warning) for result in results],
            sheet, f"{choice.path.name if not choice.bundled else 'bundled'} predictions",
            n=sheet_n))
        if drawn and not json_output:
            plain_line(f"Contact sheet: {drawn.path}")
    named = [f"{path}: " for path in given if not path.is_dir()]
    named_failed = any(message.startswith(prefix) for message in failures for prefix in named)
    report_unreadable(failures, len(paths), strict or named_failed or not results)


def report_unreadable(failures: list[str], total: int, as_error: bool) -> None:
    """One stderr line per image that could not be read: warnings for images found in a folder
    when the others were answered; errors ending in exit 1 with --strict, when nothing was
    answered, or when a file named on the command line could not be read."""
    if not failures:
        return
    if not as_error:
        for message in failures:
            plain_line(message, err=True, warning=True)
        if len(failures) > 1:
            plain_line(f"{len(failures)} of {total} images could not be read; the rest were "
                       f"answered (--strict makes this an error)", err=True, warning=True)
        return
    for message in failures[:-1]:
        fail(message)
    raise fail(failures[-1] if len(failures) == 1 else
               f"{failures[-1]} ({len(failures)} of {total} images could not be read)")


def register(app: typer.Typer) -> None:
    app.command("test", cls=Command)(test_command)
    app.command("predict", cls=Command)(predict_command)
