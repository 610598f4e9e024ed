"""What a newcomer meets first: built-in studies by name, exit codes (2 usage, 1 runtime), a
folder with an unreadable image still answered, a hint when the folder's model is weak, a
warning for a word, and `charrec test` with no data to test on."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from charrec.models import resolve
from charrec.models.resolve import ModelChoice, weak_model_hint
from charrec.studies import builtin_configs, find_config
from tests.helpers import assert_one_line_error, draw_letter, invoke


def test_sweep_list_names_every_built_in_study_with_its_trials() -> None:
    result = invoke("sweep", "--list")
    assert result.exit_code == 0, result.output
    studies = [config for config in builtin_configs().values() if config.is_sweep]
    assert {"momentum", "optimizer", "weight_decay"} <= {study.name for study in studies}
    for study in studies:
        assert study.name in result.stdout and study.description
    assert "│ momentum           │     10 │" in result.stdout  # 5 momenta x 2 repeats


def test_a_study_runs_by_name_or_path_and_a_wrong_name_is_one_line(tmp_path: Path) -> None:
    by_name = invoke("sweep", "momentum", "--dry-run")
    assert by_name.exit_code == 0, by_name.output
    path = find_config("momentum")
    by_path = invoke("sweep", path, "--dry-run")
    assert by_path.stdout == by_name.stdout
    error = assert_one_line_error(invoke("sweep", "momentun"), "momentun", "momentum")
    assert "--list" in error


def test_train_config_by_name(tmp_path: Path) -> None:
    assert find_config("train_example", "train").name == "train_example.yaml"
    result = invoke("train", "--config", "no_such_config", "--dry-run")
    assert_one_line_error(result, "no_such_config", "train_example")
    assert result.exit_code == 2


def test_usage_errors_exit_2_and_runtime_errors_exit_1(tmp_path: Path) -> None:
    assert invoke("train", "--epochs", "many").exit_code == 2  # click's own usage error
    assert invoke("sweep", "momentum", "--keep", "some").exit_code == 2  # charrec's check
    missing = invoke("predict", tmp_path / "nothing.png", "--model", "bundled")
    assert_one_line_error(missing, "no such file")
    assert missing.exit_code == 1


@pytest.fixture()
def folder_with_a_broken_image(tmp_path: Path) -> Path:
    import random

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = random.Random(0)
    for letter in "AB":
        draw_letter(letter, rng).save(folder / f"{letter}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_a_folder_with_an_unreadable_image_is_answered_with_a_warning(
        folder_with_a_broken_image: Path) -> None:
    result = invoke("predict", folder_with_a_broken_image, "--model", "bundled")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Prediction:") == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "broken.png" in warnings[0]
    strict = invoke("predict", folder_with_a_broken_image, "--model", "bundled", "--strict")
    assert strict.exit_code == 1
    assert "broken.png" in strict.stderr


def test_a_word_gets_the_several_letters_warning(tmp_path: Path) -> None:
    font = ImageFont.load_default(size=40)
    left, top, right, bottom = font.getbbox("HELLO")
    image = Image.new("L", (right - left + 20, bottom - top + 20), 230)
    ImageDraw.Draw(image).text((10 - left, 10 - top), "HELLO", font=font, fill=20)
    image.save(tmp_path / "hello.png")
    result = invoke("predict", tmp_path / "hello.png", "--model", "bundled", "--json")
    assert result.exit_code == 0, result.output
    assert "looks like 5 letters" in result.stdout


def test_weak_model_hint_only_for_the_folders_model() -> None:
    local = ModelChoice(Path("saved_models/recognition.pth"), "local")
    named = ModelChoice(Path("saved_models/recognition.pth"), "option")
    weak = {"metrics": {"best_val_accuracy": 0.17}}
    fair = {"metrics": {"best_val_accuracy": 0.80}}
    hint = weak_model_hint(local, weak, 0.93)
    assert hint is not None and "--model bundled" in hint and "17.0%" in hint
    assert weak_model_hint(named, weak, 0.93) is None  # the user asked for it
    assert weak_model_hint(local, fair, 0.93) is None
    assert weak_model_hint(local, {"metrics": {"best_val_accuracy": 0.70}}, 0.93) is not None


def test_predict_prints_the_hint_for_a_weak_model_in_the_folder(
        course_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    trained = invoke("train", "--data-dir", course_dataset, "--epochs", "1", "--hidden", "4",
                     "--lr", "1e-5", "--batch-size", "64")
    assert trained.exit_code == 0, trained.output
    image = next((course_dataset / "images").glob("*.png"))
    result = invoke("predict", image)
    assert result.exit_code == 0, result.output
    assert "Hint:" in result.stderr and "--model bundled" in result.stderr


def test_test_without_data_says_what_to_pass(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("test", "--model", "bundled")
    assert_one_line_error(result, "--data-dir", "charrec data synth")
    assert resolve.DEFAULT_MODEL.parts[0] == "saved_models"


def test_the_curves_title_tells_runs_apart() -> None:
    from charrec.config import make_config
    from charrec.report import options_summary

    adam = options_summary(make_config({}, {"optim": "adam", "weight_decay": 0.15,
                                            "augment": False}))
    sgd = options_summary(make_config({}, {"optim": "sgd", "momentum": 0.98, "hidden": "64"}))
    assert "adam" in adam and "wd 0.15" in adam and "no augment" in adam
    assert "sgd" in sgd and "momentum 0.98" in sgd and "mlp 64" in sgd
    cnn = options_summary(make_config({}, {"arch": "cnn", "conv": "5x5x20,3x3x30"}))
    assert "cnn 5x5x20,3x3x30" in cnn
