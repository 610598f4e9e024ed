"""The self-organising map: the rule against a naive loop, the exact block-batched training
against the one-image-at-a-time rule, quantisation error, labelling, and `charrec som`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from charrec.cli import app
from charrec.errors import ConfigError
from charrec.tools import som

runner = CliRunner()


def _naive_distances(x: list[float], weights: list[list[float]]) -> list[float]:
    return [math.sqrt(sum((x[i] - w[i]) ** 2 for i in range(len(x)))) for w in weights]


def _naive_step(x, weights, lr, sigma, grid) -> int:
    """One textbook update with explicit loops over units and pixels (weights: nested lists)."""
    d = _naive_distances(x, weights)
    winner = d.index(min(d))
    cols = grid[1]
    for j, w in enumerate(weights):
        grid_distance = (j // cols - winner // cols) ** 2 + (j % cols - winner % cols) ** 2
        h = math.exp(-grid_distance / sigma**2)
        for i in range(len(x)):
            w[i] += lr * h * (x[i] - w[i])
    return winner


def _tiny(seed: int, n: int = 30, pixels: int = 6) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, pixels))


def test_distances_and_winner_match_a_naive_loop() -> None:
    data, weights = _tiny(1, n=1), _tiny(2, n=12)
    expected = _naive_distances(data[0].tolist(), weights.tolist())
    np.testing.assert_allclose(som.distances(data[0], weights), expected, rtol=1e-12)
    assert int(np.argmin(som.distances(data[0], weights))) == expected.index(min(expected))


def test_one_update_matches_a_naive_loop() -> None:
    data, weights = _tiny(3, n=5), _tiny(4, n=12)
    naive = weights.tolist()
    grid = (3, 4)
    for x in data:
        winner = som.update(weights, x, 0.4, 1.5, som.grid_square_distances(grid))
        assert winner == _naive_step(x.tolist(), naive, 0.4, 1.5, grid)
    np.testing.assert_allclose(weights, naive, rtol=1e-12, atol=1e-12)


def test_neighbourhood_is_one_at_the_winner_and_shrinks_with_grid_distance() -> None:
    squared = som.grid_square_distances((3, 3))
    h = som.neighbourhood(squared[4], sigma=1.0)  # winner in the middle
    assert h[4] == 1.0
    assert h[1] == h[3] == h[5] == h[7] == pytest.approx(math.exp(-1))
    assert h[0] == pytest.approx(math.exp(-2))


@pytest.mark.parametrize("block_size", [1, 7, 128])
def test_block_batched_training_equals_the_one_image_at_a_time_rule(monkeypatch,
                                                                     block_size: int) -> None:
    monkeypatch.setattr(som, "BLOCK_SIZE", block_size)
    images = _tiny(5, n=23).astype(np.float32)
    config = som.SOMConfig(grid=(2, 3), epochs=3, lr=0.6, sigma=1.2, tol=0.0, seed=7)
    result = som.train_som(images, config)

    # the same run, written naively: same seed -> same initial weights, shuffles, schedules
    rng = np.random.default_rng(7)
    weights = rng.uniform(-1.0, 1.0, size=(6, 6)).tolist()
    rng.permutation(23)  # the monitoring sample
    total = 3 * 23
    for epoch in range(3):
        for position, index in enumerate(rng.permutation(23)):
            step = epoch * 23 + position
            lr = 0.6 * som.LR_END_FRACTION ** (step / total)
            sigma = 1.2 * (som.SIGMA_END / 1.2) ** (step / total)
            _naive_step(images[index].astype(np.float64).tolist(), weights, lr, sigma, (2, 3))
    np.testing.assert_allclose(result.weights, weights, rtol=1e-9, atol=1e-9)
    assert result.epochs_run == 3 and not result.stopped_early


def _letter_images(course_dataset, size=(16, 16)):
    from charrec.data.loading import load_splits

    data = load_splits(course_dataset, size, splits=("train", "test"))
    return ({split: letters.images.reshape(len(letters), -1).numpy()
             for split, letters in data.items()},
            {split: letters.labels.numpy() for split, letters in data.items()})


def test_quantisation_error_decreases_while_training(course_dataset) -> None:
    images, _ = _letter_images(course_dataset)
    result = som.train_som(images["train"], som.SOMConfig(grid=(5, 5), epochs=6, tol=0.0))
    errors = [row["quantisation_error"] for row in result.history]
    assert errors[-1] < errors[0]
    assert all(later <= earlier + 1e-9
               for earlier, later in zip(errors[:-1], errors[1:], strict=True))
    # a map that has seen the data fits it better than its random start
    start = np.random.default_rng(0).uniform(-1, 1, size=result.weights.shape)
    assert som.quantisation_error(images["train"], result.weights) < som.quantisation_error(
        images["train"], start)


def test_training_stops_when_the_update_falls_below_tol() -> None:
    result = som.train_som(_tiny(8, n=40), som.SOMConfig(grid=(2, 2), epochs=10, tol=10.0))
    assert result.epochs_run == 1 and result.stopped_early


def test_label_units_majority_and_unlabelled_units() -> None:
    weights = np.array([[0.0, 0.0], [10.0, 10.0], [100.0, 100.0]])
    images = np.array([[0.1, 0.0], [0.0, 0.2], [-0.1, 0.0], [9.0, 10.0]])
    labels = np.array([3, 3, 5, 7])
    unit_labels = som.label_units(images, labels, weights, n_classes=26)
    assert unit_labels.tolist() == [3, 7, som.UNLABELLED]
    # an image nearest the unlabelled unit takes the label of the nearest labelled one
    assert som.classify(np.array([[90.0, 90.0], [0.0, 1.0]]), weights, unit_labels).tolist() == [
        7, 3]


def test_cli_som_writes_png_and_beats_chance(course_dataset, tmp_path) -> None:
    out = tmp_path / "som.png"
    result = runner.invoke(app, ["som", "--data-dir", str(course_dataset), "--grid", "8x8",
                                 "--epochs", "8", "--norm-size", "16,16", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_test"] == 52 and summary["epochs_run"] == 8
    assert summary["test_accuracy"] > 3 / 26  # chance is 1/26
    assert 0 < summary["units_labelled"] <= 64
    with Image.open(out) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_cli_som_prints_quantisation_error_and_accuracy(course_dataset, tmp_path) -> None:
    result = runner.invoke(app, ["som", "--data-dir", str(course_dataset), "--grid", "4x4",
                                 "--epochs", "2", "--norm-size", "12,12",
                                 "--out", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert "Quantisation error" in result.stdout and "Test accuracy" in result.stdout
    assert "epoch   2" in result.stdout


@pytest.mark.parametrize("options, message", [
    (["--grid", "12"], "--grid expects ROWSxCOLS"),
    (["--grid", "1x1"], "at least 2 units"),
    (["--lr", "1.5"], "--lr must be in (0, 1]"),
    (["--sigma", "0"], "--sigma must be greater than 0"),
])
def test_cli_som_bad_options_are_one_clear_error(course_dataset, tmp_path, options, message
                                                 ) -> None:
    result = runner.invoke(app, ["som", "--data-dir", str(course_dataset),
                                 "--out", str(tmp_path / "x.png"), *options])
    assert result.exit_code == 2  # a usage error
    assert message in result.stderr and "Traceback" not in result.output


def test_parse_grid() -> None:
    assert som.parse_grid("12x12") == (12, 12) and som.parse_grid("3×5") == (3, 5)
    with pytest.raises(ConfigError):
        som.parse_grid("axb")
