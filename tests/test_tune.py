"""Fine-tuning (`charrec train --from`): the parent's network and weights are the start, its
architecture cannot change, tuning defaults fill what the user leaves unset, small and partial
data train, the checkpoint records its parent (shown by `test` and `predict`), sweeps accept
`from:`, and every bad input is one clear line that overwrites nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from charrec import CLASSES
from charrec.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from charrec.config import TUNING_DEFAULTS, make_config
from charrec.data.batches import Rehearsal, training_batches
from charrec.data.loading import load_tuning_splits
from charrec.errors import CheckpointError, ConfigError, DataError
from charrec.nn.model import build_model
from charrec.train import evaluate, run
from charrec.tune import load_parent, trainable_parameters, with_parent
from tests.helpers import assert_one_line_error, invoke, make_folder_dataset

PARENT_OPTIONS = {"hidden": "16", "norm_size": "16,16", "epochs": 3, "batch_size": 16,
                  "lr": 3e-3, "seed": 0, "augment": False, "device": "cpu"}


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A small MLP trained for a few epochs on drawn letters (16x16, one hidden layer of 16)."""
    root = tmp_path_factory.mktemp("parent")
    data = make_folder_dataset(root / "letters", per_class=6, seed=3)
    config = make_config({**PARENT_OPTIONS, "data_dir": str(data),
                          "out": str(root / "parent.pth")})
    run(config)
    return root / "parent.pth"


@pytest.fixture(scope="module")
def user_letters(tmp_path_factory) -> Path:
    """A user's letters: 3 images per letter, of 20 letters only (U..Z missing)."""
    root = make_folder_dataset(tmp_path_factory.mktemp("user") / "mine", per_class=3, seed=11)
    for letter in "UVWXYZ":
        shutil.rmtree(next(root.glob(f"[{letter}{letter.lower()}]")))
    return root


def _tune(parent: Path, data: Path, out: Path, **options):
    values = {"from": str(parent), "data_dir": str(data), "out": str(out), "epochs": 2,
              "rehearsal": 0, "device": "cpu", **options}
    return run(make_config(values))


# ------------------------------------------------------------------------------ config


def test_from_fills_tuning_defaults_and_user_options_win() -> None:
    config = make_config({"from": "bundled", "lr": "0.01"})
    assert config.from_model == "bundled" and config.lr == 0.01
    for name, value in TUNING_DEFAULTS.items():
        if name != "lr":
            assert getattr(config, name) == value, name
    assert make_config({}).keep_epoch == "best" and make_config({}).rehearsal == 0


@pytest.mark.parametrize("option", ["arch", "hidden", "norm-size", "conv"])
def test_from_refuses_architecture_options(option: str) -> None:
    value = {"arch": "mlp", "hidden": "64", "norm-size": "28,28", "conv": "3x3x8"}[option]
    with pytest.raises(ConfigError, match=f"--from takes the network.*--{option}"):
        make_config({"from": "bundled", option: value})


@pytest.mark.parametrize("option", ["rehearsal", "train_layers", "blend"])
def test_tuning_options_need_from(option: str) -> None:
    flag = option.replace("_", "-")
    with pytest.raises(ConfigError, match=f"--{flag} .*--from"):
        make_config({option: 1 if option == "train_layers" else 0.5})
    make_config({option: "1" if option == "blend" else "0"})  # the value that turns it off


def test_parent_gives_the_architecture(parent: Path) -> None:
    config = with_parent(make_config({"from": str(parent)}))
    assert (config.arch, config.hidden, config.norm_size) == ("mlp", (16,), (16, 16))
    assert config.lr == TUNING_DEFAULTS["lr"]  # the parent's training options are not taken
    assert with_parent(make_config({})) == make_config({})


# ------------------------------------------------------------------------------ training


def test_tuning_starts_from_the_parents_weights_and_records_it(parent, user_letters,
                                                                tmp_path) -> None:
    records: list[dict] = []
    config = make_config({"from": str(parent), "data_dir": str(user_letters), "epochs": 2,
                          "rehearsal": 0, "device": "cpu", "out": str(tmp_path / "t.pth")})
    from charrec.train import Callbacks

    result = run(config, Callbacks(on_parent=records.append))
    parent_model = build_model(with_parent(config), 26)
    parent_model.load_state_dict(load_checkpoint(parent)["state_dict"])
    data = load_tuning_splits(user_letters, (16, 16))
    start = evaluate(parent_model, data["validation"].images, data["validation"].labels)
    assert records[0]["start_val_accuracy"] == start["accuracy"]
    saved = load_checkpoint(tmp_path / "t.pth")
    assert saved["parent"]["model"] == str(parent)
    assert saved["parent"]["start_val_accuracy"] == start["accuracy"]
    assert saved["config"]["hidden"] == [16] and saved["config"]["from_model"] == str(parent)
    moved = [not torch.equal(saved["state_dict"][name], tensor)
             for name, tensor in load_checkpoint(parent)["state_dict"].items()]
    assert any(moved)
    assert result.best_epoch == 2  # the last epoch is kept, not the best on 20 images


def test_small_partial_data_trains_and_keeps_26_classes(parent, user_letters, tmp_path) -> None:
    data = load_tuning_splits(user_letters, (16, 16))
    assert len(data["train"]) == 40 and len(data["validation"]) == 20  # 2 + 1 of 20 letters
    assert set(data["train"].labels.tolist()) == set(range(20))
    result = _tune(parent, user_letters, tmp_path / "t.pth", batch_size=64)
    assert result.model(data["validation"].images).shape == (20, len(CLASSES))


def test_train_layers_keeps_the_earlier_layers(parent, user_letters, tmp_path) -> None:
    _tune(parent, user_letters, tmp_path / "t.pth", train_layers=1, lr=0.05, blend=1)
    before, after = load_checkpoint(parent)["state_dict"], load_checkpoint(
        tmp_path / "t.pth")["state_dict"]
    assert torch.equal(before["layers.0.weight"], after["layers.0.weight"])
    assert not torch.equal(before["layers.2.weight"], after["layers.2.weight"])
    model = build_model(make_config({"hidden": "16"}), 26)
    for train_layers in (0, 2, 5):  # all of its two layers train
        assert len(trainable_parameters(model, train_layers)) == 4


def test_blend_mixes_tuned_and_parent_weights(parent, user_letters, tmp_path) -> None:
    _tune(parent, user_letters, tmp_path / "tuned.pth", blend=1, lr=0.01)
    result = _tune(parent, user_letters, tmp_path / "half.pth", blend=0.5, lr=0.01)
    tuned = load_checkpoint(tmp_path / "tuned.pth")["state_dict"]
    half = load_checkpoint(tmp_path / "half.pth")
    for name, start in load_checkpoint(parent)["state_dict"].items():
        assert torch.allclose(half["state_dict"][name], (tuned[name] + start) / 2, atol=1e-6)
    data = load_tuning_splits(user_letters, (16, 16))
    measured = evaluate(result.model, data["validation"].images, data["validation"].labels)
    assert half["metrics"]["best_val_accuracy"] == measured["accuracy"]


def test_rehearsal_adds_drawn_images_to_every_batch() -> None:
    images, labels = torch.zeros(10, 4, 4), torch.zeros(10, dtype=torch.int64)
    extra = Rehearsal(torch.ones(5, 4, 4), torch.arange(5) + 1, per_batch=3)
    generator = torch.Generator().manual_seed(0)
    batches = list(training_batches(images, labels, torch.arange(10), 4, None, generator, extra))
    assert [len(batch_labels) for _, batch_labels in batches] == [7, 7, 5]
    for batch_images, batch_labels in batches:
        assert (batch_labels[:-3] == 0).all() and (batch_labels[-3:] >= 1).all()
        assert (batch_images[-3:] == 1).all()


def test_rehearsal_renders_built_in_letters_quickly_enough(parent, user_letters,
                                                           tmp_path) -> None:
    """Rehearsal on: built-in letters join each batch (rendered in memory, nothing written)."""
    result = _tune(parent, user_letters, tmp_path / "t.pth", rehearsal=0.5, epochs=1)
    assert result.history[0]["train_loss"] > 0
    assert sorted(path.name for path in user_letters.iterdir()) == sorted(
        path.name for path in user_letters.iterdir() if path.is_dir())


# ------------------------------------------------------------------------------ CLI


def test_cli_prints_the_gain_and_test_predict_show_the_parent(parent, user_letters,
                                                              tmp_path) -> None:
    out = tmp_path / "mine.pth"
    result = invoke("train", "--from", parent, "--data-dir", user_letters, "--out", out,
                    "--epochs", 2, "--rehearsal", 0, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "before tuning" in result.stdout and f"Tuned from {parent}" in result.stdout
    tested = invoke("test", "--model", out, "--data-dir", user_letters, "--json")
    assert tested.exit_code == 0, tested.output
    summary = json.loads(tested.stdout)
    assert summary["tuned_from"]["model"] == str(parent)
    assert f"tuned from {parent} (charrec" in summary["model"]
    assert "tuned from" in tested.stderr
    image = next(user_letters.rglob("*.jpg"))
    predicted = invoke("predict", "--model", out, image, "--json")
    assert json.loads(predicted.stdout)[0]["tuned_from"]["model"] == str(parent)
    assert "tuned from" in predicted.stderr


def test_a_tuned_run_resumes(parent, user_letters, tmp_path) -> None:
    out = tmp_path / "mine.pth"
    first = invoke("train", "--from", parent, "--data-dir", user_letters, "--out", out,
                   "--epochs", 2, "--rehearsal", 0, "--device", "cpu")
    assert first.exit_code == 0, first.output
    again = invoke("train", "--resume", out, "--epochs", 3)
    assert again.exit_code == 0, again.output
    saved = load_checkpoint(out)
    assert saved["metrics"]["last_epoch"] == 3 and saved["parent"]["model"] == str(parent)


def _bad(tmp_path: Path, *args: object, fragments: tuple[str, ...]) -> None:
    out = tmp_path / "kept.pth"
    out.write_bytes(b"the user's model")
    result = invoke("train", *args, "--out", out, "--device", "cpu")
    assert_one_line_error(result, *fragments)
    assert out.read_bytes() == b"the user's model"
    assert not (tmp_path / "kept.prev.pth").exists()


def test_bad_from_files_are_one_line_and_overwrite_nothing(user_letters, tmp_path) -> None:
    text = tmp_path / "notes.pth"
    text.write_text("not a model")
    _bad(tmp_path, "--from", text, "--data-dir", user_letters,
         fragments=("not a readable checkpoint",))
    config = make_config({"hidden": "8", "norm_size": "16,16"})
    two = save_checkpoint(tmp_path / "ab.pth", make_checkpoint(
        config, build_model(config, 2).state_dict(), {}, classes=("A", "B")))
    _bad(tmp_path, "--from", two, "--data-dir", user_letters, fragments=("2 classes", "A-Z"))
    colour = make_config({"hidden": "8", "norm_size": "16,16", "channels": 3})
    rgb = save_checkpoint(tmp_path / "rgb.pth", make_checkpoint(
        colour, build_model(colour, 26).state_dict(), {}))
    _bad(tmp_path, "--from", rgb, "--data-dir", user_letters, fragments=("3-channel",))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_parent(str(tmp_path / "missing.pth"))


def test_bad_data_is_one_line_and_overwrites_nothing(parent, tmp_path) -> None:
    _bad(tmp_path, "--from", parent, "--data-dir", tmp_path / "nowhere",
         fragments=("data folder not found",))
    assert not (tmp_path / "nowhere").exists()  # no built-in letters rendered there
    empty = tmp_path / "empty"
    (empty / "A").mkdir(parents=True)
    (empty / "A" / "notes.txt").write_text("no image")
    _bad(tmp_path, "--from", parent, "--data-dir", empty, fragments=("holds no images",))
    single = make_folder_dataset(tmp_path / "single", per_class=2)
    next(next(single.glob("[Bb]")).iterdir()).unlink()
    _bad(tmp_path, "--from", parent, "--data-dir", single,
         fragments=("folder of B holds only one image", "at least 2"))
    with pytest.raises(DataError, match="only one image"):
        load_tuning_splits(single, (16, 16))


def test_bad_option_combinations_are_one_line(parent, user_letters, tmp_path) -> None:
    _bad(tmp_path, "--from", parent, "--data-dir", user_letters, "--hidden", "64",
         fragments=("--from takes the network", "--hidden"))
    _bad(tmp_path, "--from", parent, "--resume", parent, fragments=("--from", "--resume"))
    _bad(tmp_path, "--rehearsal", "0.5", "--data-dir", user_letters,
         fragments=("--rehearsal", "--from"))


# ------------------------------------------------------------------------------ sweeps


def test_sweep_trials_tune_from_yaml(parent, user_letters, tmp_path) -> None:
    spec = tmp_path / "tune.yaml"
    spec.write_text(f"name: tune\nbase:\n  from: {parent}\n  data_dir: {user_letters}\n"
                    f"  epochs: 1\n  rehearsal: 0\n  device: cpu\ngrid:\n  lr: [0.001, 0.0003]\n")
    result = invoke("sweep", spec, "--out-dir", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in
            next((tmp_path / "runs").rglob("results.jsonl")).read_text().splitlines()]
    assert [row["status"] for row in rows] == ["ok", "ok"], rows
    assert all(row["config"]["hidden"] == [16] and row["config"]["norm_size"] == [16, 16]
               for row in rows)
    best = next((tmp_path / "runs").rglob("best.yaml"))
    again = invoke("train", "--config", best, "--out", tmp_path / "best.pth")
    assert again.exit_code == 0, again.output
    assert load_checkpoint(tmp_path / "best.pth")["parent"]["model"] == str(parent)
