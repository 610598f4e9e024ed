"""`charrec data ...`: make, inspect and import letter datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrec.cli.common import Command, Debug, Group, friendly_errors, print_json
from charrec.report import console

data_app = typer.Typer(help="Make, inspect and import letter datasets.", no_args_is_help=True,
                       rich_markup_mode=None, cls=Group)

DEFAULT_DATA = Path("data/character_classification")


@data_app.command("synth", cls=Command)
@friendly_errors
def synth_command(
    out: Annotated[Path, typer.Option(help="Folder to create (must not exist or be empty).")] = DEFAULT_DATA,
    per_class: Annotated[int | None, typer.Option(min=1, help="Images per letter (upper + lower case together). [default: the built-in size]", show_default=False)] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives the same images.")] = 0,
    fonts: Annotated[list[Path] | None, typer.Option("--fonts", help="Extra folder(s) of .ttf/.otf fonts.")] = None,
    norm_size: Annotated[str, typer.Option(help="Image size H,W in pixels to render.")] = "32,32",
    workers: Annotated[int | None, typer.Option(min=1, help="Processes to render with. [default: all cores]", show_default=False)] = None,
    debug: Debug = False,
) -> None:
    """Render the built-in synthetic letters (A-Z, a-z) into the course layout."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from charrec.config import PARSERS
    from charrec.data.builtin import synth

    size = PARSERS["norm_size"](norm_size)
    options = {} if per_class is None else {"per_class": per_class}
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console.rich) as progress:
        task = progress.add_task("render", total=None)
        manifest = synth.generate_dataset(
            out, seed=seed, font_dirs=tuple(fonts or ()), norm_size=size, workers=workers,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
            **options)
    counts = manifest.get("counts", {})
    console.print(f"Wrote {out}: {counts}", soft_wrap=True)
    if "images_per_second" in manifest:
        console.print(f"{len(manifest.get('fonts', []))} fonts, "
                      f"{manifest['images_per_second']:.0f} images/s")


@data_app.command("stats", cls=Command)
@friendly_errors
def stats_command(
    data_dir: Annotated[Path, typer.Option(help="Dataset folder.")] = DEFAULT_DATA,
    seed: Annotated[int, typer.Option(help="Seed of the 70/15/15 split for folder-per-class trees.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Images per split and per letter (empty or missing splits count 0)."""
    from rich.table import Table

    from charrec import CLASSES
    from charrec.data.loading import SPLITS, detect_layout, split_counts

    layout = detect_layout(data_dir)
    counts = split_counts(data_dir, seed)
    if json_output:
        print_json({"layout": layout, "splits": {split: {"total": sum(row), "per_class": dict(
            zip(CLASSES, row, strict=True))} for split, row in counts.items()}})
        return
    title = f"{data_dir} ({layout} layout" + (f", split with seed {seed})" if layout == "folders"
                                               else ")")
    table = Table(title=title)
    table.add_column("Letter", justify="center")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for index, letter in enumerate(CLASSES):
        table.add_row(letter, *(str(counts[split][index]) for split in SPLITS))
    table.add_row("[bold]total", *(f"[bold]{sum(counts[split])}" for split in SPLITS))
    console.print(table)


@data_app.command("show", cls=Command)
@friendly_errors
def show_command(
    data_dir: Annotated[Path, typer.Option(help="Dataset folder (course layout or folder per letter).")] = DEFAULT_DATA,
    split: Annotated[str | None, typer.Option(help="train, validation or test. [default: all splits]", show_default=False)] = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=1024, help="How many random images to show.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed that picks the images (and splits a folder-per-class tree).")] = 0,
    out: Annotated[Path | None, typer.Option(help="PNG to write. [default: DATA_DIR/contact_sheet.png, or contact_sheet_preprocessed.png with --preprocessed]", show_default=False)] = None,
    preprocessed: Annotated[bool, typer.Option("--preprocessed", help="Show what the network sees (grayscale, resized, contrast-stretched, light on dark).")] = False,
    norm_size: Annotated[str, typer.Option(help="Network input size H,W in pixels for --preprocessed.")] = "32,32",
    tile: Annotated[int, typer.Option(min=16, max=512, help="Tile size in pixels.")] = 96,
    debug: Debug = False,
) -> None:
    """Draw a contact sheet (grid of random images with their labels) to look at a dataset."""
    from charrec.config import PARSERS
    from charrec.data.contact_sheet import contact_sheet

    size = PARSERS["norm_size"](norm_size)
    name = "contact_sheet_preprocessed.png" if preprocessed else "contact_sheet.png"
    result = contact_sheet(data_dir, out or data_dir / name, split=split, n=n, seed=seed,
                           preprocessed=preprocessed, norm_size=size, tile=tile)
    if result.unreadable:
        console.print(f"[yellow]Warning:[/yellow] {len(result.unreadable)} unreadable images "
                      f"(crossed out); first: {result.unreadable[0][1]}", soft_wrap=True)
    console.print(f"Contact sheet of {result.shown} of {result.total} images: {result.path}",
                  soft_wrap=True)


@data_app.command("import", cls=Command)
@friendly_errors
def import_command(
    src: Annotated[Path, typer.Argument(metavar="SRC", help="A folder per letter (SRC/A/*.png, SRC/b/*.jpg, ...), or EMNIST-letters IDX files (a *-images-idx3-ubyte[.gz] file or a folder holding them with their labels files).")],
    out: Annotated[Path, typer.Option(help="Folder to create in the course layout (must not exist or be empty).")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of the stratified 70/15/15 split.")] = 0,
    all_test: Annotated[bool, typer.Option("--all-test", help="Put every image in test.json (a real set to evaluate on).")] = False,
    norm_size: Annotated[str | None, typer.Option(help="Store grayscale PNGs already resized to H,W pixels (what the network sees; smaller and faster to load). [default: keep the images as they are]", show_default=False)] = None,
    debug: Debug = False,
) -> None:
    """Import a folder-per-letter tree or EMNIST-letters IDX files into the course layout."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from charrec.config import PARSERS
    from charrec.data.importing import import_dataset

    size = PARSERS["norm_size"](norm_size) if norm_size else None
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console.rich, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("import", total=None)
        result = import_dataset(
            src, out, seed=seed, all_test=all_test, norm_size=size,
            progress=lambda done, total: progress.update(task, completed=done, total=total))
    if result.skipped:
        console.print(f"[yellow]Warning:[/yellow] skipped {len(result.skipped)} unreadable "
                      f"images (first: {result.skipped[0][1]}); listed in sources.json",
                      soft_wrap=True)
    splits = ", ".join(f"{split} {count}" for split, count in result.counts.items())
    console.print(f"Imported {result.n_images} images ({result.kind}) into {result.out}: "
                  f"{splits} ({result.seconds:.1f} s)", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
