"""The built-in synthetic letters: layout, determinism, atomicity and the glyph checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from charrec.data.builtin import synth
from charrec.data.builtin.fonts import (
    LOWERCASE,
    UPPERCASE,
    default_font_dirs,
    drawn_letters,
    find_font_faces,
)
from charrec.errors import CharrecError, DataError

MATPLOTLIB_FONTS = default_font_dirs()[0]
SPLIT_FILES = ("train.json", "validation.json", "test.json")


@pytest.fixture(autouse=True)
def only_matplotlib_fonts(monkeypatch):
    """Use matplotlib's bundled fonts only: fast and the same on every machine."""
    monkeypatch.setenv("CHARREC_FONT_DIRS", str(MATPLOTLIB_FONTS))


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and path.name != "manifest.json"}


def test_layout_is_a_valid_course_dataset(tmp_path):
    out = tmp_path / "letters"
    manifest = synth.generate_dataset(out, per_class=10, seed=1, workers=1)
    splits = {name: json.loads((out / name).read_text()) for name in SPLIT_FILES}
    names = [set(mapping) for mapping in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    images = {path.name for path in (out / "images").iterdir()}
    assert set().union(*names) == images and len(images) == 10 * 26
    for split, mapping in splits.items():
        assert set(mapping.values()) == set(UPPERCASE), split  # every class in every split
        assert manifest["counts"][split.removesuffix(".json")] == len(mapping)
    assert manifest["counts_per_class"]["train"]["A"] == 8
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["seed"] == 1 and on_disk["per_class"] == 10 and on_disk["fonts"]
    with Image.open(out / "images" / sorted(images)[0]) as image:
        assert image.size == (32, 32) and image.mode == "RGB"


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_SIZE", 40)  # several chunks, so two workers share them
    synth.generate_dataset(tmp_path / "one", per_class=4, seed=7, workers=1)
    synth.generate_dataset(tmp_path / "two", per_class=4, seed=7, workers=2)
    synth.generate_dataset(tmp_path / "other", per_class=4, seed=8, workers=1)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one == two
    other = _files(tmp_path / "other")
    assert one.keys() == other.keys()
    assert sum(one[name] != other[name] for name in one) > len(one) * 0.9


def test_rendered_splits_equal_the_splits_read_back_from_the_files(tmp_path, monkeypatch):
    """Training takes a fresh dataset's pixels from the renderer instead of decoding the files
    it has just written: the tensors, labels, order and paths must be exactly what decoding
    gives, whichever worker rendered which chunk."""
    import torch

    from charrec.data.loading import load_splits

    monkeypatch.setattr(synth, "CHUNK_SIZE", 40)  # chunks finish out of order in two workers
    out = tmp_path / "letters"
    rendered = synth.render_dataset(out, per_class=5, seed=3, workers=2)
    in_memory, decoded = rendered.splits(out), load_splits(out, (32, 32))
    assert in_memory.keys() == decoded.keys()
    for split, letters in decoded.items():
        assert torch.equal(in_memory[split].images, letters.images), split
        assert torch.equal(in_memory[split].labels, letters.labels), split
        assert in_memory[split].paths == letters.paths, split
        assert in_memory[split].images.dtype == torch.float32 and not in_memory[split].skipped


def test_to_gray_is_pillows_grayscale_conversion():
    import numpy as np

    levels = np.arange(256, dtype=np.uint8)
    rgb = np.stack(np.meshgrid(levels, levels, levels[::7], indexing="ij"), axis=-1)
    rgb = rgb.reshape(-1, 256, 3)
    assert np.array_equal(synth.to_gray(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_norm_size_sets_the_image_size(tmp_path):
    synth.generate_dataset(tmp_path / "small", per_class=3, norm_size=(20, 24), workers=1)
    with Image.open(next((tmp_path / "small" / "images").iterdir())) as image:
        assert image.size == (24, 20)


def test_refuses_a_non_empty_out_dir_and_leaves_it_alone(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        synth.generate_dataset(out, per_class=3, workers=1)
    assert [path.name for path in out.iterdir()] == ["keep.txt"]


def test_an_empty_out_dir_is_filled(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    synth.generate_dataset(out, per_class=3, workers=1)
    assert (out / "train.json").exists()


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_run_leaves_no_half_dataset(tmp_path, monkeypatch, workers):
    monkeypatch.setattr(synth, "CHUNK_SIZE", 10)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synth.generate_dataset(tmp_path / "letters", per_class=6, workers=workers,
                               progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_progress_reaches_the_total(tmp_path):
    calls = []
    synth.generate_dataset(tmp_path / "letters", per_class=3, workers=1,
                           progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (78, 78) and all(done <= total for done, total in calls)


def test_bad_sizes_are_user_errors(tmp_path):
    with pytest.raises(CharrecError, match="per-class"):
        synth.generate_dataset(tmp_path / "letters", per_class=2)
    with pytest.raises(CharrecError, match="norm-size"):
        synth.generate_dataset(tmp_path / "letters", per_class=3, norm_size=(2, 32))
    assert list(tmp_path.iterdir()) == []


def test_no_fonts_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARREC_FONT_DIRS", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="fonts"):
        synth.generate_dataset(tmp_path / "letters", per_class=3)


def _uppercase_only_font(directory: Path) -> Path:
    """A copy of DejaVu Sans with only A-Z (and .notdef) left in it."""
    from fontTools import subset

    options = subset.Options()
    options.notdef_outline = True
    font = subset.load_font(str(MATPLOTLIB_FONTS / "DejaVuSans.ttf"), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=UPPERCASE)
    subsetter.subset(font)
    for record in font["name"].names:
        if record.nameID in (1, 4, 16):  # family, full name, typographic family
            record.string = "Uppercase Only"
    path = directory / "UppercaseOnly.ttf"
    font.save(str(path))
    return path


def test_missing_glyphs_are_detected(tmp_path):
    from PIL import ImageFont

    path = _uppercase_only_font(tmp_path)
    assert drawn_letters(ImageFont.truetype(str(path), 24)) == UPPERCASE  # lowercase: tofu
    full = ImageFont.truetype(str(MATPLOTLIB_FONTS / "DejaVuSans.ttf"), 24)
    assert drawn_letters(full) == UPPERCASE + LOWERCASE
    blank = ImageFont.truetype(str(MATPLOTLIB_FONTS / "DejaVuSansDisplay.ttf"), 24)
    assert drawn_letters(blank) == ""  # draws nothing for letters


def test_find_fonts_checks_glyphs_and_takes_extra_dirs(tmp_path):
    fonts = find_fonts()
    names = {path.name for path in fonts}
    assert "DejaVuSans.ttf" in names
    assert "DejaVuSansDisplay.ttf" not in names  # no letters in it
    assert not any(name.startswith(("cmex", "LastResort", "STIXSiz")) for name in names)
    extra = _uppercase_only_font(tmp_path)
    assert extra in find_fonts([tmp_path])


def test_uppercase_only_font_still_renders_lowercase_classes(tmp_path, monkeypatch):
    _uppercase_only_font(tmp_path)
    monkeypatch.setenv("CHARREC_FONT_DIRS", str(tmp_path))
    manifest = synth.generate_dataset(tmp_path / "letters", per_class=3, workers=1)
    assert manifest["font_families"] == 1


def test_every_letter_has_a_pen_drawn_form():
    import numpy as np

    from charrec.data.builtin.fonts import LETTERS
    from charrec.data.builtin.strokes import STROKES, stroke_glyph

    assert set(STROKES) == set(LETTERS)
    for letter in LETTERS:
        first, top = stroke_glyph(np.random.default_rng([0, ord(letter)]), letter)
        again, _ = stroke_glyph(np.random.default_rng([0, ord(letter)]), letter)
        assert first.dtype == np.uint8 and first.max() == 255 and min(first.shape) >= 3
        assert np.array_equal(first, again)  # the same generator draws the same letter
        if letter in UPPERCASE:
            assert abs(top) < first.shape[0] * 0.3  # capitals start near the cap line


def test_a_chunk_renders_the_same_whatever_was_rendered_before_it():
    """Workers render chunks in any order and keep caches between them (glyphs, grids,
    matrices): what one chunk leaves behind must not change the next one."""
    import numpy as np

    from charrec.data.builtin import fonts

    fonts.use_faces(fonts.find_font_faces())
    alone = synth.render_letters(40, 80, 3, (32, 32))
    synth.render_letters(0, 40, 3, (32, 32))
    synth.render_letters(80, 160, 5, (32, 32))
    after_others = synth.render_letters(40, 80, 3, (32, 32))
    assert np.array_equal(alone, after_others)


def test_images_are_colour_letters_of_every_class_in_both_looks():
    import numpy as np

    from charrec.data.builtin import fonts

    fonts.use_faces(fonts.find_font_faces())
    images = synth.render_letters(0, 104, 0, (32, 32))
    assert images.shape == (104, 32, 32, 3) and images.dtype == np.uint8
    contrast = images.reshape(104, -1).max(axis=1) - images.reshape(104, -1).min(axis=1)
    assert (contrast >= 30).mean() > 0.9  # something is drawn on nearly every image
    rngs = [np.random.default_rng([0, index]) for index in range(104)]
    handwritten = sum(rng.random() < synth.HANDWRITING_PROBABILITY for rng in rngs)
    assert 30 <= handwritten <= 74  # the half-handwritten mix


def test_png_files_are_written_exactly():
    import io

    import numpy as np

    pixels = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)
    with Image.open(io.BytesIO(synth.png_bytes(pixels))) as image:
        assert image.mode == "RGB" and image.size == (24, 20)
        assert np.array_equal(np.asarray(image), pixels)


def find_fonts(extra_dirs=()) -> list[Path]:
    """Font files with at least one usable face (after the glyph checks)."""
    return sorted({Path(face.path) for face in find_font_faces(extra_dirs)})
