"""Measuring a trained model on a dataset: which images, per-class accuracy, common mistakes.

`measure(network, config, data_dir, split)` is what `charrec test` and the benchmarks call;
`network` is a `charrec.reader.Reader` (or anything with `classes` and `logits(images)`), so an
ONNX model is measured without importing torch. It decides which images a model is tested on
(a folder-per-class tree the model was not trained on is a test set as a whole; the one it was
trained on is split with the training seed, so its training images are never tested) and
returns plain numbers. No printing, no plots.
`predicted_images` lists each image's answer for a contact sheet of the results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrec.config import TrainConfig
from charrec.data.contact_sheet import PredictedImage
from charrec.data.loading import LetterData, detect_layout, load_split
from charrec.errors import DataError
from charrec.predict import Network, softmax

BATCH_SIZE = 1024  # images per network run


@dataclass
class Measurement:
    data: LetterData
    data_name: str  # what was tested, e.g. "handwriting_dev" or "character_classification/test"
    accuracy: float
    n_correct: int
    confusion: np.ndarray  # [true, predicted] counts, int64
    classes: Sequence[str]
    predictions: np.ndarray  # [N] class index each image was read as

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


def confused_pairs(confusion: Any, classes: Sequence[str],
                   top: int = 5) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) mistakes."""
    pairs = [(classes[true], classes[predicted], int(confusion[true, predicted]))
             for true in range(len(classes)) for predicted in range(len(classes))
             if true != predicted and int(confusion[true, predicted]) > 0]
    return sorted(pairs, key=lambda pair: (-pair[2], pair[0], pair[1]))[:top]


def test_images(config: TrainConfig, data_dir: str | Path | None, split: str,
                strict: bool = False) -> tuple[LetterData, str]:
    """The images (numpy arrays) to test a model trained per `config` on, and a name for
    them."""
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
                      strict=strict, arrays=True)
    return data, directory.name if whole else f"{directory.name}/{split}"


def measure(network: Network, config: TrainConfig, data_dir: str | Path | None = None,
            split: str = "test", strict: bool = False) -> Measurement:
    data, name = test_images(config, data_dir, split, strict)
    return measure_data(network, data, name)


def all_logits(network: Network, images: Any) -> np.ndarray:
    """The network's logits [N, C] for images [N, H, W] (array or tensor), in batches."""
    images = np.asarray(images, dtype=np.float32)
    if len(images) == 0:
        return np.empty((0, len(network.classes)), dtype=np.float32)
    return np.concatenate([network.logits(images[start:start + BATCH_SIZE, np.newaxis])
                           for start in range(0, len(images), BATCH_SIZE)])


def measure_data(network: Network, data: LetterData, name: str) -> Measurement:
    """`measure` on images already decoded (`test_images`)."""
    labels = np.asarray(data.labels, dtype=np.int64)
    predictions = all_logits(network, data.images).argmax(axis=1)
    n_classes = len(network.classes)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    n_correct = int((predictions == labels).sum())
    accuracy = n_correct / len(labels) if len(labels) else 0.0
    return Measurement(data, name, accuracy, n_correct, confusion, list(network.classes),
                       predictions)


def predicted_images(network: Network, result: Measurement) -> list[PredictedImage]:
    """Each tested image with the model's answer, its probability and the true letter (for a
    contact sheet of the results)."""
    probabilities = softmax(all_logits(network, result.data.images))
    best, indices = probabilities.max(axis=1), probabilities.argmax(axis=1)
    return [PredictedImage(path, result.classes[int(index)], float(probability),
                           result.classes[int(label)])
            for path, index, probability, label in zip(result.data.paths, indices, best,
                                                       np.asarray(result.data.labels),
                                                       strict=True)]
