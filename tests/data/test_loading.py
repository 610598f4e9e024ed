"""Reading datasets (both layouts, splits, label errors) and preprocessing every image mode."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps

from charrec import CLASSES
from charrec.data.loading import (
    detect_layout,
    label_index,
    list_split,
    load_split,
    load_splits,
    split_stratified,
)
from charrec.data.preprocess import load_image
from charrec.errors import DataError, ImageError
from tests.helpers import draw_letter, preprocess

NORM_SIZE = (32, 32)

# ---------------------------------------------------------------------------- layouts


def test_layouts_are_detected(course_dataset: Path, folder_dataset: Path, tmp_path: Path) -> None:
    assert detect_layout(course_dataset) == "course"
    assert detect_layout(folder_dataset) == "folders"
    with pytest.raises(DataError, match="holds no dataset"):
        detect_layout(tmp_path)
    with pytest.raises(DataError, match="not found"):
        detect_layout(tmp_path / "missing")


def test_course_layout_reads_each_split(course_dataset: Path) -> None:
    data = load_splits(course_dataset, NORM_SIZE)
    assert {split: len(letters) for split, letters in data.items()} == {
        "train": 26 * 8, "validation": 26 * 2, "test": 26 * 2}
    train = data["train"]
    assert train.images.shape == (26 * 8, 32, 32) and train.images.dtype == torch.float32
    assert train.labels.dtype == torch.int64
    # lowercase labels map to the same class as uppercase ones
    assert Counter(train.labels.tolist()) == {index: 8 for index in range(26)}
    labels_json = json.loads((course_dataset / "train.json").read_text())
    for path, label in zip(train.paths, train.labels.tolist(), strict=True):
        assert labels_json[Path(path).name].upper() == CLASSES[label]


@pytest.mark.parametrize(("label", "index"), [("a", 0), ("A", 0), (" z ", 25), ("m", 12)])
def test_labels_are_case_insensitive(label: str, index: int) -> None:
    assert label_index(label) == index


@pytest.mark.parametrize("label", ["AB", "1", "", "é", 5, None])
def test_bad_labels_are_rejected(label: object) -> None:
    with pytest.raises(DataError, match="not a single letter"):
        label_index(label)


def _course(tmp_path: Path, train: object, n_images: int = 2) -> Path:
    root = tmp_path / "course"
    (root / "images").mkdir(parents=True)
    rng = random.Random(0)
    for index in range(n_images):
        draw_letter("A", rng).save(root / "images" / f"{index}.png")
    (root / "train.json").write_text(json.dumps(train))
    for split in ("validation", "test"):
        (root / f"{split}.json").write_text(json.dumps({"0.png": "a"}))
    return root


def test_bad_label_in_json_names_file_and_entry(tmp_path: Path) -> None:
    root = _course(tmp_path, {"0.png": "a", "1.png": "ab"})
    with pytest.raises(DataError) as error:
        load_split(root, "train", NORM_SIZE)
    assert "train.json" in str(error.value) and "'1.png'" in str(error.value)


def test_non_object_json_is_an_error(tmp_path: Path) -> None:
    root = _course(tmp_path, [["0.png", "a"]])
    with pytest.raises(DataError, match="expected a JSON object"):
        load_split(root, "train", NORM_SIZE)


def test_invalid_json_is_an_error(tmp_path: Path) -> None:
    root = _course(tmp_path, {})
    (root / "train.json").write_text("{'0.png': 'a'")
    with pytest.raises(DataError, match="not valid JSON"):
        load_split(root, "train", NORM_SIZE)


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    root = _course(tmp_path, {})
    with pytest.raises(DataError, match="train split .* is empty"):
        load_split(root, "train", NORM_SIZE)


def test_unknown_split_name(course_dataset: Path) -> None:
    with pytest.raises(DataError, match="unknown split"):
        list_split(course_dataset, "holdout")


def test_image_in_two_splits_is_an_error(tmp_path: Path) -> None:
    root = _course(tmp_path, {"0.png": "a", "1.png": "a"})
    with pytest.raises(DataError, match="appear in two splits"):
        load_splits(root, NORM_SIZE)


def test_unreadable_images_are_skipped_or_fatal_with_strict(tmp_path: Path) -> None:
    root = _course(tmp_path, {"0.png": "a", "1.png": "b", "2.png": "c"})
    (root / "images" / "2.png").write_bytes(b"not a png")
    data = load_split(root, "train", NORM_SIZE)
    assert len(data) == 2 and data.labels.tolist() == [0, 1]
    assert len(data.skipped) == 1 and data.skipped[0][0].endswith("2.png")
    with pytest.raises(DataError, match="could not be read"):
        load_split(root, "train", NORM_SIZE, strict=True)


# ---------------------------------------------------------------------- folder per class


def _empty_folder_dataset(root: Path, per_class: int = 20) -> Path:
    """Listing and splitting never decode, so empty files are enough (and fast)."""
    for letter in CLASSES:
        folder = root / (letter.lower() if letter in "AEIOU" else letter)
        folder.mkdir(parents=True)
        for index in range(per_class):
            (folder / f"{index:02d}.png").touch()
    (root / "B" / "notes.txt").write_text("not an image")
    (root / "not_a_letter").mkdir()
    (root / "not_a_letter" / "x.png").touch()
    return root


def test_folder_split_is_stratified_70_15_15_disjoint_and_complete(tmp_path: Path) -> None:
    root = _empty_folder_dataset(tmp_path / "letters")
    splits = {split: list_split(root, split, seed=3) for split in ("train", "validation", "test")}
    for split, expected in (("train", 14), ("validation", 3), ("test", 3)):
        assert Counter(index for _, index in splits[split]) == {i: expected for i in range(26)}
    paths = [{path for path, _ in items} for items in splits.values()]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    assert len(paths[0] | paths[1] | paths[2]) == 26 * 20
    assert all(path.suffix == ".png" and path.parent.name.upper() == CLASSES[index]
               for items in splits.values() for path, index in items)


def test_folder_split_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    root = _empty_folder_dataset(tmp_path / "letters")
    first = list_split(root, "validation", seed=3)
    assert list_split(root, "validation", seed=3) == first
    assert list_split(root, "validation", seed=4) != first


def test_whole_folder_is_every_image(tmp_path: Path) -> None:
    root = _empty_folder_dataset(tmp_path / "letters")
    items = list_split(root, "test", whole_folder=True)
    assert len(items) == 26 * 20
    assert Counter(index for _, index in items) == {index: 20 for index in range(26)}


def test_split_stratified_rounds_per_class() -> None:
    items = [(Path(f"{index}.png"), index % 2) for index in range(2 * 10)]
    splits = split_stratified(items, seed=0)
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [14, 4, 2]


def test_folder_dataset_loads(folder_dataset: Path) -> None:
    data = load_split(folder_dataset, "train", NORM_SIZE, whole_folder=True)
    assert len(data) == 26 * 4 and data.images.shape == (104, 32, 32)
    for path, label in zip(data.paths, data.labels.tolist(), strict=True):
        assert Path(path).parent.name.upper() == CLASSES[label]


# ----------------------------------------------------------------------------- preprocessing


def _letter_mask(size: int = 32) -> Image.Image:
    """255 where the letter is, 0 elsewhere (a clean two-level shape)."""
    letter = draw_letter("R", random.Random(5), size)
    return letter.point(lambda value: 255 if value < 128 else 0)


def _reference(tmp_path: Path) -> torch.Tensor:
    """A black letter on white, saved as 8-bit gray: what every mode below should look like."""
    path = tmp_path / "reference.png"
    ImageOps.invert(_letter_mask()).save(path)
    return load_image(path, NORM_SIZE)


def _as_mode(mode: str) -> tuple[Image.Image, str, dict]:
    """The black-on-white letter in `mode` (transparent modes: letter opaque, rest transparent,
    with black underneath so ignoring alpha would lose the letter)."""
    mask = _letter_mask()
    black_on_white = ImageOps.invert(mask)
    if mode in ("RGB", "L", "CMYK"):
        return black_on_white.convert(mode), "jpg" if mode == "CMYK" else "png", {}
    if mode == "RGBA":
        black = Image.new("RGB", mask.size, 0)
        return Image.merge("RGBA", (*black.split(), mask)), "png", {}
    if mode == "LA":
        return Image.merge("LA", (Image.new("L", mask.size, 0), mask)), "png", {}
    if mode == "P":
        return black_on_white.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE,
                                                      colors=4), "png", {}
    if mode == "P-transparent":
        image = mask.point(lambda value: 1 if value else 0).convert("P")
        image.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
        return image, "png", {"transparency": 0}
    if mode == "I;16":
        # a 12-bit sensor's range, all above 255: clipping to 8 bits would erase the letter
        pixels = (300 + numpy.asarray(black_on_white, dtype="<u2") // 255 * 3700).astype("<u2")
        return Image.frombytes("I;16", mask.size, pixels.tobytes()), "png", {}
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "P-transparent", "I;16", "CMYK"])
def test_every_image_mode_gives_the_same_letter(mode: str, tmp_path: Path) -> None:
    image, suffix, options = _as_mode(mode)
    path = tmp_path / f"letter.{suffix}"
    image.save(path, **options)
    with Image.open(path) as reread:
        assert reread.mode == mode.split("-")[0] or (mode == "I;16" and reread.mode.startswith("I"))
    tensor = load_image(path, NORM_SIZE)
    assert tensor.shape == NORM_SIZE and tensor.dtype == torch.float32
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    assert tensor.min() == -1.0 and tensor.max() == 1.0  # contrast stretched to the full range
    tolerance = 0.08 if suffix == "jpg" else 0.01
    assert (tensor - _reference(tmp_path)).abs().mean() < tolerance


def test_light_and_dark_letters_give_the_same_input(tmp_path: Path) -> None:
    ImageOps.invert(_letter_mask()).save(tmp_path / "dark_on_light.png")
    _letter_mask().save(tmp_path / "light_on_dark.png")
    dark = load_image(tmp_path / "dark_on_light.png", NORM_SIZE)
    light = load_image(tmp_path / "light_on_dark.png", NORM_SIZE)
    torch.testing.assert_close(dark, light)
    assert dark[0, 0] == -1.0  # background dark, letter light


def test_thin_dark_letter_running_into_the_border_is_inverted() -> None:
    # A tight crop of a handwritten L: its strokes lie along the left and bottom edges, so the
    # border ring holds more ink than the whole image does; the paper still decides.
    paper = Image.new("L", (32, 32), 200)
    draw = ImageDraw.Draw(paper)
    draw.line([(1, 0), (1, 30), (31, 30)], fill=60, width=2)
    tensor = preprocess(paper, NORM_SIZE)
    assert tensor[10, 20] == -1.0  # paper dark
    assert tensor[15, 1] == 1.0  # ink light


def test_exif_rotated_jpeg_is_turned_upright(tmp_path: Path) -> None:
    upright = Image.new("L", (24, 48), 255)
    upright.paste(0, (4, 4, 20, 16))  # a dark block at the top
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    # stored sideways (block on the left); the EXIF tag says how to turn it back
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.jpg", exif=exif,
                                                       quality=95)
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.jpg", quality=95)
    upright.save(tmp_path / "upright.png")
    loaded = load_image(tmp_path / "rotated.jpg", NORM_SIZE)
    expected = load_image(tmp_path / "upright.png", NORM_SIZE)
    sideways = load_image(tmp_path / "sideways.jpg", NORM_SIZE)
    assert (loaded - expected).abs().mean() < 0.05
    assert (sideways - expected).abs().mean() > 0.3
    assert loaded[:16].mean() > loaded[16:].mean()  # the bright (inverted) block is on top


@pytest.mark.parametrize("size", [(1, 1), (20000, 20), (20, 20000), (3, 500)])
def test_extreme_sizes(size: tuple[int, int], tmp_path: Path) -> None:
    image = Image.new("L", size, 200)
    image.paste(30, (0, 0, max(1, size[0] // 2), max(1, size[1] // 2)))
    image.save(tmp_path / "odd.png")
    tensor = load_image(tmp_path / "odd.png", (28, 20))
    assert tensor.shape == (28, 20) and tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all() and tensor.min() >= -1 and tensor.max() <= 1


def test_uniform_image_is_finite(tmp_path: Path) -> None:
    tensor = preprocess(Image.new("RGB", (40, 40), (90, 90, 90)), NORM_SIZE)
    assert torch.isfinite(tensor).all() and tensor.abs().max() <= 1


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file"), (b"GIF89a not really", "cannot|not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot|not an image"),
])
def test_corrupt_images_raise_image_error(content: bytes, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        load_image(path, NORM_SIZE)


def test_truncated_png_raises_image_error(tmp_path: Path) -> None:
    path = tmp_path / "whole.png"
    Image.effect_noise((64, 64), 60).save(path)
    data = path.read_bytes()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="half.png"):
        load_image(tmp_path / "half.png", NORM_SIZE)


def test_missing_image_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png", NORM_SIZE)
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path, NORM_SIZE)


def test_small_files_decode_in_one_thread_to_the_same_tensors(course_dataset: Path,
                                                              monkeypatch) -> None:
    from charrec.data import loading

    paths = [path for path, _ in list_split(course_dataset, "train")]
    assert loading._small_files(paths)  # the drawn letters are small files
    one_thread, ok, _ = loading.decode_images(paths, NORM_SIZE, workers=4)
    monkeypatch.setattr(loading, "SMALL_FILE_BYTES", 0)  # now they count as big: threads
    assert not loading._small_files(paths)
    threads, ok_threads, _ = loading.decode_images(paths, NORM_SIZE, workers=4)
    assert torch.equal(one_thread, threads) and ok == ok_threads and all(ok)
    assert len(one_thread) == len(paths)
