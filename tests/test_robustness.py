"""Issue 6 and 10 guarantees: interrupted and killed runs lose nothing, resumed runs match
unbroken ones, diverging runs never overwrite a good checkpoint, bad datasets and configs fail
clearly; an existing --out is kept, checkpoints find their data from any folder, a closed pipe
is not an error. (Ctrl-C at random instants: tests/test_interrupts.py; fuzzing: test_fuzz.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charrec.checkpoint import load_checkpoint
from charrec.config import make_config
from charrec.data.loading import load_splits
from charrec.errors import DataError, TrainingDiverged
from charrec.train import run
from tests.helpers import assert_one_line_error, invoke, make_course_dataset


@pytest.fixture(scope="module")
def big_dataset(tmp_path_factory) -> Path:
    """Enough images that an epoch takes a noticeable moment (for the signal tests)."""
    return make_course_dataset(tmp_path_factory.mktemp("big") / "letters", per_class=20, seed=3)


def start_training(data_dir: Path, out: Path, epochs: int = 400) -> subprocess.Popen:
    command = [sys.executable, "-m", "charrec", "train", "--data-dir", str(data_dir),
               "--epochs", str(epochs), "--out", str(out), "--hidden", "512,512",
               "--batch-size", "16"]
    # A background job of a non-interactive shell inherits SIGINT ignored; Python then installs
    # no KeyboardInterrupt handler. Give the child the default disposition, as a terminal would.
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_epochs(process: subprocess.Popen, count: int, timeout: float = 120) -> str:
    output, deadline = "", time.monotonic() + timeout
    while output.count("val acc") < count:
        line = process.stdout.readline()
        assert line or process.poll() is None, f"training ended early:\n{output}"
        output += line
        assert time.monotonic() < deadline, f"no {count} epochs in {timeout}s:\n{output}"
    return output


def test_sigkill_mid_run_leaves_previous_checkpoint_loadable(big_dataset, tmp_path):
    out = tmp_path / "model.pth"
    assert invoke("train", "--data-dir", big_dataset, "--epochs", "1", "--out", out).exit_code == 0
    before = load_checkpoint(out)
    process = start_training(big_dataset, out)
    try:
        wait_for_epochs(process, 1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    after = load_checkpoint(out)  # intact: either the old file or a complete newer one
    assert after["format_version"] == before["format_version"]
    assert after["metrics"]["last_epoch"] >= 1


def test_ctrl_c_saves_best_so_far_and_exits_130(big_dataset, tmp_path):
    out = tmp_path / "model.pth"
    process = start_training(big_dataset, out)
    try:
        output = wait_for_epochs(process, 2)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    output += rest
    assert process.returncode == 130, output
    assert "saved the best model so far" in output
    assert "Traceback" not in output
    checkpoint = load_checkpoint(out)
    assert checkpoint["metrics"]["interrupted"] is True
    assert checkpoint["metrics"]["best_epoch"] >= 1


def test_resume_reaches_the_same_weights_as_an_unbroken_run(course_dataset, tmp_path):
    # a constant learning rate: raising --epochs on resume would stretch a cosine schedule
    common = ["--data-dir", course_dataset, "--hidden", "32", "--batch-size", "16", "--augment",
              "--lr-schedule", "constant"]
    whole, part = tmp_path / "whole.pth", tmp_path / "part.pth"
    assert invoke("train", *common, "--epochs", "4", "--out", whole).exit_code == 0
    assert invoke("train", *common, "--epochs", "2", "--out", part).exit_code == 0
    result = invoke("train", "--resume", part, "--epochs", "4")
    assert result.exit_code == 0, result.output
    assert "Resuming from epoch 2" in result.output
    unbroken, resumed = load_checkpoint(whole), load_checkpoint(part)
    for name, tensor in unbroken["state_dict"].items():
        assert torch.equal(tensor, resumed["state_dict"][name]), name
    assert unbroken["metrics"]["history"][-1]["val_accuracy"] == \
        resumed["metrics"]["history"][-1]["val_accuracy"]
    assert resumed["metrics"]["last_epoch"] == 4


def test_an_interrupted_cosine_run_resumes_exactly(course_dataset, tmp_path):
    from charrec.train import Callbacks, TrainState

    config = make_config({"data_dir": str(course_dataset), "hidden": "32", "batch_size": 16,
                          "epochs": 4, "lr_schedule": "cosine", "out": str(tmp_path / "m.pth"),
                          "device": "cpu"})
    unbroken = run(config, save=False)

    def stop_after_two(metrics, is_best) -> None:
        if metrics.epoch == 2:
            raise KeyboardInterrupt

    assert run(config, Callbacks(on_epoch=stop_after_two)).interrupted
    state = TrainState.from_checkpoint(load_checkpoint(tmp_path / "m.pth"))
    assert state.epoch == 2
    resumed = run(config, resume=state)
    for name, tensor in unbroken.state.last_state.items():
        assert torch.equal(tensor, resumed.state.last_state[name]), name


def test_resume_refuses_changed_options_and_finished_runs(course_dataset, tmp_path):
    out = tmp_path / "m.pth"
    assert invoke("train", "--data-dir", course_dataset, "--epochs", "1", "--hidden", "16",
                   "--out", out).exit_code == 0
    assert_one_line_error(invoke("train", "--resume", out, "--lr", "0.1"), "--lr")
    assert_one_line_error(invoke("train", "--resume", out, "--epochs", "1"), "--epochs")


def test_divergence_stops_with_a_hint_and_keeps_the_good_checkpoint(course_dataset, tmp_path):
    out = tmp_path / "model.pth"
    assert invoke("train", "--data-dir", course_dataset, "--epochs", "2", "--hidden", "16",
                   "--out", out).exit_code == 0
    good = load_checkpoint(out)
    result = invoke("train", "--data-dir", course_dataset, "--epochs", "5", "--optim", "sgd",
                     "--lr", "1e30", "--momentum", "0.99", "--out", out)
    assert_one_line_error(result, "diverged at epoch", "lower learning rate")
    kept = load_checkpoint(out)
    assert all(torch.equal(kept["state_dict"][name], tensor)
               for name, tensor in good["state_dict"].items())


def test_divergence_is_an_error_in_the_library(course_dataset):
    config = make_config({"data_dir": str(course_dataset), "epochs": 3, "optim": "sgd",
                          "lr": 1e30, "hidden": "16"})
    data = load_splits(course_dataset, config.norm_size, config.seed)
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        run(config, data=data, save=False)


# ------------------------------------------------------------------------------ bad datasets


def write_course(root: Path, splits: dict[str, object], images: tuple[str, ...] = ()) -> Path:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    for name in images:
        Image.new("L", (8, 8), 255).save(root / "images" / name)
    for split, entries in splits.items():
        text = entries if isinstance(entries, str) else json.dumps(entries)
        (root / f"{split}.json").write_text(text)
    return root


@pytest.mark.parametrize("splits, fragment", [
    ({"train": [1, 2], "validation": {}, "test": {}}, "expected a JSON object"),
    ({"train": "{not json", "validation": {}, "test": {}}, "not valid JSON"),
    ({"train": {"a.png": "AB", "b.png": "7", "c.png": "é", "d.png": 3},
      "validation": {}, "test": {}}, "4 labels are not a single letter"),
    ({"train": {"a.png": "A", "gone1.png": "B", "gone2.png": "C"}, "validation": {}, "test": {}},
     "2 entries name images missing"),
    ({"train": {}, "validation": {"a.png": "A"}, "test": {"a.png": "A"}}, "train split"),
    ({"train": {"a.png": "A"}, "validation": {"a.png": "a"}, "test": {"b.png": "B"}},
     "appear in two splits"),
    ({"train": {"../a.png": "A"}, "validation": {}, "test": {}}, "must be relative"),
])
def test_bad_datasets_fail_clearly(tmp_path, splits, fragment):
    root = write_course(tmp_path / "d", splits, images=("a.png", "b.png"))
    with pytest.raises(DataError, match=fragment.replace("(", r"\(")):
        load_splits(root, (8, 8))
    assert_one_line_error(invoke("train", "--data-dir", root, "--epochs", "1"), fragment)


def test_unreadable_images_are_skipped_with_a_count_or_fail_with_strict(tmp_path):
    root = make_course_dataset(tmp_path / "d", per_class=5)
    broken = sorted((root / "images").glob("*.png"))[:2]
    for path in broken:
        path.write_bytes(b"not a png")
    result = invoke("train", "--data-dir", root, "--epochs", "1", "--batch-size", "4",
                     "--out", tmp_path / "m.pth")
    assert result.exit_code == 0, result.output
    assert "skipped 2 unreadable images" in result.output
    strict = invoke("train", "--data-dir", root, "--epochs", "1", "--strict")
    assert_one_line_error(strict, "2 images could not be read")


# ------------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize("args, fragment", [
    (["--epochs", "0"], "--epochs"),
    (["--hidden", "0"], "--hidden"),
    (["--hidden", "-4"], "--hidden"),
    (["--layers", "3", "--hidden", "64,32,16"], "--layers 3 needs 2 hidden sizes"),
    (["--layers", "1", "--hidden", "64,32"], "linear classifier"),
    (["--norm-size", "0,5"], "--norm-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--optim", "lbfgs"], "--optim"),
    (["--batch-size", "100000"], "larger than the training set"),
])
def test_bad_options_name_the_option_before_training(course_dataset, tmp_path, args, fragment):
    out = tmp_path / "never.pth"
    result = invoke("train", "--data-dir", course_dataset, "--out", out, *args)
    assert_one_line_error(result, fragment)
    assert not out.exists()


def test_bad_yaml_names_key_and_line(tmp_path, course_dataset):
    config = tmp_path / "c.yaml"
    config.write_text("optim: adam\n\nlearning_rate: 0.1\n")
    assert_one_line_error(invoke("train", "--config", config), "line 3", "learning_rate")
    config.write_text("optim: adam\nepochs: many\n")
    assert_one_line_error(invoke("train", "--config", config), "line 2", "--epochs")
    config.write_text("optim: [adam\n")
    assert_one_line_error(invoke("train", "--config", config), "invalid YAML")


# ---------------------------------------------------------------------- what users ran into


def test_train_keeps_an_existing_out_as_prev_and_says_so(course_dataset, tmp_path):
    out = tmp_path / "recognition.pth"
    common = ["--data-dir", course_dataset, "--hidden", "16", "--batch-size", "16", "--out", out]
    first = invoke("train", *common, "--epochs", "1")
    assert first.exit_code == 0 and "already exists" not in first.output
    before = out.read_bytes()
    second = invoke("train", *common, "--epochs", "2", "--seed", "5")
    assert second.exit_code == 0, second.output
    backup = tmp_path / "recognition.prev.pth"
    lines = [line for line in second.stdout.splitlines() if "already exists" in line]
    assert len(lines) == 1 and str(backup) in lines[0]
    assert backup.read_bytes() == before
    assert load_checkpoint(out)["metrics"]["last_epoch"] == 2
    assert invoke("train", *common, "--epochs", "1", "--dry-run").exit_code == 0
    assert backup.read_bytes() == before  # a dry run writes nothing, not even the copy


def test_checkpoint_stores_its_data_folder_absolute(course_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(course_dataset.parent)
    out = tmp_path / "m.pth"
    result = invoke("train", "--data-dir", course_dataset.name, "--hidden", "16", "--epochs", "1",
                    "--batch-size", "16", "--out", out)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out)["config"]["data_dir"] == str(course_dataset)
    monkeypatch.chdir(tmp_path)  # elsewhere: the model still finds its test split
    tested = invoke("test", "--model", out, "--json")
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["data"] == f"{course_dataset.name}/test"


def test_a_relative_data_folder_from_an_old_checkpoint_gets_a_hint_not_retrain(
        course_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(course_dataset.parent)
    out = tmp_path / "m.pth"
    assert invoke("train", "--data-dir", course_dataset, "--hidden", "16", "--epochs", "1",
                  "--batch-size", "16", "--out", out).exit_code == 0
    checkpoint = load_checkpoint(out)
    checkpoint["config"]["data_dir"] = course_dataset.name  # as older charrec stored it
    torch.save(checkpoint, out)
    monkeypatch.chdir(tmp_path)
    line = assert_one_line_error(invoke("test", "--model", out), course_dataset.name,
                                 "relative", "--data-dir")
    assert "charrec train" not in line
    monkeypatch.chdir(course_dataset.parent)
    assert invoke("test", "--model", out).exit_code == 0


def run_with_closed_stdout(*args: object) -> subprocess.CompletedProcess:
    """Run charrec with a stdout whose reader has already gone, as `| head -0` leaves it: every
    write fails with a broken pipe, deterministically."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "charrec", *map(str, args)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)


def test_a_closed_pipe_is_not_an_error(course_dataset, tmp_path):
    out = tmp_path / "m.pth"
    assert invoke("train", "--data-dir", course_dataset, "--hidden", "16", "--epochs", "1",
                  "--batch-size", "16", "--out", out).exit_code == 0
    images = sorted((course_dataset / "images").glob("*.png"))[:3]
    image_args = [arg for image in images for arg in ("--im-path", image)]
    for args in (["predict", *image_args], ["predict", "--json", *image_args]):  # rich, JSON
        result = run_with_closed_stdout(*args, "--model", out)
        assert result.returncode == 0, args
        # stderr holds only the line naming the model (written before stdout closed)
        assert [line for line in result.stderr.splitlines()
                if not line.startswith("Model: ")] == [], (args, result.stderr)


def test_an_error_a_ctrl_c_caused_is_reported_as_the_interruption(capsys, monkeypatch):
    """Ctrl-C inside a C extension's import (seen: matplotlib's Agg backend while drawing the
    curves) surfaces as ImportError("initialization failed"): still one line and exit 130."""
    import signal as signals

    import typer

    from charrec.cli.common import friendly_errors, run_app, state

    @friendly_errors
    def command(debug: bool = False) -> None:
        try:
            signals.raise_signal(signals.SIGINT)
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None

    app = typer.Typer()
    app.command()(command)
    monkeypatch.setattr("sys.argv", ["charrec"])
    previous = signals.signal(signals.SIGINT, signals.default_int_handler)
    state.reported = False
    try:
        with pytest.raises(SystemExit) as exit_:
            run_app(app)
    finally:
        signals.signal(signals.SIGINT, previous)
        state.interrupted = False
    assert exit_.value.code == 130
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["Error: interrupted by Ctrl-C"]
