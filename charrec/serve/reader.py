"""The server's one seam to the predict library: `load_reader(model)` loads the model once and
returns a `Reader` whose `read(data)` answers an image held in memory with the same dictionary
`charrec predict --json` prints for a file (less its `path`).

Everything the server knows about models and predicting goes through here, so changing how a
model is loaded or which backend runs it is a change to this file alone. HTTP does not belong
here (`charrec.serve.app`), nor do command-line options (`charrec.cli_serve`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# An image declaring more pixels than this is refused before decoding (a decompression bomb
# costs memory in proportion to its pixels; a letter needs far fewer).
MAX_PIXELS = 40_000_000


@dataclass
class Reader:
    """A loaded model and what describes it; `read` may be called from several threads."""

    network: Any
    config: Any
    classes: list[str]
    description: str
    backend: str
    max_pixels: int = MAX_PIXELS

    def read(self, data: bytes, top_k: int = 1, name: str = "image") -> dict[str, Any]:
        """The JSON answer for the image file's bytes `data` (ImageError if it is not one)."""
        import torch

        from charrec.data.preprocess import decode_image
        from charrec.predict import predict_image

        image = decode_image(data, name, self.max_pixels)
        with torch.inference_mode():
            prediction = predict_image(self.network, self.config, self.classes, image, name,
                                       top_k)
        answer = prediction.to_dict()
        del answer["path"]
        return {**answer, "model": self.description}

    def describe(self) -> dict[str, Any]:
        """What `GET /api/model` answers."""
        return {"model": self.description, "backend": self.backend, "arch": self.config.arch,
                "classes": list(self.classes), "norm_size": list(self.config.norm_size)}


def load_reader(model: str | None = None) -> Reader:
    """Load the model `--model` names (see `charrec.models.resolve`), once, for many reads."""
    from charrec.checkpoint import load_model
    from charrec.models.resolve import describe_model, resolve_model

    choice = resolve_model(model)
    network, config, checkpoint = load_model(choice.path)
    return Reader(network, config, list(checkpoint["classes"]),
                  describe_model(choice, checkpoint), "torch")
