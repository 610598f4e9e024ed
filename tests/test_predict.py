"""Which model answers (`--model PATH`, `--model bundled`, ./saved_models/recognition.pth, the
bundled model), images as arguments, and honest confidence: probabilities, warnings for blank
images and unsure answers, transparent images, contact sheets of results."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from charrec import CLASSES, __version__
from charrec.data.preprocess import load_image
from charrec.errors import CheckpointError
from charrec.models import resolve
from charrec.models.resolve import DEFAULT_MODEL, resolve_model
from charrec.predict import MIN_INK, no_letter_warning, unsure_warning
from tests.helpers import assert_one_line_error, draw_letter, invoke


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """The suite's tiny checkpoint, in a folder of this module's own."""
    out = tmp_path_factory.mktemp("predict") / "tiny.pth"
    shutil.copy(tiny_checkpoint, out)
    return out


@pytest.fixture()
def bundled(model: Path, monkeypatch) -> Path:
    """Make the tiny checkpoint this install's bundled model."""
    monkeypatch.setattr(resolve, "bundled_resource", lambda: model)
    return model


@pytest.fixture()
def no_bundled(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(resolve, "bundled_resource", lambda: tmp_path / "missing.pth")


@pytest.fixture()
def letters(tmp_path: Path) -> list[Path]:
    """Three drawn letters: two files and a folder holding a third."""
    rng = random.Random(2)
    (tmp_path / "pics" / "more").mkdir(parents=True)
    paths = [tmp_path / "pics" / "a.png", tmp_path / "pics" / "b.png",
             tmp_path / "pics" / "more" / "c.png"]
    for letter, path in zip("ABC", paths, strict=True):
        draw_letter(letter, rng).save(path)
    return paths


def _model_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Model: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------------ which model


def test_resolution_order(model: Path, bundled: Path, tmp_path: Path) -> None:
    assert resolve_model(None, tmp_path).source == "bundled"  # nothing local
    local = tmp_path / DEFAULT_MODEL
    local.parent.mkdir(parents=True)
    shutil.copy(model, local)
    assert resolve_model(None, tmp_path) == resolve.ModelChoice(local, "local")
    assert resolve_model(model, tmp_path) == resolve.ModelChoice(model, "option")
    choice = resolve_model("bundled", tmp_path)
    assert choice.bundled and choice.path.read_bytes() == model.read_bytes()


def test_no_bundled_model_is_a_clear_error(no_bundled: None) -> None:
    with pytest.raises(CheckpointError, match="no bundled model in this install"):
        resolve_model("bundled")


def test_predict_from_an_empty_folder_uses_the_bundled_model(bundled: Path, letters: list[Path],
                                                             tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("predict", letters[0])
    assert result.exit_code == 0, result.output
    assert _model_line(result).startswith(f"Model: bundled (charrec {__version__}, mlp, val ")
    assert result.stdout.startswith("Prediction: ")


def test_a_trained_model_in_the_folder_wins(model: Path, no_bundled: None, letters: list[Path],
                                            tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("predict", letters[0]), "no bundled model in this install",
                          "charrec train")
    (tmp_path / DEFAULT_MODEL).parent.mkdir(parents=True)
    shutil.copy(model, tmp_path / DEFAULT_MODEL)
    result = invoke("predict", letters[0], "--json")
    assert result.exit_code == 0, result.output
    assert _model_line(result).startswith(f"Model: {DEFAULT_MODEL} (charrec")
    assert json.loads(result.stdout)[0]["model"].startswith(str(DEFAULT_MODEL))


def test_test_with_the_bundled_model_writes_its_plot_here(bundled: Path, course_dataset: Path,
                                                          tmp_path: Path,
                                                          monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("test", "--model", "bundled", "--data-dir", course_dataset, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"].startswith("bundled (charrec") and summary["n_images"] == 52
    assert (tmp_path / summary["confusion_png"]).is_file()
    assert Path(summary["confusion_png"]).parent == Path(".")


# ----------------------------------------------------------------------------- which images


def test_images_as_arguments_options_and_folders(model: Path, letters: list[Path]) -> None:
    result = invoke("predict", letters[0], "--im-path", letters[1], letters[2].parent,
                    "--model", model, "--json")
    assert result.exit_code == 0, result.output
    paths = [entry["path"] for entry in json.loads(result.stdout)]
    assert paths == [str(letters[0]), str(letters[2]), str(letters[1])]


# ------------------------------------------------------------------------ honest confidence


def test_every_prediction_carries_its_probability(model: Path, letters: list[Path]) -> None:
    text = invoke("predict", *letters, "--model", model)
    assert text.exit_code == 0, text.output
    lines = [line for line in text.stdout.splitlines() if "Prediction:" in line]
    assert len(lines) == 3 and all(line.endswith("%)") for line in lines)
    entries = json.loads(invoke("predict", *letters, "--model", model, "--json").stdout)
    for entry in entries:
        assert entry["probability"] == entry["top_k"][0]["probability"]
        assert 0 < entry["probability"] <= 1
        assert entry["model"].startswith(f"{model} (charrec")


@pytest.mark.parametrize("image", [
    Image.new("L", (40, 40), 255),                       # blank white
    Image.new("RGB", (50, 30), (90, 140, 200)),          # a flat colour
    Image.effect_noise((40, 40), 3).point(lambda v: v // 2 + 60),  # faint, almost uniform noise
], ids=["white", "colour", "faint-noise"])
def test_an_image_without_a_letter_gets_a_warning(model: Path, tmp_path: Path,
                                                  image: Image.Image) -> None:
    path = tmp_path / "empty.png"
    image.save(path)
    text = invoke("predict", path, "--model", model)
    assert text.exit_code == 0, text.output
    assert "Warning: no letter found: the image is almost uniform" in text.stdout
    entry = json.loads(invoke("predict", path, "--model", model, "--json").stdout)[0]
    assert entry["warning"].startswith("no letter found")


def test_an_almost_empty_image_gets_a_warning() -> None:
    speck = torch.full((32, 32), 230, dtype=torch.uint8)
    speck[5, 5] = 20  # one dark pixel: 0.1% ink
    assert "almost empty" in no_letter_warning(speck)
    letter = torch.frombuffer(bytearray(draw_letter("E", random.Random(0)).tobytes()),
                              dtype=torch.uint8).view(32, 32)
    assert no_letter_warning(letter) is None
    assert MIN_INK < 0.05


def test_unsure_rule() -> None:
    confident = [{"letter": "A", "probability": 0.93}, {"letter": "R", "probability": 0.02}]
    unsure = [{"letter": "I", "probability": 0.41}, {"letter": "L", "probability": 0.39}]
    assert unsure_warning(confident) is None
    assert unsure_warning(unsure) == "unsure: I has only 41% probability, then L 39%"


# ------------------------------------------------------------------------- transparent images


def _letter_mask(letter: str = "A") -> Image.Image:
    return draw_letter(letter, random.Random(7)).point(lambda v: 255 if v < 128 else 0)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_a_light_letter_on_a_transparent_background_reads_like_one_on_black(
        tmp_path: Path, mode: str) -> None:
    mask = _letter_mask()
    clear = Image.new("RGBA", mask.size, (255, 255, 255, 0))
    clear.paste((255, 255, 255, 255), mask=mask)  # white letter, transparent elsewhere
    opaque = Image.new("L", mask.size, 0)
    opaque.paste(255, mask=mask)
    if mode == "P":  # palette: 0 = transparent (its colour black), 1 = white
        clear = mask.point(lambda v: 1 if v else 0).convert("P")
        clear.putpalette([0, 0, 0, 255, 255, 255])
        clear.save(tmp_path / "clear.png", transparency=0)
    else:
        clear.convert(mode).save(tmp_path / "clear.png")
    opaque.save(tmp_path / "opaque.png")
    seen = load_image(tmp_path / "clear.png", (32, 32))
    assert torch.equal(seen, load_image(tmp_path / "opaque.png", (32, 32)))
    assert seen.std() > 0.3  # the letter did not vanish into a white background


def test_a_dark_letter_on_a_transparent_background_still_goes_on_white(tmp_path: Path) -> None:
    mask = _letter_mask("K")
    clear = Image.new("RGBA", mask.size, (0, 0, 0, 0))
    clear.paste((10, 10, 10, 255), mask=mask)
    on_white = Image.new("L", mask.size, 255)
    on_white.paste(10, mask=mask)
    clear.save(tmp_path / "clear.png")
    on_white.save(tmp_path / "white.png")
    assert torch.equal(load_image(tmp_path / "clear.png", (32, 32)),
                       load_image(tmp_path / "white.png", (32, 32)))


# ---------------------------------------------------------------------------- contact sheets


def test_test_sheet_shows_the_test_images(model: Path, tmp_path: Path) -> None:
    from charrec.data.contact_sheet import sheet_size

    sheet = tmp_path / "sheet.png"
    result = invoke("test", "--model", model, "--sheet", sheet, "--sheet-n", "20", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sheet_png"] == str(sheet)
    with Image.open(sheet) as image:
        assert image.size == sheet_size(20, 96)


def test_prediction_sheet_puts_wrong_answers_first_in_red(tmp_path: Path) -> None:
    from charrec.data.contact_sheet import (
        ERROR_COLOUR,
        GAP,
        HEADER_HEIGHT,
        PredictedImage,
        prediction_sheet,
    )

    rng = random.Random(0)
    images = []
    for index, (true, predicted) in enumerate([("A", "A"), ("B", "E"), ("C", "C")]):
        path = tmp_path / f"{index}.png"
        draw_letter(true, rng).save(path)
        images.append(PredictedImage(str(path), predicted, 0.9, true))
    result = prediction_sheet(images, tmp_path / "sheet.png", "test", n=2)
    assert (result.shown, result.total) == (2, 3)
    with Image.open(result.path) as sheet:
        frame = sheet.convert("RGB").getpixel((GAP - 2, HEADER_HEIGHT + GAP + 20))
        second = sheet.convert("RGB").getpixel((GAP + 96 + GAP - 2, HEADER_HEIGHT + GAP + 20))
    assert frame == ERROR_COLOUR and second != ERROR_COLOUR  # the wrong B->E first, framed


def test_predict_sheet(model: Path, letters: list[Path], tmp_path: Path) -> None:
    result = invoke("predict", *letters, "--model", model, "--sheet", tmp_path / "p.png")
    assert result.exit_code == 0, result.output
    assert f"Contact sheet: {tmp_path / 'p.png'}" in result.stdout.replace("\n", "")
    assert (tmp_path / "p.png").stat().st_size > 1000
    assert CLASSES  # the classes the captions come from


def test_test_shows_its_steps_as_plain_lines_off_a_terminal(model: Path) -> None:
    text = invoke("test", "--model", model)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert any(line.startswith("Reading images from ") for line in lines)
    assert "Testing 52 images ..." in lines
    assert "Reading images" not in invoke("test", "--model", model, "--json").stdout


def test_summary_describes_the_bundled_model(bundled: Path) -> None:
    result = invoke("summary", "--model", "bundled", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_params"] == 32 * 32 * 32 + 32 + 32 * 26 + 26
