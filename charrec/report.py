"""Everything charrec shows: rich tables and progress on the terminal, PNG plots on disk.

Shared by the CLI and `charrec.sweep.report`; it never trains or reads data. The training
curves are drawn with Pillow (`charrec.chart`: importing matplotlib alone cost more than the
whole plot should); the other plots use matplotlib's non-interactive Agg
backend (imported lazily, so `charrec --help` stays instant). Plots are written atomically.
`step` and `progress_task` show a spinner or bar on a terminal and plain lines otherwise.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charrec import CLASSES

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class LazyConsole:
    """A rich `Console`, made on first use: importing rich's console is a cost that
    `charrec --help` and a one-image `predict` (plain lines: `charrec.cli.common.plain_line`)
    need not pay (docs/benchmarks.md). Reading or setting any attribute makes it and passes
    through; `rich` is the console itself (for rich's own classes:
    `Progress(console=console.rich)`)."""

    def __init__(self, **options: Any) -> None:
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_made", None)

    @property
    def rich(self) -> Console:
        if self._made is None:
            from rich.console import Console

            object.__setattr__(self, "_made", Console(**self._options))
        return self._made

    @property
    def made(self) -> bool:
        return self._made is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.rich, name, value)


console = LazyConsole(highlight=False)
error_console = LazyConsole(stderr=True, highlight=False)


def escape(text: str) -> str:
    """`text` with rich markup escaped (rich's `escape`, imported when first needed)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


@contextmanager
def step(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner with `message` while the block runs on a terminal; a plain line instead when
    stdout is not a terminal (none when `quiet`, e.g. for --json output)."""
    if console.is_terminal:
        with console.status(escape(message) + " ..."):
            yield
    else:
        if not quiet:
            console.print(escape(message) + " ...", soft_wrap=True)
        yield


@contextmanager
def progress_task(description: str, quiet: bool = False,
                  show: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A transient progress bar on a terminal (on stderr when `quiet`, so stdout stays data);
    yields `update(done, total)`. Off a terminal, one plain line unless `quiet`; nothing at all
    when not `show` (a step too short to need one)."""
    target = error_console if quiet else console
    if not show or not target.is_terminal:
        if show and not quiet:
            console.print(escape(description) + " ...", soft_wrap=True)
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(escape(description)), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=target.rich, transient=True) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


def percent(fraction: float | None) -> str:
    return "–" if fraction is None else f"{100 * fraction:.2f}%"


def epoch_line(metrics: Any, is_best: bool) -> str:
    text = (f"epoch {metrics.epoch:>3}  train loss {metrics.train_loss:.4f}  "
            f"train acc {percent(metrics.train_accuracy)}")
    if metrics.val_accuracy is not None:
        text += f"  val acc {percent(metrics.val_accuracy)}"
        if is_best:
            text += "  [green]* best[/green]"
    return text


def per_class_table(confusion: Any, classes: Sequence[str] = CLASSES) -> Table:
    import numpy as np
    from rich.table import Table

    table = Table(title="Per-class accuracy")
    for column in ("Letter", "Images", "Correct", "Accuracy", "Most often read as"):
        table.add_column(column, justify="right" if column != "Letter" else "center")
    for index, letter in enumerate(classes):
        row = np.asarray(confusion[index])
        total = int(row.sum())
        if total == 0:
            continue
        correct = int(row[index])
        wrong = row.copy()
        wrong[index] = 0
        confused = (f"{classes[int(wrong.argmax())]} ({int(wrong.max())})"
                    if int(wrong.max()) > 0 else "")
        table.add_row(letter, str(total), str(correct), percent(correct / total), confused)
    return table


def save_figure(figure: Any, path: str | Path, what: str = "the plot") -> Path:
    """The figure as a PNG at `path`, written atomically (a disk error: `WriteError`)."""
    from charrec.files import atomic_write

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()), what)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def options_summary(config: Any) -> str:
    """The options that tell two training runs apart, in one short line: e.g.
    "mlp 256, adam lr 0.002, wd 0.15, batch 64, 30 epochs, augment" (for titles)."""
    conv = ",".join("x".join(map(str, layer)) for layer in config.conv)
    network = (f"cnn {conv}" if config.arch == "cnn" else
               f"mlp {','.join(map(str, config.hidden)) or 'linear'}")
    parts = [f"{network} {config.act}", f"{config.optim} lr {config.lr:g}"]
    if config.optim in ("sgd", "rmsprop") and config.momentum:
        parts.append(f"momentum {config.momentum:g}")
    if config.weight_decay:
        parts.append(f"wd {config.weight_decay:g}")
    parts += [f"batch {config.batch_size}", f"{config.epochs} epochs",
              f"{config.lr_schedule} schedule", "augment" if config.augment else "no augment"]
    return ", ".join(parts)


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | Path,
                         title: str = "") -> Path:
    """Train loss and train/validation accuracy per epoch, drawn with Pillow
    (`charrec.chart`), which costs far less than importing matplotlib."""
    from charrec.chart import Panel, Series, save_chart

    epochs = [row["epoch"] for row in history]
    validated = [row for row in history if row.get("val_loss") is not None]
    val_epochs = [row["epoch"] for row in validated]
    panels = [
        Panel("Loss", "epoch", "loss", [
            Series("train", epochs, [row["train_loss"] for row in history]),
            Series("validation", val_epochs, [row["val_loss"] for row in validated])]),
        Panel("Accuracy", "epoch", "accuracy", [
            Series("train", epochs, [row["train_accuracy"] for row in history]),
            Series("validation", val_epochs, [row["val_accuracy"] for row in validated])],
            ylim=(0.0, 1.0)),
    ]
    return save_chart(panels, path, title, "the training curves")


def plot_confusion(confusion: Any, path: str | Path, classes: Sequence[str] = CLASSES,
                   title: str = "Confusion matrix") -> Path:
    import numpy as np

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 7))
    confusion = np.asarray(confusion, dtype=np.float64)
    totals = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = axis.imshow(confusion / totals, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(classes)), classes)
    axis.set_yticks(range(len(classes)), classes)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=axis, fraction=0.046, label="fraction of true class")
    return save_figure(figure, path, "the confusion matrix")


def plot_som(prototypes: Any, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """A self-organising map's unit prototypes [rows, cols, H, W] (values in [-1, 1]) as one
    grid of images, each unit marked with its label ('' for none)."""
    import numpy as np

    plt = pyplot()
    rows, cols, height, width = prototypes.shape
    gap = max(1, height // 8)
    mosaic = np.full((rows * (height + gap) + gap, cols * (width + gap) + gap), np.nan)
    for row in range(rows):
        for col in range(cols):
            top, left = gap + row * (height + gap), gap + col * (width + gap)
            mosaic[top:top + height, left:left + width] = prototypes[row, col]
    figure, axis = plt.subplots(figsize=(0.8 * cols + 1, 0.8 * rows + 1))
    colours = plt.get_cmap("gray").with_extremes(bad="#4060a0")  # bad (NaN): between units
    axis.imshow(mosaic, cmap=colours, vmin=-1, vmax=1, interpolation="nearest")
    from matplotlib.patheffects import withStroke

    outline = withStroke(linewidth=2, foreground="black")  # readable on light prototypes too
    for index, label in enumerate(labels):
        row, col = divmod(index, cols)
        axis.text(gap + col * (width + gap) + 0.5, gap + row * (height + gap) + 0.5, label,
                  color="#ffd040", fontsize=9, fontweight="bold", ha="left", va="top",
                  path_effects=[outline])
    axis.set_axis_off()
    if title:
        axis.set_title(title)
    return save_figure(figure, path, "the map")
