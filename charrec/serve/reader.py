"""The server's one seam to the predict library: `load_reader(model, backend)` loads the model
once (`charrec.reader`: on ONNX Runtime where the model has an ONNX form, so a request costs
milliseconds and torch is never imported) and returns a `Reader` whose `read(data)` answers an
image held in memory with the same dictionary `charrec predict --json` prints for a file (less
its `path`).

Everything the server knows about models and predicting goes through here. HTTP does not belong
here (`charrec.serve.app`), nor do command-line options (`charrec.cli.serve`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# An image declaring more pixels than this is refused before decoding (a decompression bomb
# costs memory in proportion to its pixels; a letter needs far fewer).
MAX_PIXELS = 40_000_000


@dataclass
class Reader:
    """A loaded model (`charrec.reader.Reader`); `read` may be called from several threads."""

    model: Any
    max_pixels: int = MAX_PIXELS

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    @property
    def description(self) -> str:
        return self.model.describe()

    def read(self, data: bytes, top_k: int = 1, name: str = "image") -> dict[str, Any]:
        """The JSON answer for the image file's bytes `data` (ImageError if it is not one)."""
        from charrec.data.preprocess import decode_image
        from charrec.errors import ImageError

        image = decode_image(data, name, self.max_pixels)
        image.filename = name  # what predict names it by
        predictions, failures = self.model.predict_images([image], top_k)
        if failures:
            raise ImageError(failures[0])
        answer = predictions[0].to_dict()
        del answer["path"]
        return {**answer, "model": self.description, **self.model.tuned_from()}

    def describe(self) -> dict[str, Any]:
        """What `GET /api/model` answers."""
        config = self.model.info.get("config") or {}
        return {"model": self.description, "backend": self.model.backend,
                "arch": config.get("arch", "mlp"), "classes": self.classes,
                "norm_size": list(self.model.norm_size)}


def load_reader(model: str | None = None, backend: str = "auto") -> Reader:
    """Load the model `--model` names (see `charrec.models.resolve`) on `backend` ("auto",
    "onnx" or "torch"), once, for many reads; one thread per prediction (the server runs
    several at once)."""
    from charrec.reader import load_reader as load_model_reader

    def one_torch_thread() -> None:
        import torch

        torch.set_num_threads(1)

    return Reader(load_model_reader(model, backend, threads=1, before_torch=one_torch_thread))
