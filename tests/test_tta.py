"""Test-time augmentation (`charrec.tta`, `--tta` on test and predict): the views, the averaging
of the doubtful images only, and the CLI options."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from charrec.tta import VIEWS, tta_probabilities, view
from tests.helpers import invoke


class _Fixed(nn.Module):
    """Logits from the image's mean brightness and its first row: views change both."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([images.mean(dim=(1, 2)) * 5, images[:, 0].mean(dim=1) * 5,
                            torch.zeros(len(images))], dim=1)


def test_identity_view_is_the_image_and_others_move_pixels() -> None:
    images = torch.rand(3, 16, 16) * 2 - 1
    assert view(images, 1.0, 0.0) is images
    for scale, degrees in VIEWS[1:]:
        moved = view(images, scale, degrees)
        assert moved.shape == images.shape and not torch.equal(moved, images)
    # a 360-degree turn at scale 1 samples the same pixel centres
    torch.testing.assert_close(view(images, 1.0, 360.0), images, atol=1e-5, rtol=0)


def test_only_doubtful_images_are_averaged() -> None:
    model = _Fixed()
    images = torch.rand(8, 12, 12) * 2 - 1
    plain = torch.softmax(model(images), dim=1)
    torch.testing.assert_close(tta_probabilities(model, images, unsure_below=0.0), plain)
    every = tta_probabilities(model, images, unsure_below=1.01)
    expected = sum(torch.softmax(model(view(images, s, d)), dim=1) for s, d in VIEWS) / len(VIEWS)
    torch.testing.assert_close(every, expected)
    tops = plain.max(dim=1).values.sort().values
    threshold = float(tops[3] + tops[4]) / 2  # halfway: no top probability is near it
    some = tta_probabilities(model, images, unsure_below=threshold)
    doubtful = plain.max(dim=1).values < threshold
    torch.testing.assert_close(some[~doubtful], plain[~doubtful])
    torch.testing.assert_close(some[doubtful], expected[doubtful])
    torch.testing.assert_close(some.sum(dim=1), torch.ones(8))


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
