"""The Pillow line charts behind the training curves: tick values, a PNG of the right size with
the lines drawn in their colours, no matplotlib import, and odd histories (one epoch, no
validation, a NaN) still drawn."""

from __future__ import annotations

import io
import subprocess
import sys

from PIL import Image

from charrec.chart import COLOURS, Panel, Series, nice_ticks, render
from charrec.report import plot_training_curves


def _history(epochs: int, every: int = 1) -> list[dict]:
    return [{"epoch": epoch, "train_loss": 3 / epoch, "train_accuracy": 1 - 1 / (epoch + 1),
             "val_loss": 3.5 / epoch if epoch % every == 0 else None,
             "val_accuracy": 0.8 - 1 / (epoch + 1) if epoch % every == 0 else None}
            for epoch in range(1, epochs + 1)]


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1, 50) == [10, 20, 30, 40, 50]
    assert nice_ticks(0.55, 3.2) == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert nice_ticks(2, 2) == [2]


def test_curves_png_has_both_panels_and_both_series(tmp_path) -> None:
    path = plot_training_curves(_history(30, every=2), tmp_path / "curves.png", title="t")
    image = Image.open(path).convert("RGB")
    assert image.size == (1080, 430)
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    for colour in COLOURS[:2]:
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, colour  # train and validation lines are drawn
    left, right = image.crop((0, 0, 540, 430)), image.crop((540, 0, 1080, 430))
    for panel in (left, right):  # drawn, not blank
        assert len(panel.getcolors(maxcolors=1 << 20)) > 20


def test_odd_histories_still_draw() -> None:
    for history in (_history(1), _history(5, every=10)):
        panels = [Panel("Loss", "epoch", "loss", [
            Series("train", [row["epoch"] for row in history],
                   [row["train_loss"] for row in history]),
            Series("validation", [], [])])]
        assert Image.open(io.BytesIO(render(panels))).size == (540, 400)
    nan = [Panel("Loss", "epoch", "loss", [Series("train", [1, 2, 3], [1.0, float("nan"), 0.5])])]
    assert Image.open(io.BytesIO(render(nan))).size == (540, 400)


def test_drawing_the_curves_does_not_import_matplotlib(tmp_path) -> None:
    code = ("import sys; from charrec.report import plot_training_curves; "
            f"plot_training_curves({_history(3)!r}, {str(tmp_path / 'c.png')!r}); "
            "print('matplotlib' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
