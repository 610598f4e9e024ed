"""`charrec data ...`: make, inspect and import letter datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrec.cli_common import Debug, friendly_errors, print_json
from charrec.report import console

data_app = typer.Typer(help="Make, inspect and import letter datasets.", no_args_is_help=True)

DEFAULT_DATA = Path("data/character_classification")


@data_app.command("synth")
@friendly_errors
def synth_command(
    out: Annotated[Path, typer.Option(help="Folder to create (must not exist or be empty).")] = DEFAULT_DATA,
    per_class: Annotated[int | None, typer.Option(min=1, help="Images per letter (upper + lower case together). (default: the built-in size)")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; the same seed gives the same images.")] = 0,
    fonts: Annotated[list[Path] | None, typer.Option("--fonts", help="Extra folder(s) of .ttf/.otf fonts.")] = None,
    norm_size: Annotated[str, typer.Option(help="Image size H,W to render.")] = "32,32",
    workers: Annotated[int | None, typer.Option(min=1, help="Processes to render with. (default: all cores)")] = None,
    debug: Debug = False,
) -> None:
    """Render the built-in synthetic letters (A-Z, a-z) into the course layout."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from charrec import synth
    from charrec.config import PARSERS

    size = PARSERS["norm_size"](norm_size)
    options = {} if per_class is None else {"per_class": per_class}
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
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


@data_app.command("stats")
@friendly_errors
def stats_command(
    data_dir: Annotated[Path, typer.Option(help="Dataset folder.")] = DEFAULT_DATA,
    seed: Annotated[int, typer.Option(help="Seed of the 70/15/15 split for folder-per-class trees.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Images per split and per letter."""
    from rich.table import Table

    from charrec import CLASSES
    from charrec.data import SPLITS, detect_layout, list_split

    layout = detect_layout(data_dir)
    counts = {split: [0] * len(CLASSES) for split in SPLITS}
    for split in SPLITS:
        for _, index in list_split(data_dir, split, seed):
            counts[split][index] += 1
    if json_output:
        print_json({"layout": layout, "splits": {split: {"total": sum(row), "per_class": dict(
            zip(CLASSES, row, strict=True))} for split, row in counts.items()}})
        return
    table = Table(title=f"{data_dir} ({layout} layout)")
    table.add_column("Letter", justify="center")
    for split in SPLITS:
        table.add_column(split, justify="right")
    for index, letter in enumerate(CLASSES):
        table.add_row(letter, *(str(counts[split][index]) for split in SPLITS))
    table.add_row("[bold]total", *(f"[bold]{sum(counts[split])}" for split in SPLITS))
    console.print(table)
