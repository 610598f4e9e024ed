"""Reading letters in image files with a trained model, honestly: every answer carries its
probability, and a warning when there is no letter to read or the model is unsure.

`predict_images(network, inputs)` is what `charrec predict` calls (through
`charrec.reader.Reader`): `network` is anything with `classes`, `norm_size` and
`logits(images [N, 1, H, W]) -> [N, C]` (ONNX Runtime or torch), and the rest is numpy, so both
backends give the same warnings from the same code. The two rules, with the reasons for their
thresholds:

- **No letter** (checked on the preprocessed image, before the network): the resized gray image
  spans fewer than `MIN_CONTRAST` gray levels (uniform: blank paper, a flat colour), or fewer
  than `MIN_INK` of its pixels are ink after contrast stretching and polarity normalisation
  (an almost empty image: a speck, a thin line at the edge). The thresholds sit below every
  real photo and handwritten capital we measure with (docs/benchmarks.md).
- **Several letters** (`charrec.data.letter_count`): the image, at its own aspect ratio, holds
  two or more letter-sized runs of ink side by side (a word); the answer is then for a squeezed
  word, not a letter.
- **Unsure**: the top probability is below `UNSURE_PROBABILITY`, i.e. the model gives its answer
  less than even odds. Such answers are mostly wrong on real letters (docs/benchmarks.md).

Choosing the model belongs to `charrec.models.resolve`; showing results to `charrec.cli`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from charrec.data.letter_count import several_letters_warning
from charrec.data.preprocess import normalise, open_image, resize_gray, to_grayscale
from charrec.errors import ImageError

MIN_CONTRAST = 16  # gray levels (of 255) between the darkest and lightest pixel
MIN_INK = 0.01  # fraction of pixels lighter than mid-gray once the letter is light on dark
UNSURE_PROBABILITY = 0.5
BATCH_SIZE = 256  # images per network run: a folder is read in a few runs, memory stays small


class Network(Protocol):
    """What predicting needs of a model, whichever backend runs it."""

    classes: Sequence[str]
    norm_size: tuple[int, int]

    def logits(self, images: np.ndarray) -> np.ndarray: ...


ImageInput = str | Path | Image.Image


@dataclass
class Prediction:
    path: str
    letter: str
    probability: float
    top_k: list[dict[str, Any]]
    warning: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)  # what the network saw [H, W]

    def to_dict(self) -> dict[str, Any]:
        result = {"path": self.path, "prediction": self.letter,
                  "probability": round(self.probability, 6), "top_k": self.top_k}
        if self.warning:
            result["warning"] = self.warning
        return result


def no_letter_warning(gray: np.ndarray, image: np.ndarray | None = None) -> str | None:
    """Why the uint8 [H, W] image (grayscale, resized) holds no letter, or None if it may.
    `image` is its preprocessed form (`normalise`), if already made."""
    gray = np.asarray(gray)
    contrast = int(gray.max()) - int(gray.min())
    if contrast < MIN_CONTRAST:
        return (f"no letter found: the image is almost uniform ({contrast} of 255 gray levels "
                f"of contrast)")
    if image is None:
        image = normalise(gray[np.newaxis])[0]
    ink = float(np.count_nonzero(image > 0)) / image.size
    if ink < MIN_INK:
        return f"no letter found: the image is almost empty ({100 * ink:.1f}% of it is ink)"
    return None


def unsure_warning(top: Sequence[dict[str, Any]]) -> str | None:
    if top[0]["probability"] >= UNSURE_PROBABILITY:
        return None
    second = f", then {top[1]['letter']} {100 * top[1]['probability']:.0f}%" if len(top) > 1 else ""
    return (f"unsure: {top[0]['letter']} has only {100 * top[0]['probability']:.0f}% "
            f"probability{second}")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise probabilities, in float64: exp(z - max z) / sum (no overflow)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def predict_images(network: Network, inputs: Sequence[ImageInput], top_k: int = 1,
                   on_image: Callable[[int, int], None] | None = None
                   ) -> tuple[list[Prediction], list[str]]:
    """Predict each image (a file path or a PIL image) -> (predictions in order, error
    messages of unreadable files). Images are decoded one by one and run in batches."""
    predictions: list[Prediction] = []
    failures: list[str] = []
    for start in range(0, len(inputs), BATCH_SIZE):
        names, grays, several = [], [], []
        for index, item in enumerate(inputs[start:start + BATCH_SIZE], start=start):
            try:
                gray, words = _read(item, index, network.norm_size)
            except ImageError as error:
                failures.append(str(error))
                continue
            names.append(_name(item, index))
            grays.append(gray)
            several.append(words)
        if not grays:
            continue
        images = normalise(np.stack(grays))
        probabilities = softmax(network.logits(images[:, np.newaxis]))
        for name, gray, words, image, row in zip(names, grays, several, images, probabilities,
                                                 strict=True):
            ranked, best = _ranked(row, network.classes, top_k)
            warning = no_letter_warning(gray, image) or words or unsure_warning(ranked)
            predictions.append(Prediction(name, ranked[0]["letter"], best, ranked[:top_k],
                                          warning, image))
            if on_image:
                on_image(len(predictions) + len(failures), len(inputs))
    return predictions, failures


def _read(item: ImageInput, index: int, norm_size: tuple[int, int]
          ) -> tuple[np.ndarray, str | None]:
    """(the image as the network's gray pixels uint8 [H, W], its several-letters warning),
    from a path or a PIL image; ImageError if it cannot be read. The warning is made here, on
    the image at its own size, which is then let go (a batch keeps only the small images)."""
    try:
        full = to_grayscale(item if isinstance(item, Image.Image) else open_image(item))
        return resize_gray(full, norm_size), several_letters_warning(full)
    except (OSError, ValueError) as error:
        raise ImageError(f"{_name(item, index)}: cannot convert image ({error})") from None


def _name(item: ImageInput, index: int) -> str:
    if isinstance(item, Image.Image):
        return getattr(item, "filename", "") or f"image {index + 1}"
    return str(item)


def _ranked(probabilities: np.ndarray, classes: Sequence[str], top_k: int
            ) -> tuple[list[dict[str, Any]], float]:
    """(the most likely letters, at least two for the unsure warning, best first; the best
    one's probability unrounded)."""
    order = np.argsort(-probabilities, kind="stable")[:min(max(top_k, 2), len(classes))]
    ranked = [{"letter": classes[int(index)], "probability": round(float(probabilities[index]), 6)}
              for index in order]
    return ranked, float(probabilities[order[0]])
