"""Reading letters in image files with a trained model, honestly: every answer carries its
probability, and a warning when there is no letter to read or the model is unsure.

`predict_images(model, config, classes, paths)` is what `charrec predict` calls. The two rules,
with the reasons for their thresholds:

- **No letter** (checked on the preprocessed image, before the network): the resized gray image
  spans fewer than `MIN_CONTRAST` gray levels (uniform: blank paper, a flat colour), or fewer
  than `MIN_INK` of its pixels are ink after contrast stretching and polarity normalisation
  (an almost empty image: a speck, a thin line at the edge). No real letter in
  `../shared/realdev` trips either rule (measured at 32x32: the lowest contrast of its 779 photos
  is 18 gray levels, the least ink of its 780 handwritten capitals 1.5%).
- **Several letters** (`charrec.data.letter_count`): the image, at its own aspect ratio, holds
  two or more letter-sized runs of ink side by side (a word); the answer is then for a squeezed
  word, not a letter.
- **Unsure**: the top probability is below `UNSURE_PROBABILITY`, i.e. the model gives its answer
  less than even odds. Such answers are mostly wrong: on the real photos and handwriting of
  `../shared/realdev`, a 1-epoch CNN and a 2-epoch MLP trained on the built-in letters were right
  in 22-34% of their answers under 50%, and in 55-89% of the others (2026-12-03).

Choosing the model belongs to `charrec.models.resolve`; showing results to `charrec.cli`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from charrec.config import TrainConfig
from charrec.data.letter_count import several_letters_warning
from charrec.data.preprocess import normalise, open_image, resize_gray, to_grayscale
from charrec.errors import ImageError
from charrec.nn.functions import softmax
from charrec.nn.model import predict_logits

MIN_CONTRAST = 16  # gray levels (of 255) between the darkest and lightest pixel
MIN_INK = 0.01  # fraction of pixels lighter than mid-gray once the letter is light on dark
UNSURE_PROBABILITY = 0.5


@dataclass
class Prediction:
    path: str
    letter: str
    probability: float
    top_k: list[dict[str, Any]]
    warning: str | None = None
    image: torch.Tensor | None = field(default=None, repr=False)  # what the network saw

    def to_dict(self) -> dict[str, Any]:
        result = {"path": self.path, "prediction": self.letter,
                  "probability": round(self.probability, 6), "top_k": self.top_k}
        if self.warning:
            result["warning"] = self.warning
        return result


def no_letter_warning(gray: torch.Tensor) -> str | None:
    """Why the uint8 [H, W] image (grayscale, resized) holds no letter, or None if it may."""
    contrast = int(gray.max()) - int(gray.min())
    if contrast < MIN_CONTRAST:
        return (f"no letter found: the image is almost uniform ({contrast} of 255 gray levels "
                f"of contrast)")
    ink = float((normalise(gray.unsqueeze(0))[0] > 0).float().mean())
    if ink < MIN_INK:
        return f"no letter found: the image is almost empty ({100 * ink:.1f}% of it is ink)"
    return None


def unsure_warning(top: Sequence[dict[str, Any]]) -> str | None:
    if top[0]["probability"] >= UNSURE_PROBABILITY:
        return None
    second = f", then {top[1]['letter']} {100 * top[1]['probability']:.0f}%" if len(top) > 1 else ""
    return (f"unsure: {top[0]['letter']} has only {100 * top[0]['probability']:.0f}% "
            f"probability{second}")


def predict_images(model: nn.Module, config: TrainConfig, classes: Sequence[str],
                   paths: Sequence[Path], top_k: int = 1,
                   on_image: Callable[[int, int], None] | None = None
                   ) -> tuple[list[Prediction], list[str]]:
    """Predict each image -> (predictions in order, error messages of unreadable files)."""
    predictions, failures = [], []
    for number, path in enumerate(paths, start=1):
        try:
            predictions.append(predict_image(model, config, classes, open_image(path),
                                             str(path), top_k))
        except ImageError as error:
            failures.append(str(error))
            continue
        if on_image:
            on_image(number, len(paths))
    return predictions, failures


def predict_image(model: nn.Module, config: TrainConfig, classes: Sequence[str],
                  decoded: Image.Image, path: str, top_k: int = 1) -> Prediction:
    """Predict one decoded image (`open_image`, `decode_image`) named `path`; ImageError if it
    cannot be converted."""
    try:
        full = to_grayscale(decoded)
        gray = resize_gray(full, config.norm_size)
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot convert image ({error})") from None
    image = normalise(gray.unsqueeze(0))[0]
    probabilities = softmax(predict_logits(model, image.unsqueeze(0)))[0]
    values, indices = torch.topk(probabilities, k=min(max(top_k, 2), len(classes)))
    ranked = [{"letter": classes[int(index)], "probability": round(float(value), 6)}
              for value, index in zip(values, indices, strict=True)]
    warning = (no_letter_warning(gray) or several_letters_warning(full)
               or unsure_warning(ranked))
    return Prediction(path, ranked[0]["letter"], float(values[0]), ranked[:top_k], warning, image)
