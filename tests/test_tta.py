"""Test-time augmentation (`charrec.tta`, `--tta` on test and predict): the views (against
torch's affine_grid/grid_sample), the averaging of the doubtful images only, and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charrec.predict import softmax
from charrec.tta import VIEWS, tta_probabilities, view
from tests.helpers import invoke


def _logits(images: np.ndarray) -> np.ndarray:
    """Logits from the image's mean brightness and its first row: views change both."""
    return np.stack([images.mean(axis=(1, 2)) * 5, images[:, 0].mean(axis=1) * 5,
                     np.zeros(len(images))], axis=1)


def _probabilities(images: np.ndarray) -> np.ndarray:
    return softmax(_logits(images))


def _torch_view(images: np.ndarray, scale: float, degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    batch = torch.from_numpy(images).unsqueeze(1)
    theta = torch.tensor([[cos, sin, 0.0], [-sin, cos, 0.0]]).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border",
                         align_corners=False).squeeze(1).numpy()


def test_views_equal_torchs_affine_resampling() -> None:
    images = np.random.default_rng(0).uniform(-1, 1, (3, 16, 12)).astype(np.float32)
    assert view(images, 1.0, 0.0) is images
    for scale, degrees in VIEWS[1:]:
        moved = view(images, scale, degrees)
        assert moved.shape == images.shape and not np.array_equal(moved, images)
        np.testing.assert_allclose(moved, _torch_view(images, scale, degrees), atol=1e-5)


def test_only_doubtful_images_are_averaged() -> None:
    images = np.random.default_rng(1).uniform(-1, 1, (8, 12, 12)).astype(np.float32)
    plain = softmax(_logits(images))
    np.testing.assert_allclose(tta_probabilities(_probabilities, images, unsure_below=0.0), plain)
    every = tta_probabilities(_probabilities, images, unsure_below=1.01)
    expected = sum(softmax(_logits(view(images, s, d))) for s, d in VIEWS) / len(VIEWS)
    np.testing.assert_allclose(every, expected)
    tops = np.sort(plain.max(axis=1))
    threshold = float(tops[3] + tops[4]) / 2  # halfway: no top probability is near it
    some = tta_probabilities(_probabilities, images, unsure_below=threshold)
    doubtful = plain.max(axis=1) < threshold
    np.testing.assert_allclose(some[~doubtful], plain[~doubtful])
    np.testing.assert_allclose(some[doubtful], expected[doubtful])
    np.testing.assert_allclose(some.sum(axis=1), np.ones(8))


def test_cli_tta_for_test_and_predict(course_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.pth"
    assert invoke("train", "--data-dir", course_dataset, "--epochs", "1", "--hidden", "16",
                  "--batch-size", "16", "--out", out).exit_code == 0
    plain = invoke("test", "--model", out, "--json", "--plot", tmp_path / "p.png")
    tested = invoke("test", "--model", out, "--json", "--tta", "--plot", tmp_path / "t.png")
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["n_images"] == json.loads(plain.stdout)["n_images"]
    image = next(course_dataset.rglob("*.png"))
    predicted = invoke("predict", "--model", out, "--json", "--tta", image)
    assert predicted.exit_code == 0, predicted.output
    answer = json.loads(predicted.stdout)[0]
    assert 0 < answer["probability"] <= 1
