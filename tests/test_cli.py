"""The command line end to end (CliRunner): train -> test -> predict, and one-line errors."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from charrec import CLASSES, __version__
from charrec.checkpoint import load_checkpoint
from tests.helpers import assert_one_line_error, invoke

PREDICTION = re.compile(r"Prediction: ([A-Z]) \((\d+\.\d)%\)")


@pytest.fixture(scope="module")
def trained(course_dataset: Path, tmp_path_factory) -> Path:
    """A checkpoint from a tiny `charrec train` run (2 epochs, one hidden layer of 32)."""
    out = tmp_path_factory.mktemp("cli") / "models" / "letters.pth"
    result = invoke("train", "--data-dir", course_dataset, "--epochs", "2", "--hidden", "32",
                    "--batch-size", "16", "--seed", "3", "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture()
def images(course_dataset: Path, tmp_path: Path) -> list[Path]:
    """Three test images copied into a folder (one in a subfolder)."""
    names = list(json.loads((course_dataset / "test.json").read_text()))[:3]
    (tmp_path / "pics" / "more").mkdir(parents=True)
    targets = [tmp_path / "pics" / names[0], tmp_path / "pics" / names[1],
               tmp_path / "pics" / "more" / names[2]]
    for name, target in zip(names, targets, strict=True):
        shutil.copy(course_dataset / "images" / name, target)
    return targets


# ------------------------------------------------------------------------------------ train


def test_train_saves_the_best_epoch_and_curves(trained: Path, course_dataset: Path) -> None:
    checkpoint = load_checkpoint(trained)
    config, metrics = checkpoint["config"], checkpoint["metrics"]
    assert config["hidden"] == [32] and config["epochs"] == 2 and config["seed"] == 3
    assert Path(config["data_dir"]) == course_dataset
    accuracies = [row["val_accuracy"] for row in metrics["history"]]
    assert len(accuracies) == 2 and metrics["best_val_accuracy"] == max(accuracies)
    assert metrics["best_epoch"] == 1 + accuracies.index(max(accuracies))  # first of ties
    assert trained.with_name("letters_curves.png").stat().st_size > 1000


def test_train_output_reports_progress_and_best_epoch(course_dataset: Path,
                                                      tmp_path: Path) -> None:
    result = invoke("train", "--data-dir", course_dataset, "--epochs", "2", "--hidden", "8",
                    "--layers", "2", "--act", "sigmoid", "--optim", "sgd", "--lr", "0.1",
                    "--out", tmp_path / "m.pth")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("val acc") == 2
    assert re.search(r"Best validation accuracy [\d.]+% at epoch [12] of 2", result.stdout)
    assert str(tmp_path / "m.pth") in result.stdout.replace("\n", "")


def test_train_with_yaml_config_and_flag_override(course_dataset: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "train.yaml"
    config_file.write_text(f"data-dir: {course_dataset}\nepochs: 1\nhidden: [12]\nact: tanh\n"
                           f"batch_size: 8\nout: {tmp_path / 'yaml.pth'}\n")
    result = invoke("train", "--config", config_file, "--act", "relu")
    assert result.exit_code == 0, result.output
    config = load_checkpoint(tmp_path / "yaml.pth")["config"]
    assert (config["hidden"], config["act"], config["batch_size"]) == ([12], "relu", 8)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--norm-size", "0,5"], "--norm-size"),
    (["--lr", "0"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--layers", "3", "--hidden", "64,32,16"], "--layers 3"),
    (["--optim", "lbfgs"], "--optim"),
])
def test_train_rejects_bad_options_in_one_line(args: list[str], fragment: str,
                                               course_dataset: Path, tmp_path: Path) -> None:
    result = invoke("train", "--data-dir", course_dataset, "--out", tmp_path / "x.pth", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "x.pth").exists()


def test_train_unknown_yaml_key_names_the_line(tmp_path: Path) -> None:
    config_file = tmp_path / "train.yaml"
    config_file.write_text("epochs: 1\nlerning_rate: 0.1\n")
    assert_one_line_error(invoke("train", "--config", config_file), "lerning_rate", "line 2")


def test_train_on_a_missing_data_folder_with_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("no dataset here")
    assert_one_line_error(invoke("train", "--data-dir", tmp_path / "junk", "--out",
                                 tmp_path / "x.pth"), "holds no dataset")


# ------------------------------------------------------------------------------------- test


def test_test_prints_accuracy_and_tables(trained: Path) -> None:
    result = invoke("test", "--model", trained)
    assert result.exit_code == 0, result.output
    assert "Per-class accuracy" in result.stdout and "Most confused" in result.stdout
    assert re.search(r"Accuracy on .*test: \d+\.\d\d% \(\d+/52 images\)",
                     result.stdout.replace("\n", ""))
    assert trained.with_name("letters_confusion_letters_test.png").is_file()


def test_test_json(trained: Path, tmp_path: Path) -> None:
    result = invoke("test", "--model", trained, "--json", "--plot", tmp_path / "conf.png")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["n_images"] == 52
    assert summary["n_correct"] == round(summary["accuracy"] * 52)
    assert set(summary["per_class"]) == set(CLASSES)
    assert all(entry["n_images"] == 2 for entry in summary["per_class"].values())
    assert (tmp_path / "conf.png").is_file()


def test_test_other_split(trained: Path) -> None:
    result = invoke("test", "--model", trained, "--split", "validation", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_images"] == 52
    bad = invoke("test", "--model", trained, "--split", "holdout")
    assert_one_line_error(bad, "unknown split")
    assert bad.exit_code == 2  # a usage error, found before any image is read



def test_test_on_a_folder_per_class_set(trained: Path, folder_dataset: Path) -> None:
    result = invoke("test", "--model", trained, "--data-dir", folder_dataset, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_images"] == 26 * 4  # whole folder: all of it is test


def test_test_missing_checkpoint(tmp_path: Path) -> None:
    assert_one_line_error(invoke("test", "--model", tmp_path / "nope.pth"), "not found",
                          "nope.pth")


# ---------------------------------------------------------------------------------- predict


def test_predict_one_file(trained: Path, images: list[Path]) -> None:
    result = invoke("predict", "--im-path", images[0], "--model", trained)
    assert result.exit_code == 0, result.output
    first, *warning = result.stdout.strip().splitlines()
    assert PREDICTION.fullmatch(first)
    assert all(line.startswith("Warning: unsure:") for line in warning)  # a 2-epoch model
    assert result.stderr.startswith(f"Model: {trained} (charrec {__version__}, mlp, val ")


def test_predict_several_files_and_a_folder(trained: Path, images: list[Path]) -> None:
    several = invoke("predict", "-i", images[0], "-i", images[1], "--model", trained)
    assert several.exit_code == 0, several.output
    lines = [line for line in several.stdout.splitlines() if ": Prediction" in line]
    assert [line.split(": Prediction")[0] for line in lines] == [str(p) for p in images[:2]]
    folder = invoke("predict", "--im-path", images[0].parent, "--model", trained)
    assert folder.exit_code == 0, folder.output
    assert len(PREDICTION.findall(folder.stdout)) == 3  # the subfolder's image too


def test_predict_top_k(trained: Path, images: list[Path]) -> None:
    result = invoke("predict", "--im-path", images[0], "--model", trained, "--top-k", "3")
    assert result.exit_code == 0, result.output
    match = re.fullmatch(r"Prediction: ([A-Z]) \(([\d.]+)%\)  next: ([A-Z]) ([\d.]+)%, "
                         r"([A-Z]) ([\d.]+)%", result.stdout.splitlines()[0])
    assert match, result.stdout
    assert len({match[1], match[3], match[5]}) == 3
    probabilities = [float(match[index]) for index in (2, 4, 6)]
    assert probabilities == sorted(probabilities, reverse=True)


def test_predict_json(trained: Path, images: list[Path]) -> None:
    result = invoke("predict", "-i", images[0], "-i", images[2], "--model", trained,
                    "--top-k", "3", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [entry["path"] for entry in entries] == [str(images[0]), str(images[2])]
    for entry in entries:
        assert entry["prediction"] in CLASSES
        assert len(entry["top_k"]) == 3 and entry["top_k"][0]["letter"] == entry["prediction"]
        probabilities = [item["probability"] for item in entry["top_k"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1.0 + 1e-6


def test_predict_matches_test_accuracy(trained: Path, course_dataset: Path) -> None:
    """predict and test preprocess alike: predictions on the test images give test's accuracy."""
    labels = json.loads((course_dataset / "test.json").read_text())
    paths = [course_dataset / "images" / name for name in labels]
    result = invoke("predict", "--model", trained, "--json",
                    *[arg for path in paths for arg in ("-i", path)])
    assert result.exit_code == 0, result.output
    predictions = {Path(entry["path"]).name: entry["prediction"]
                   for entry in json.loads(result.stdout)}
    correct = sum(predictions[name] == label.upper() for name, label in labels.items())
    summary = json.loads(invoke("test", "--model", trained, "--json").stdout)
    assert correct == summary["n_correct"]


def test_predict_missing_image(trained: Path, tmp_path: Path) -> None:
    assert_one_line_error(invoke("predict", "--im-path", tmp_path / "ghost.png", "--model",
                                 trained), "ghost.png", "no such file")


def test_predict_corrupt_image(trained: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + random.Random(0).randbytes(200))
    assert_one_line_error(invoke("predict", "--im-path", corrupt, "--model", trained),
                          "corrupt.png")


def test_predict_good_and_bad_images_reports_both(trained: Path, images: list[Path],
                                                  tmp_path: Path) -> None:
    result = invoke("predict", "-i", images[0], "-i", tmp_path / "ghost.png", "--model", trained)
    assert result.exit_code == 1
    assert len(PREDICTION.findall(result.stdout)) == 1
    assert_one_line_error(result, "ghost.png")


def test_predict_missing_checkpoint(images: list[Path], tmp_path: Path) -> None:
    assert_one_line_error(invoke("predict", "--im-path", images[0], "--model",
                                 tmp_path / "nope.pth"), "nope.pth", "charrec train")


def test_predict_needs_an_image() -> None:
    assert_one_line_error(invoke("predict"), "give one or more images", "--im-path")


# ------------------------------------------------------------------------ debug, version, help


def test_debug_lets_the_exception_through(tmp_path: Path) -> None:
    from charrec.errors import CheckpointError

    for args in (["--debug", "test", "--model", tmp_path / "nope.pth"],
                 ["test", "--model", tmp_path / "nope.pth", "--debug"]):
        result = invoke(*args)
        assert result.exit_code != 0
        assert isinstance(result.exception, CheckpointError), result.output


def _charrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charrec", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "120"})


def test_debug_prints_the_traceback(tmp_path: Path) -> None:
    debug = _charrec("--debug", "predict", "--im-path", "x.png", "--model",
                     str(tmp_path / "nope.pth"))
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"charrec {__version__}"


def test_python_dash_m_help() -> None:
    completed = _charrec("--help")
    assert completed.returncode == 0
    for command in ("train", "test", "predict"):
        assert command in completed.stdout


def test_strong_adam_weight_decay_prints_the_adamw_hint(course_dataset: Path) -> None:
    base = ("train", "--data-dir", course_dataset, "--hidden", "8", "--dry-run")
    adam = invoke(*base, "--optim", "adam", "--weight-decay", "0.15")
    assert adam.exit_code == 0, adam.output
    notes = [line for line in adam.stdout.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1 and "--optim adamw" in notes[0]
    adamw = invoke(*base, "--optim", "adamw", "--weight-decay", "0.15")
    assert adamw.exit_code == 0, adamw.output
    assert "Note:" not in adamw.stdout
