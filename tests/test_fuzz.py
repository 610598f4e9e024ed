"""Hostile files: mutations of real, valid files never give anything but one clear error.

Every file a user names — a checkpoint, an image, a YAML config, a dataset's label JSON — is
taken from a real valid one and damaged the ways files get damaged or forged: truncated, bits
flipped, bytes overwritten, a valid zip holding other content, pickles naming globals other than
plain data, a future format_version, tensors of the wrong shape or type. Each must load or fail
with the module's own error class (CharrecError subclass), and through the CLI with one line.

`EXAMPLES` per property: with 500, a failure that hits 1 file in 100 is missed with probability
0.99**500 < 1%. Hypothesis is derandomised (tests/conftest.py): the same files on every run.
"""

from __future__ import annotations

import functools
import io
import json
import pickle
import random
import zipfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from charrec.checkpoint import load_checkpoint, load_model, make_checkpoint
from charrec.config import load_train_yaml, make_config
from charrec.data.loading import load_splits
from charrec.data.preprocess import load_image
from charrec.errors import CheckpointError, ConfigError, DataError, ImageError
from charrec.nn.model import build_model
from tests.helpers import assert_one_line_error, draw_letter, invoke

EXAMPLES = 500
FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
fuzz = settings(max_examples=EXAMPLES, suppress_health_check=FIXTURE_OK)
NORM = (6, 5)


# ------------------------------------------------------------------------- valid originals


def checkpoint_dict(seed: int = 0) -> dict:
    config = make_config({"hidden": "8", "norm_size": "6,5", "act": "tanh"})
    torch.manual_seed(seed)
    metrics = {"best_val_accuracy": 0.5, "best_epoch": 1, "history": [{"epoch": 1}]}
    return make_checkpoint(config, build_model(config, 26).state_dict(), metrics)


def saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@functools.cache
def valid_checkpoint() -> bytes:
    return saved(checkpoint_dict())


@functools.cache
def valid_members() -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(valid_checkpoint())) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def damaged(original: bytes, edits: list[tuple[str, int, int, bytes]]) -> bytes:
    """Apply (kind, position, bit, bytes) edits: flip a bit, overwrite, cut, insert."""
    data = bytearray(original)
    for kind, position, bit, chunk in edits:
        position %= max(1, len(data))
        if kind == "flip" and data:
            data[position] ^= 1 << bit
        elif kind == "overwrite":
            data[position:position + len(chunk)] = chunk
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = chunk
    return bytes(data)


edits = st.lists(st.tuples(st.sampled_from(["flip", "flip", "overwrite", "truncate", "insert"]),
                           st.integers(0, 1 << 20), st.integers(0, 7),
                           st.binary(min_size=1, max_size=16)), min_size=1, max_size=6)


# ----------------------------------------------------------------------------- checkpoints


def loads_or_refuses(path: Path) -> str:
    """load_model either works (and the network runs) or raises CheckpointError naming the
    file; nothing else escapes."""
    try:
        model, config, _ = load_model(path)
    except CheckpointError as error:
        assert str(path) in str(error)
        event("refused")  # counted by --hypothesis-show-statistics
        return "refused"
    with torch.no_grad():
        assert model(torch.zeros(1, *config.norm_size)).shape == (1, 26)
    event("loaded")
    return "loaded"


@fuzz
@given(edits=edits)
def test_damaged_checkpoints_load_or_fail_clearly(tmp_path, edits):
    path = tmp_path / "damaged.pth"
    path.write_bytes(damaged(valid_checkpoint(), edits))
    loads_or_refuses(path)


@fuzz
@given(keep=st.integers(0, 10**6))
def test_truncated_checkpoints_are_refused(tmp_path, keep):
    data = valid_checkpoint()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:keep % len(data)])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_checkpoint(path)


@fuzz
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused(tmp_path, data):
    path = tmp_path / "random.pth"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="random.pth"):
        load_checkpoint(path)


plain = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@fuzz
@given(change=st.sampled_from(["replace", "drop", "add", "pickle"]), member=st.integers(0, 99),
       content=st.binary(max_size=256), value=plain)
def test_zips_with_other_content_load_or_fail_clearly(tmp_path, change, member, content, value):
    members = dict(valid_members())
    name = sorted(members)[member % len(members)]
    if change == "replace":
        members[name] = content
    elif change == "drop":
        del members[name]
    elif change == "add":
        members[f"archive/extra{member}"] = content
    else:  # data.pkl holding some other plain data
        members[next(n for n in members if n.endswith("data.pkl"))] = pickle.dumps(value, 2)
    path = tmp_path / "other.pth"
    path.write_bytes(rezip(members))
    loads_or_refuses(path)


GLOBALS = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
           ("subprocess", "Popen"), ("subprocess", "check_output"), ("shutil", "rmtree"),
           ("torch", "load"), ("torch.serialization", "load"), ("pathlib", "Path"),
           ("collections", "OrderedDict"), ("__main__", "Anything"), ("charrec.cli", "main"),
           ("numpy", "array"), ("pickle", "loads"), ("io", "open")]
identifier = st.from_regex(r"[a-z_][a-z0-9_]{0,10}(\.[a-z_][a-z0-9_]{0,10}){0,2}", fullmatch=True)


@fuzz
@given(target=st.sampled_from(GLOBALS) | st.tuples(identifier, identifier),
       container=st.sampled_from(["raw", "zip"]), protocol=st.sampled_from([0, 2]))
def test_pickles_naming_other_globals_are_refused_and_never_run(tmp_path, target, container,
                                                                protocol):
    marker = tmp_path / "ran"
    module, name = target
    argument = f"touch {marker}"
    if protocol == 0:
        payload = f"c{module}\n{name}\n(V{argument}\ntR.".encode()
    else:
        payload = (b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n"
                   + pickle.dumps(argument, 2)[2:-1] + b"\x85R.")
    members = dict(valid_members())
    members[next(n for n in members if n.endswith("data.pkl"))] = payload
    path = tmp_path / "forged.pth"
    path.write_bytes(payload if container == "raw" else rezip(members))
    with pytest.raises(CheckpointError, match="forged.pth"):
        load_model(path)
    assert not marker.exists()


@fuzz
@given(version=st.integers().filter(lambda v: v != 1) | st.floats() | st.text(max_size=5)
       | st.none() | st.booleans() | st.just(torch.ones(2)) | st.lists(st.integers(), max_size=3))
def test_other_format_versions_are_refused(tmp_path, version):
    path = tmp_path / "future.pth"
    path.write_bytes(saved({**checkpoint_dict(), "format_version": version}))
    with pytest.raises(CheckpointError, match="future.pth"):
        load_checkpoint(path)


tensors = st.builds(lambda shape, dtype: torch.zeros(shape, dtype=dtype),
                    st.lists(st.integers(0, 9), max_size=3),
                    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool,
                                     torch.float16, torch.uint8]))


@fuzz
@given(part=st.sampled_from(["state_dict", "classes", "config", "metrics", "whole"]),
       key=st.integers(0, 99), tensor=tensors, value=plain)
def test_wrong_shapes_and_types_inside_load_or_fail_clearly(tmp_path, part, key, tensor, value):
    checkpoint = checkpoint_dict()
    if part == "state_dict":
        name = sorted(checkpoint["state_dict"])[key % len(checkpoint["state_dict"])]
        checkpoint["state_dict"][name] = tensor if key % 3 else value
    elif part == "config":
        name = sorted(checkpoint["config"])[key % len(checkpoint["config"])]
        checkpoint["config"][name] = value if key % 2 else tensor
    elif part == "whole":
        checkpoint = {"format_version": 1, **(value if isinstance(value, dict) else {})}
    else:
        checkpoint[part] = value if key % 2 else tensor
    path = tmp_path / "odd.pth"
    path.write_bytes(saved(checkpoint))
    loads_or_refuses(path)


@settings(max_examples=100, suppress_health_check=FIXTURE_OK)
@given(edits=edits)
def test_damaged_checkpoints_through_the_cli_are_one_line(tmp_path, edits):
    path, image = tmp_path / "damaged.pth", tmp_path / "a.png"
    path.write_bytes(damaged(valid_checkpoint(), edits))
    draw_letter("A", random.Random(0)).save(image)
    result = invoke("predict", "--model", path, "--im-path", image)
    if result.exit_code != 0:
        assert_one_line_error(result, str(path))
    event("refused" if result.exit_code else "loaded")


# ---------------------------------------------------------------------------------- images


@functools.cache
def valid_image(format_name: str) -> bytes:

    buffer = io.BytesIO()
    draw_letter("R", random.Random(1)).convert("RGB").save(buffer, format=format_name)
    return buffer.getvalue()


@fuzz
@given(format_name=st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]), edits=edits)
def test_damaged_images_load_or_fail_clearly(tmp_path, format_name, edits):
    path = tmp_path / f"damaged.{format_name.lower()}"
    path.write_bytes(damaged(valid_image(format_name), edits))
    try:
        tensor = load_image(path, (32, 32))
    except ImageError as error:
        assert path.name in str(error)
        event("refused")
        return
    event("loaded")
    assert tensor.shape == (32, 32) and tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all() and -1 <= float(tensor.min()) <= float(tensor.max()) <= 1


# ------------------------------------------------------------------------------------ YAML

VALID_YAML = """\
# a train config
data_dir: data/character_classification
norm_size: 32,32
hidden: [256, 128]
act: relu
optim: adam
lr: 0.002
epochs: 30
batch_size: 64
augment: true
"""


@fuzz
@given(edits=edits)
def test_damaged_yaml_configs_load_or_fail_clearly(tmp_path, edits):
    path = tmp_path / "train.yaml"
    path.write_bytes(damaged(VALID_YAML.encode(), edits))
    try:
        config = make_config(load_train_yaml(path))
    except ConfigError:
        event("refused")
        return
    event("loaded")
    assert config.layers == len(config.hidden) + 1 and config.lr > 0


# ---------------------------------------------------------------------------- dataset JSON


@pytest.fixture(scope="module")
def small_course(tmp_path_factory) -> Path:
    """Six images in the course layout (4 train, 1 validation, 1 test): quick to decode."""
    root = tmp_path_factory.mktemp("fuzz") / "letters"
    (root / "images").mkdir(parents=True)
    rng = random.Random(2)
    splits = {"train": "ABCD", "validation": "E", "test": "F"}
    for split, letters in splits.items():
        for letter in letters:
            draw_letter(letter, rng).save(root / "images" / f"{letter}.png")
        labels = {f"{letter}.png": letter for letter in letters}
        (root / f"{split}.json").write_text(json.dumps(labels, indent=1))
    return root


@fuzz
@given(split=st.sampled_from(["train", "validation", "test"]), edits=edits)
def test_damaged_label_files_load_or_fail_clearly(small_course, split, edits):
    path = small_course / f"{split}.json"
    original = path.read_bytes()
    path.write_bytes(damaged(original, edits))
    try:
        data = load_splits(small_course, NORM)
    except DataError:
        event("refused")
        return
    finally:
        path.write_bytes(original)
    event("loaded")
    for letters in data.values():
        assert letters.images.shape[1:] == NORM and len(letters.labels) == len(letters.images)


def test_the_originals_are_valid(tmp_path, small_course):
    """Control: unmutated, every original loads (so the properties test damage, not junk)."""
    path = tmp_path / "valid.pth"
    path.write_bytes(valid_checkpoint())
    model, config, _ = load_model(path)
    assert model(torch.zeros(1, *config.norm_size)).shape == (1, 26)
    for format_name in ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"]:
        image = tmp_path / f"valid.{format_name.lower()}"
        image.write_bytes(valid_image(format_name))
        assert load_image(image, (32, 32)).shape == (32, 32)
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text(VALID_YAML)
    assert make_config(load_train_yaml(yaml_path)).hidden == (256, 128)
    assert len(load_splits(small_course, NORM)["train"]) > 0
    assert json.loads((small_course / "train.json").read_text())
    assert Image.open(io.BytesIO(valid_image("PNG"))).size == (32, 32)
