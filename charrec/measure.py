"""Measuring a trained model on a dataset: which images, per-class accuracy, common mistakes.

`measure(model, config, classes, data_dir, split)` is what `charrec test` and the benchmarks
call. It decides which images a checkpoint is tested on (a folder-per-class tree the model was
not trained on is a test set as a whole; the one it was trained on is split with the training
seed, so its training images are never tested) and returns plain numbers. No printing, no plots.
`predicted_images` lists each image's answer for a contact sheet of the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from charrec.config import TrainConfig
from charrec.data.contact_sheet import PredictedImage
from charrec.data.loading import LetterData, detect_layout, load_split
from charrec.errors import DataError
from charrec.nn.functions import softmax
from charrec.nn.model import predict_logits
from charrec.train import evaluate


@dataclass
class Measurement:
    data: LetterData
    data_name: str  # what was tested, e.g. "handwriting_dev" or "character_classification/test"
    accuracy: float
    n_correct: int
    confusion: torch.Tensor  # [true, predicted] counts
    classes: Sequence[str]

    def per_class(self) -> dict[str, dict[str, Any]]:
        """{letter: {"n_images", "n_correct", "accuracy"}} (accuracy None for absent letters)."""
        result = {}
        for index, letter in enumerate(self.classes):
            total, correct = int(self.confusion[index].sum()), int(self.confusion[index, index])
            result[letter] = {"n_images": total, "n_correct": correct,
                              "accuracy": correct / total if total else None}
        return result

    def confused_pairs(self, top: int = 5) -> list[tuple[str, str, int]]:
        return confused_pairs(self.confusion, self.classes, top)


def confused_pairs(confusion: torch.Tensor, classes: Sequence[str],
                   top: int = 5) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) mistakes."""
    pairs = [(classes[true], classes[predicted], int(confusion[true, predicted]))
             for true in range(len(classes)) for predicted in range(len(classes))
             if true != predicted and int(confusion[true, predicted]) > 0]
    return sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1]))[:top]


def test_images(config: TrainConfig, data_dir: str | Path | None, split: str,
                strict: bool = False) -> tuple[LetterData, str]:
    """The images to test a model trained per `config` on, and a name for them."""
    stored = Path(config.data_dir)
    if data_dir is None and not stored.is_absolute() and not stored.exists():
        # older checkpoints stored the folder as typed, relative to where training ran
        raise DataError(f"no images to test on: give --data-dir DIR (a folder per letter A-Z, "
                        f"or the course layout). The model's own data, {stored}, is a path "
                        f"relative to where it was trained and is not in this folder; "
                        f"`charrec data synth` renders the built-in letters there")
    directory = Path(data_dir or config.data_dir).resolve()
    trained_here = directory == Path(config.data_dir).resolve()
    whole = detect_layout(directory) == "folders" and not trained_here
    data = load_split(directory, split, config.norm_size, config.seed, whole_folder=whole,
                      strict=strict)
    return data, directory.name if whole else f"{directory.name}/{split}"


def measure(model: nn.Module, config: TrainConfig, classes: Sequence[str],
            data_dir: str | Path | None = None, split: str = "test",
            strict: bool = False) -> Measurement:
    data, name = test_images(config, data_dir, split, strict)
    return measure_data(model, data, name, classes)


def measure_data(model: nn.Module, data: LetterData, name: str,
                 classes: Sequence[str]) -> Measurement:
    """`measure` on images already decoded (`test_images`)."""
    result = evaluate(model, data.images, data.labels, len(classes))
    return Measurement(data, name, result["accuracy"], result["n_correct"], result["confusion"],
                       list(classes))


def predicted_images(model: nn.Module, result: Measurement) -> list[PredictedImage]:
    """Each tested image with the model's answer, its probability and the true letter (for a
    contact sheet of the results)."""
    probabilities = softmax(predict_logits(model, result.data.images))
    best, indices = probabilities.max(dim=1)
    return [PredictedImage(path, result.classes[int(index)], float(probability),
                           result.classes[int(label)])
            for path, index, probability, label in zip(result.data.paths, indices, best,
                                                       result.data.labels, strict=True)]
