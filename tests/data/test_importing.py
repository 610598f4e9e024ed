"""`charrec data import / show / stats`: importing folder trees and EMNIST IDX files into the
course layout, contact sheets, and per-split counts."""

from __future__ import annotations

import gzip
import json
import random
import struct
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from charrec import CLASSES
from charrec.cli import app
from charrec.data.contact_sheet import CAPTION_HEIGHT, GAP, HEADER_HEIGHT, grid_shape, sheet_size
from charrec.data.emnist import find_idx_pairs
from charrec.data.importing import import_dataset
from charrec.data.loading import SPLITS, load_split, load_splits
from charrec.data.preprocess import load_image
from charrec.errors import DataError
from tests.helpers import draw_letter, make_course_dataset, make_folder_dataset

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def ok(*args: str):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def fails(*args: str) -> str:
    """Run a command that must fail with one clean error line; return that output."""
    result = run(*args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Error:" in result.output and "Traceback" not in result.output
    return " ".join(result.output.split())


def read_splits(root: Path) -> dict[str, dict[str, str]]:
    return {split: json.loads((root / f"{split}.json").read_text()) for split in SPLITS}


# ------------------------------------------------------------------------- folder-per-class import


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("tree") / "letters", per_class=10)


def test_import_folder_tree_writes_a_stratified_course_layout(tree, tmp_path):
    out = tmp_path / "imported"
    result = ok("data", "import", tree, "--out", out, "--seed", "3")
    assert "Imported 260 images" in result.output
    splits = read_splits(out)
    names = [set(entries) for entries in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert set().union(*names) == {path.name for path in (out / "images").iterdir()}
    for split, expected in zip(SPLITS, (7, 2, 1), strict=True):  # 10 per letter -> 7/1.5/1.5
        per_letter = [sum(label.upper() == letter for label in splits[split].values())
                      for letter in CLASSES]
        assert per_letter == [expected] * 26, split
    # labels keep the folder name (a/ or A/); files are byte-identical copies of the originals
    sources = json.loads((out / "sources.json").read_text())
    assert sources["kind"] == "folders" and sources["seed"] == 3
    for name, origin in sources["files"].items():
        label = next(entries[name] for entries in splits.values() if name in entries)
        assert Path(origin).parent.name == label
        assert (out / "images" / name).read_bytes() == Path(origin).read_bytes()
    probe = tmp_path / "probe"  # the dataset gets ordinary folder permissions, not a temp dir's
    probe.mkdir()
    assert out.stat().st_mode == probe.stat().st_mode
    # charrec's loader reads it
    data = load_splits(out, (32, 32))
    assert [len(data[split]) for split in SPLITS] == [182, 52, 26]


def test_import_is_deterministic_for_a_seed(tree, tmp_path):
    import_dataset(tree, tmp_path / "one", seed=5)
    import_dataset(tree, tmp_path / "two", seed=5)
    import_dataset(tree, tmp_path / "three", seed=6)
    assert read_splits(tmp_path / "one") == read_splits(tmp_path / "two")
    assert read_splits(tmp_path / "one")["train"] != read_splits(tmp_path / "three")["train"]


def test_all_test_puts_every_image_in_test_json(tree, tmp_path):
    out = tmp_path / "realset"
    ok("data", "import", tree, "--out", out, "--all-test")
    splits = read_splits(out)
    assert splits["train"] == {} and splits["validation"] == {}
    assert len(splits["test"]) == 260
    stats = json.loads(ok("data", "stats", "--data-dir", out, "--json").stdout)
    assert [stats["splits"][split]["total"] for split in SPLITS] == [0, 0, 260]
    assert set(stats["splits"]["test"]["per_class"].values()) == {10}


def test_import_refuses_a_non_empty_destination_and_leaves_no_temp_folder(tree, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "is not empty" in fails("data", "import", tree, "--out", out)
    assert [path.name for path in out.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    ok("data", "import", tree, "--out", empty)  # an existing empty folder is fine
    assert (empty / "test.json").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "taken"]


def test_failed_import_leaves_nothing_behind(tmp_path):
    source = tmp_path / "source"
    (source / "A").mkdir(parents=True)
    (source / "A" / "broken.png").write_bytes(b"not a png")
    message = fails("data", "import", source, "--out", tmp_path / "out")
    assert "none of the 1 images" in message and "broken.png" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["source"]


def test_unreadable_images_are_skipped_and_listed(tree, tmp_path):
    source = tmp_path / "source"
    make_folder_dataset(source, per_class=2)
    (source / "A" / "zz_broken.png").write_bytes(b"")  # make_folder_dataset: A/, b/, C/, ...
    result = ok("data", "import", source, "--out", tmp_path / "out", "--all-test")
    assert "skipped 1 unreadable" in result.output
    sources = json.loads((tmp_path / "out" / "sources.json").read_text())
    assert [Path(entry["origin"]).name for entry in sources["skipped"]] == ["zz_broken.png"]
    assert len(read_splits(tmp_path / "out")["test"]) == 52


@pytest.mark.parametrize(("setup", "expected"), [
    (lambda root: None, "no such file or folder"),
    (lambda root: (root / "misc").mkdir(parents=True), "holds no folder per letter"),
    (lambda root: (root / "A").mkdir(parents=True), "hold no images"),
])
def test_import_errors_for_bad_sources(tmp_path, setup, expected):
    source = tmp_path / "source"
    setup(source)
    assert expected in fails("data", "import", source, "--out", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_norm_size_stores_exactly_what_the_network_sees(tree, tmp_path):
    out = tmp_path / "small"
    ok("data", "import", tree, "--out", out, "--norm-size", "16,24", "--all-test")
    sources = json.loads((out / "sources.json").read_text())
    for name, origin in list(sources["files"].items())[:20]:
        stored = Image.open(out / "images" / name)
        assert (stored.format, stored.mode, stored.size) == ("PNG", "L", (24, 16))
        assert torch.equal(load_image(out / "images" / name, (16, 24)),
                           load_image(origin, (16, 24)))


# ------------------------------------------------------------------------------------ EMNIST IDX


def upright_glyph(label: int, variant: int) -> list[list[int]]:
    """A 28x28 'Γ' (bar along the top, stem down the left), white on black, with a dot in the
    bottom right whose column encodes label and variant: asymmetric under transposition."""
    pixels = [[0] * 28 for _ in range(28)]
    for column in range(4, 20):
        pixels[4][column] = 255
    for row in range(4, 24):
        pixels[row][4] = 255
    pixels[26][(label + variant) % 20 + 6] = 200
    return pixels


def write_idx(path: Path, magic: bytes, dims: tuple[int, ...], payload: bytes) -> None:
    data = magic + struct.pack(f">{len(dims)}I", *dims) + payload
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_emnist(folder: Path, stem: str, labels: list[int], gz: bool,
                 images_dims: tuple[int, int, int] | None = None) -> list[list[list[int]]]:
    """EMNIST-style pair: images stored transposed, as EMNIST does. Returns the upright images."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    upright = [upright_glyph(label, index) for index, label in enumerate(labels)]
    stored = bytes(value for image in upright for column in range(28)
                   for value in (image[row][column] for row in range(28)))
    write_idx(folder / f"{stem}-images-idx3-ubyte{suffix}", bytes((0, 0, 8, 3)),
              images_dims or (len(labels), 28, 28), stored)
    write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", bytes((0, 0, 8, 1)), (len(labels),),
              bytes(labels))
    return upright


def test_emnist_import_reads_labels_and_turns_images_upright(tmp_path):
    source = tmp_path / "emnist"
    rng = random.Random(0)
    train_labels = [label for label in range(1, 27) for _ in range(4)]
    rng.shuffle(train_labels)
    test_labels = list(range(1, 27))
    expected = {
        "emnist-letters-train-images-idx3-ubyte.gz": (train_labels, write_emnist(
            source, "emnist-letters-train", train_labels, gz=True)),
        "emnist-letters-test-images-idx3-ubyte": (test_labels, write_emnist(
            source, "emnist-letters-test", test_labels, gz=False)),
    }
    write_emnist(source, "emnist-digits-train", [0, 1, 2], gz=True)  # other splits are ignored
    out = tmp_path / "out"
    result = ok("data", "import", source, "--out", out, "--seed", "1")
    assert "Imported 130 images (emnist-idx)" in result.output
    splits = read_splits(out)
    labels = {name: label for entries in splits.values() for name, label in entries.items()}
    sources = json.loads((out / "sources.json").read_text())
    assert len(labels) == len(sources["files"]) == 130
    for name, origin in sources["files"].items():
        file_name, position = origin.rsplit("#", 1)
        label_numbers, images = expected[file_name]
        assert labels[name] == CLASSES[label_numbers[int(position)] - 1]
        image = Image.open(out / "images" / name)
        assert image.mode == "L" and image.size == (28, 28)
        rows = [list(image.tobytes()[row * 28:(row + 1) * 28]) for row in range(28)]
        assert rows == images[int(position)]
    per_letter = [sum(label == letter for label in splits["train"].values())
                  for letter in CLASSES]
    assert per_letter == [4] * 26  # 5 per letter: 70% -> 4 (round(3.5))


def test_emnist_images_file_can_be_given_directly(tmp_path):
    write_emnist(tmp_path / "src", "emnist-letters-test", [1, 2, 3], gz=False)
    out = tmp_path / "out"
    ok("data", "import", tmp_path / "src" / "emnist-letters-test-images-idx3-ubyte",
       "--out", out, "--all-test")
    assert sorted(read_splits(out)["test"].values()) == ["A", "B", "C"]


def test_find_idx_pairs_counts_a_plain_and_gz_copy_once(tmp_path):
    write_emnist(tmp_path, "emnist-letters-test", [1, 2], gz=False)
    write_emnist(tmp_path, "emnist-letters-test", [1, 2], gz=True)
    pairs = find_idx_pairs(tmp_path)
    assert [(images.name, labels.name) for images, labels in pairs] == [
        ("emnist-letters-test-images-idx3-ubyte", "emnist-letters-test-labels-idx1-ubyte")]


def _bad_magic(folder: Path) -> None:
    write_emnist(folder, "x", [1, 2], gz=False)
    labels = folder / "x-labels-idx1-ubyte"
    labels.write_bytes(bytes((0, 0, 8, 3)) + labels.read_bytes()[4:])


def _size_mismatch(folder: Path) -> None:
    write_emnist(folder, "x", [1, 2, 3], gz=True)
    write_idx(folder / "x-labels-idx1-ubyte.gz", bytes((0, 0, 8, 1)), (2,), bytes((1, 2)))


def _truncated(folder: Path) -> None:
    write_emnist(folder, "x", [1, 2], gz=False, images_dims=(3, 28, 28))


@pytest.mark.parametrize(("setup", "expected"), [
    (_bad_magic, "not an IDX file of 1-D unsigned bytes (magic bytes 00 00 08 03"),
    (_size_mismatch, "holds 3 images but x-labels-idx1-ubyte.gz holds 2 labels"),
    (_truncated, "the IDX header says 3x28x28 = 2352 bytes of data but the file holds 1568"),
    (lambda folder: write_emnist(folder, "x", [0, 5, 27], gz=False),
     "labels must be 1..26 (EMNIST letters: 1 = A ... 26 = Z) but it holds 0, 27"),
    (lambda folder: (write_emnist(folder, "x", [1], gz=False),
                     (folder / "x-labels-idx1-ubyte").unlink()), "no labels file next to it"),
])
def test_emnist_errors(tmp_path, setup, expected):
    setup(tmp_path / "src")
    assert expected in fails("data", "import", tmp_path / "src", "--out", tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["src"]


def test_import_library_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        import_dataset(tmp_path / "missing", tmp_path / "out")


# ----------------------------------------------------------------------------------- data show


def test_sheet_layout_is_a_square_grid():
    assert grid_shape(64) == (8, 8) and grid_shape(10) == (4, 3) and grid_shape(1) == (1, 1)
    assert sheet_size(10, 40) == (4 * 40 + 5 * GAP, HEADER_HEIGHT + 3 * (40 + CAPTION_HEIGHT)
                                  + 4 * GAP)


def test_show_writes_a_png_of_the_expected_size_next_to_the_data(tmp_path):
    data_dir = make_course_dataset(tmp_path / "course", per_class=4)
    result = ok("data", "show", "--data-dir", data_dir, "--n", "10", "--tile", "40")
    assert "10 of 104 images" in result.output
    with Image.open(data_dir / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.size == sheet_size(10, 40)
    ok("data", "show", "--data-dir", data_dir, "--split", "validation", "--n", "500",
       "--out", tmp_path / "all.png")  # more than there are: all of them
    with Image.open(tmp_path / "all.png") as sheet:
        assert sheet.size == sheet_size(26, 96)


def test_show_preprocessed_tiles_are_the_network_input(tmp_path):
    source = tmp_path / "tree"
    rng = random.Random(2)
    for letter in "QR":
        (source / letter).mkdir(parents=True)
        draw_letter(letter, rng, size=50).save(source / letter / "one.png")
    out = tmp_path / "sheet.png"
    ok("data", "show", "--data-dir", source, "--preprocessed", "--tile", "64",
       "--norm-size", "32,32", "--out", out)
    sheet = Image.open(out).convert("L")
    for column, letter in enumerate("QR"):  # sorted by letter, left to right
        values = load_image(source / letter / "one.png", (32, 32))
        pixels = ((values + 1) * 127.5).round().to(torch.uint8)
        expected = pixels.repeat_interleave(2, 0).repeat_interleave(2, 1)
        left, top = GAP + column * (64 + GAP), HEADER_HEIGHT + GAP
        tile = sheet.crop((left, top, left + 64, top + 64))
        shown = torch.tensor(list(tile.tobytes()), dtype=torch.uint8).view(64, 64)
        assert torch.equal(shown, expected), letter


def test_show_marks_unreadable_images_and_works_on_all_test_imports(tree, tmp_path):
    out = tmp_path / "realset"
    import_dataset(tree, out, all_test=True)
    first = sorted((out / "images").iterdir())[0]
    first.write_bytes(b"broken")
    result = ok("data", "show", "--data-dir", out, "--n", "300", "--preprocessed")
    assert "1 unreadable images" in result.output and first.name in " ".join(result.output.split())
    assert (out / "contact_sheet_preprocessed.png").is_file()


def test_show_errors_are_one_line(tmp_path):
    assert "data folder not found" in fails("data", "show", "--data-dir", tmp_path / "nope")
    data_dir = make_course_dataset(tmp_path / "course", per_class=2)
    assert "unknown split" in fails("data", "show", "--data-dir", data_dir, "--split", "dev")


# ---------------------------------------------------------------------------------- data stats


def test_stats_counts_per_split_and_letter(course_dataset, tree):
    stats = json.loads(ok("data", "stats", "--data-dir", course_dataset, "--json").stdout)
    assert stats["layout"] == "course"
    # make_course_dataset: 12 per letter, positions 0-7 train, 8-9 validation, 10-11 test
    for split, expected in zip(SPLITS, (8, 2, 2), strict=True):
        assert set(stats["splits"][split]["per_class"].values()) == {expected}
    table = ok("data", "stats", "--data-dir", course_dataset).output
    assert "total" in table and "208" in table
    folders = json.loads(ok("data", "stats", "--data-dir", tree, "--json", "--seed", "4").stdout)
    assert folders["layout"] == "folders"
    assert [folders["splits"][split]["total"] for split in SPLITS] == [182, 52, 26]


# ---------------------------------------------------------------------------- round trip: test


def test_charrec_test_on_an_imported_set_matches_the_original_tree(course_dataset, tree,
                                                                   tmp_path):
    model = tmp_path / "model.pth"
    ok("train", "--data-dir", course_dataset, "--epochs", "2", "--hidden", "32", "--out", model)
    imported = tmp_path / "realset"
    ok("data", "import", tree, "--out", imported, "--all-test")
    on_import = json.loads(ok("test", "--model", model, "--data-dir", imported, "--json").stdout)
    on_tree = json.loads(ok("test", "--model", model, "--data-dir", tree, "--json").stdout)
    assert on_import["n_images"] == on_tree["n_images"] == 260
    assert on_import["accuracy"] == on_tree["accuracy"]
    assert on_import["per_class"] == on_tree["per_class"]
    assert len(load_split(imported, "test", (32, 32))) == 260
