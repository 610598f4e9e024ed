"""Image preprocessing: one function shared by training, testing and predicting.

Any image file Pillow reads (RGB, RGBA, L, LA, P, I;16, CMYK, EXIF-rotated JPEG, animated GIF:
first frame) -> upright grayscale -> resized to `norm_size` (H, W) -> contrast stretched -> light
letter on a dark background -> float32 [H, W] in [-1, 1].

numpy and Pillow only: ONNX Runtime predictions never import torch. The torch side (training,
`charrec.data.loading`) wraps the same arrays with `torch.from_numpy`, so there is one
definition of what the network sees.

Contrast stretching and polarity normalisation make photos, scans and drawings look alike: a dark
letter on a light sign and a light letter on a dark sign give the same input.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

import numpy as np
from PIL import ExifTags, Image, ImageOps, ImageStat, UnidentifiedImageError

from charrec.errors import ImageError

if TYPE_CHECKING:
    import torch

Pixels = TypeVar("Pixels", np.ndarray, "torch.Tensor")

ORIENTATION = ExifTags.Base.Orientation
# alpha -> mask of the opaque pixels (alpha >= 128), as a table: `point` with a function
# evaluates it for all 256 levels on every image
OPAQUE = [0] * 128 + [255] * 128
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm")


def open_image(path: str | Path) -> Image.Image:
    """Decode an image file fully (first frame), upright per EXIF; ImageError if it can't be.

    The file is opened first and examined only when that fails (a missing file, a folder), so
    the common case costs no extra system calls: decoding a dataset opens thousands of files.
    """
    try:
        return _decode(path)
    except UnidentifiedImageError:
        size = Path(path).stat().st_size
        reason = "empty file" if size == 0 else "not an image Pillow can read"
        raise ImageError(f"{path}: {reason}") from None
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001 - decoders of hostile files raise all sorts
        if not Path(path).exists():
            raise ImageError(f"{path}: no such file") from None
        if Path(path).is_dir():
            raise ImageError(f"{path}: is a directory, not an image") from None
        raise ImageError(f"{path}: cannot decode image ({type(error).__name__}: {error})"
                         ) from None


def decode_image(data: bytes, name: str = "image", max_pixels: int | None = None
                 ) -> Image.Image:
    """`open_image` for an image held in memory (an upload), named `name` in error messages;
    an image declaring more than `max_pixels` pixels is refused before it is decoded."""
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        return _decode(io.BytesIO(data), name, max_pixels)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read") from None
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001 - decoders of hostile files raise all sorts
        raise ImageError(f"{name}: cannot decode image ({type(error).__name__}: {error})"
                         ) from None


def _decode(source: str | Path | IO[bytes], name: str | Path | None = None,
            max_pixels: int | None = None) -> Image.Image:
    """The decoding both of the above share; a decompression bomb (more pixels than Pillow's
    safety limit, or than `max_pixels`) is an ImageError, other failures are Pillow's own."""
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if image.width * image.height > limit:  # before a single pixel is decoded
                    raise Image.DecompressionBombError(f"{image.width}x{image.height}")
                image.seek(0)
                image.load()
                if image.getexif().get(ORIENTATION, 1) == 1:
                    return image.copy()  # upright already (most files have no EXIF at all)
                return ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name or source}: image too large (declared size exceeds the "
                         f"safety limit of {limit} pixels)") from None


def to_grayscale(image: Image.Image) -> Image.Image:
    """Mode 'L' (8-bit gray) from any mode; transparency is composited onto black or white,
    whichever contrasts with the opaque pixels (`_contrasting_background`)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16/32-bit gray: scale the used range to 0..255 instead of clipping at 255
        extrema = image.getextrema()
        low, high = (extrema if isinstance(extrema[0], int | float) else extrema[0])
        scale = 255.0 / max(high - low, 1)
        return image.convert("I").point(lambda value: (value - low) * scale).convert("L")
    if image.mode == "F":
        low, high = image.getextrema()
        scale = 255.0 / max(high - low, 1e-12)
        return image.point(lambda value: (value - low) * scale).convert("L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        shade = _contrasting_background(rgba)
        background = Image.new("RGBA", image.size, (shade, shade, shade, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L")


def _contrasting_background(rgba: Image.Image) -> int:
    """Gray level to put under the transparent parts: black under a light drawing (mean gray
    of the opaque pixels >= 128), white under a dark one or a fully transparent image, so a white
    letter on a transparent background does not vanish into white."""
    opaque = rgba.getchannel("A").point(OPAQUE)
    stats = ImageStat.Stat(rgba.convert("L"), mask=opaque)
    if not stats.count or stats.count[0] == 0:
        return 255
    return 0 if stats.mean[0] >= 128 else 255


def resize_gray(image: Image.Image, norm_size: tuple[int, int]) -> np.ndarray:
    """The per-image step: any PIL image -> grayscale resized to (H, W), uint8 array [H, W]."""
    return _as_array(gray_bytes(image, norm_size), norm_size)


def _as_array(pixels: bytes, norm_size: tuple[int, int]) -> np.ndarray:
    """H*W gray bytes -> uint8 array [H, W] (a writable copy: the bytes stay immutable)."""
    return np.frombuffer(pixels, dtype=np.uint8).reshape(norm_size).copy()


def gray_bytes(image: Image.Image, norm_size: tuple[int, int]) -> bytes:
    """`resize_gray` as H*W bytes, row by row (many images are joined into one array at once:
    an array per image costs more than decoding a small one)."""
    height, width = norm_size
    gray = to_grayscale(image)
    if gray.size != (width, height):  # (resizing to the same size would only copy it)
        gray = gray.resize((width, height), Image.Resampling.BILINEAR)
    return gray.tobytes()


def normalise(pixels: Pixels) -> Pixels:
    """The batched step: gray images [N, H, W] (uint8) -> float32 in [-1, 1], each contrast
    stretched to its full range and turned light-letter-on-dark when the median of its border
    ring (mostly background) is above its mean.

    Computed with numpy; a torch tensor in gives a tensor out (the same values, shared with the
    array: training keeps its tensors, `predict` on ONNX Runtime never imports torch). Results
    are bit for bit those of the plain formula `(x - low) / range`, `1 - v` where inverted,
    then `2 v - 1` (tests/data/test_normalise.py): the ops work in place in that order and
    inverting is `v * -1 + 1`, one rounding of 1 - v like `1 - v`.
    """
    if not isinstance(pixels, np.ndarray):  # a torch tensor (torch is imported already)
        import torch

        return torch.from_numpy(normalise(pixels.numpy()))
    count, height, width = pixels.shape
    flat = pixels.reshape(count, -1)
    low = flat.min(axis=1).astype(np.float32).reshape(-1, 1, 1)
    high = flat.max(axis=1).astype(np.float32).reshape(-1, 1, 1)
    scale = np.maximum(high - low, np.float32(1.0))
    values = pixels.astype(np.float32)  # a new array, worked on in place: never the caller's
    values -= low
    values /= scale  # contrast stretch to [0, 1]
    invert = _ring_median_above(values, values.mean(axis=(1, 2), keepdims=True,
                                                     dtype=np.float32))
    values *= np.where(invert, np.float32(-1.0), np.float32(1.0))
    values += invert.astype(np.float32)
    values *= np.float32(2.0)
    values -= np.float32(1.0)
    return values


def _ring_median_above(values: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Whether the median (the lower of the middle two) of each image's outer ring of pixels
    (1/8 of each side, at least 1; the whole image when nothing is left inside) is above its
    mean -> bool [N, 1, 1].

    The median, not the mean: in a tight crop the letter's strokes run into the ring, and a
    thin dark letter on light paper then pulls the ring's mean below the image's mean (a wrong
    inversion) while the ring's median stays the paper's tone.

    Counted instead of sorted: the k-th smallest of L values (k = (L - 1) // 2) is above the
    mean exactly when at most k of them are not, so one comparison per ring pixel decides it
    (several times faster than a median, and exact: no value is rounded on the way).
    """
    count, height, width = values.shape
    rows, cols = max(1, height // 8), max(1, width // 8)
    if height <= 2 * rows or width <= 2 * cols:
        strips = [values]
    else:
        middle = values[:, rows:height - rows]
        strips = [values[:, :rows], values[:, height - rows:], middle[:, :, :cols],
                  middle[:, :, width - cols:]]
    ring_size = sum(strip.shape[1] * strip.shape[2] for strip in strips)
    above = sum(np.count_nonzero(strip > mean, axis=(1, 2)) for strip in strips)
    return ((ring_size - above) <= (ring_size - 1) // 2).reshape(count, 1, 1)


def image_array(image: Image.Image, norm_size: tuple[int, int]) -> np.ndarray:
    """PIL image -> float32 array [H, W] in [-1, 1], light letter on dark background."""
    return normalise(resize_gray(image, norm_size)[np.newaxis])[0]


def load_gray(path: str | Path, norm_size: tuple[int, int]) -> np.ndarray:
    """Read one image file -> uint8 [H, W] (the part of `load_array` done per image)."""
    return _as_array(read_gray(path, norm_size), norm_size)


def read_gray(path: str | Path, norm_size: tuple[int, int]) -> bytes:
    """`load_gray` as H*W bytes (see `gray_bytes`)."""
    image = open_image(path)
    try:
        return gray_bytes(image, norm_size)
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot convert image ({error})") from None


def load_array(path: str | Path, norm_size: tuple[int, int]) -> np.ndarray:
    """Read and preprocess one image file -> float32 array [H, W] in [-1, 1]."""
    return normalise(load_gray(path, norm_size)[np.newaxis])[0]


def load_image(path: str | Path, norm_size: tuple[int, int]) -> torch.Tensor:
    """`load_array` as a torch tensor (for training code and tests; imports torch)."""
    import torch

    return torch.from_numpy(load_array(path, norm_size))
