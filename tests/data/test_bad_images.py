"""Every kind of bad or unusual image file: a clear one-line error naming the file, or a correct
[-1, 1] tensor. Plus property tests: random bytes and random configs never crash with anything
but charrec's own error types."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from charrec.cli import app
from charrec.config import make_config
from charrec.data.preprocess import load_image, open_image
from charrec.errors import ConfigError, ImageError
from tests.helpers import preprocess

SIZE = (16, 16)
FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # tmp_path is reused; each example rewrites it
runner = CliRunner()


def _png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height (a decompression bomb's signature)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b""))
    return path


def _letter_image(mode: str = "L", size: tuple[int, int] = (24, 24)) -> Image.Image:
    image = Image.new("L", size, 230)
    image.paste(20, (size[0] // 3, size[1] // 4, size[0] // 2, 3 * size[1] // 4))
    return image.convert(mode) if mode != "L" else image


BAD_FILES = {
    "missing": lambda path: path,
    "directory": lambda path: (path.mkdir(), path)[1],
    "zero bytes": lambda path: (path.write_bytes(b""), path)[1],
    "text named png": lambda path: (path.write_text("hello, I am not an image"), path)[1],
    "truncated png": lambda path: _truncate(path, "PNG"),
    "truncated jpeg": lambda path: _truncate(path.with_suffix(".jpg"), "JPEG"),
    "decompression bomb": lambda path: _png_with_declared_size(path, 100_000, 100_000),
}


def _truncate(path: Path, kind: str) -> Path:
    Image.effect_noise((64, 64), 80).convert("L").save(path, kind)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_raise_image_error_naming_the_file(tmp_path, kind):
    path = BAD_FILES[kind](tmp_path / "bad image é.png")
    with pytest.raises(ImageError) as error:
        load_image(path, SIZE)
    assert path.name in str(error.value)


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_predict_on_bad_files_is_one_line_and_nonzero(tmp_path, kind, trained_model):
    path = BAD_FILES[kind](tmp_path / "bad.png")
    result = runner.invoke(app, ["predict", "--model", str(trained_model), "--im-path", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and path.name in lines[0]


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, course_dataset) -> Path:
    out = tmp_path_factory.mktemp("model") / "m.pth"
    result = runner.invoke(app, ["train", "--data-dir", str(course_dataset), "--epochs", "1",
                                 "--hidden", "8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


UNUSUAL_FILES = {
    "1x1": lambda d: _save(Image.new("L", (1, 1), 0), d / "one.png"),
    "20000x20": lambda d: _save(_letter_image("L", (20000, 20)), d / "wide.png"),
    "animated gif": lambda d: _save(_letter_image("P"), d / "anim.gif", save_all=True,
                                    append_images=[Image.new("P", (24, 24), 3)], duration=50),
    "16-bit png": lambda d: _save(_letter_image("L").convert("I").point(lambda v: v * 256)
                                  .convert("I;16"), d / "deep.png"),
    "cmyk jpeg": lambda d: _save(_letter_image("CMYK"), d / "cmyk.jpg"),
    "palette with transparency": lambda d: _save(_letter_image("P"), d / "pal.png",
                                                 transparency=0),
    "rgba": lambda d: _save(_letter_image("RGBA"), d / "rgba.png"),
    "la": lambda d: _save(_letter_image("LA"), d / "la.png"),
    "spaces and non-ascii name": lambda d: _save(_letter_image("RGB"), d / "lettre à é ü.png"),
}


@pytest.mark.parametrize("kind", list(UNUSUAL_FILES))
def test_unusual_files_load_to_the_right_shape_and_range(tmp_path, kind):
    tensor = load_image(UNUSUAL_FILES[kind](tmp_path), SIZE)
    assert tensor.shape == SIZE and tensor.dtype == torch.float32
    assert -1.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0


def test_sixteen_bit_png_keeps_its_contrast(tmp_path):
    tensor = load_image(UNUSUAL_FILES["16-bit png"](tmp_path), SIZE)
    assert float(tensor.max()) - float(tensor.min()) > 1.5  # not clipped to one flat grey


def test_animated_gif_uses_the_first_frame(tmp_path):
    tensor = load_image(UNUSUAL_FILES["animated gif"](tmp_path), SIZE)
    assert float(tensor.max()) - float(tensor.min()) > 1.5  # frame 2 is flat


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    image = Image.new("L", (40, 20), 255)
    image.paste(0, (0, 0, 20, 20))  # left half dark
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    upright = open_image(path)
    assert upright.size == (20, 40)
    assert upright.getpixel((10, 5)) < 100 and upright.getpixel((10, 35)) > 150


# ---------------------------------------------------------------------------- property tests


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash_the_loader(tmp_path, data):
    path = tmp_path / "fuzz.png"
    path.write_bytes(data)
    try:
        tensor = load_image(path, SIZE)
    except ImageError:
        return
    assert tensor.shape == SIZE and -1 <= float(tensor.min()) <= float(tensor.max()) <= 1


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"]),
       width=st.integers(1, 70), height=st.integers(1, 70), seed=st.integers(0, 10),
       norm=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_preprocess_output_shape_dtype_range(mode, width, height, seed, norm):
    torch.manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width), dtype=torch.uint8)
    image = Image.frombytes("L", (width, height), pixels.numpy().tobytes()).convert(mode)
    tensor = preprocess(image, norm)
    assert tensor.shape == norm and tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all()
    assert -1.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0


config_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000),
                          st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                          st.lists(st.integers(-3, 300), max_size=4))
config_keys = st.sampled_from(["hidden", "layers", "lr", "epochs", "norm_size", "optim", "act",
                               "batch_size", "momentum", "weight_decay", "seed", "augment",
                               "device", "init", "val-interval", "data_dir", "nonsense"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(config_keys, config_values, max_size=6))
def test_random_configs_raise_only_config_errors(values):
    try:
        config = make_config(values)
    except ConfigError:
        return
    assert config.layers == len(config.hidden) + 1
    assert config.lr > 0 and config.epochs >= 1 and min(config.norm_size) >= 1


@settings(max_examples=100, deadline=None, suppress_health_check=FIXTURE_OK)
@given(text=st.text(max_size=200))
def test_random_yaml_files_raise_only_config_errors(tmp_path, text):
    from charrec.config import load_train_yaml

    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        make_config(load_train_yaml(path))
    except ConfigError:
        pass
