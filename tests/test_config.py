"""TrainConfig: defaults, YAML < flags precedence, and errors that name the bad option."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from charrec.config import (
    CNN_EPOCHS,
    TrainConfig,
    config_from_dict,
    load_train_yaml,
    make_config,
    replace,
)
from charrec.errors import ConfigError


def test_defaults() -> None:
    config = make_config()
    assert config == TrainConfig()
    assert (config.data_dir, config.norm_size, config.hidden, config.layers) == (
        "data/character_classification", (32, 32), (256,), 2)
    assert (config.act, config.init, config.optim, config.lr) == ("relu", "auto", "adam", 2e-3)
    assert (config.batch_size, config.epochs, config.val_interval, config.seed) == (64, 30, 1, 0)
    assert config.out == "saved_models/recognition.pth"
    assert config.input_size == 1024


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_config().lr = 1.0  # type: ignore[misc]


def test_flag_strings_are_parsed() -> None:
    config = make_config({"norm-size": "28,20", "hidden": "128,64", "lr": "0.1",
                          "epochs": "3", "optim": "SGD", "act": "Tanh"})
    assert config.norm_size == (28, 20) and config.input_size == 560
    assert config.hidden == (128, 64) and config.layers == 3
    assert (config.lr, config.epochs, config.optim, config.act) == (0.1, 3, "sgd", "tanh")


def test_hidden_none_is_a_linear_classifier() -> None:
    config = make_config({"hidden": "none"})
    assert (config.hidden, config.layers) == ((), 1)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_flags_override_yaml(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "lr: 0.5\nepochs: 7\nhidden: [32, 16]\noptim: sgd\nbatch-size: 8\n")
    file_values = load_train_yaml(path)
    config = make_config(file_values, {"lr": 0.01, "epochs": None, "optim": "adam"})
    assert config.lr == 0.01 and config.optim == "adam"  # flags win
    assert config.epochs == 7 and config.hidden == (32, 16) and config.batch_size == 8  # file
    assert config.momentum == TrainConfig.momentum  # neither: default


def test_yaml_with_base_section(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "name: best\nbase:\n  lr: 0.004\n  act: sigmoid\n")
    assert make_config(load_train_yaml(path)).act == "sigmoid"


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    assert make_config(load_train_yaml(_yaml(tmp_path, ""))) == TrainConfig()


def test_yaml_unknown_key_names_it_and_its_line(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "lr: 0.1\nepochs: 3\nlearning_rate: 0.2\n")
    with pytest.raises(ConfigError) as error:
        load_train_yaml(path)
    message = str(error.value)
    assert "learning_rate" in message and "line 3" in message and str(path) in message


def test_yaml_wrong_type_names_option_and_line(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "epochs: 3\nbatch_size: many\n")
    with pytest.raises(ConfigError) as error:
        load_train_yaml(path)
    assert "--batch-size" in str(error.value) and "line 2" in str(error.value)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "lr: 0.1\nhidden: [64, 32\nepochs: 3\n")
    with pytest.raises(ConfigError, match=r"line \d+.*invalid YAML"):
        load_train_yaml(path)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_train_yaml(_yaml(tmp_path, "- lr\n- 0.1\n"))


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_yaml(tmp_path / "nope.yaml")


def test_unknown_flag_key() -> None:
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        make_config({"colour": "red"})


@pytest.mark.parametrize(("values", "option"), [
    ({"epochs": 0}, "--epochs"),
    ({"epochs": -3}, "--epochs"),
    ({"batch_size": 0}, "--batch-size"),
    ({"val_interval": 0}, "--val-interval"),
    ({"layers": 0}, "--layers"),
    ({"hidden": "64,0"}, "--hidden"),
    ({"hidden": "-5"}, "--hidden"),
    ({"norm_size": "0,5"}, "--norm-size"),
    ({"norm_size": "32,32,3"}, "--norm-size"),
    ({"norm_size": "big"}, "--norm-size"),
    ({"lr": 0}, "--lr"),
    ({"lr": -0.1}, "--lr"),
    ({"lr": "nan"}, "--lr"),
    ({"lr": "fast"}, "--lr"),
    ({"momentum": 1.5}, "--momentum"),
    ({"weight_decay": -1}, "--weight-decay"),
    ({"epochs": 2.5}, "--epochs"),
    ({"epochs": True}, "--epochs"),
    ({"seed": -1}, "--seed"),
    ({"optim": "lbfgs"}, "--optim"),
    ({"act": "gelu"}, "--act"),
    ({"init": "zeros"}, "--init"),
    ({"device": "tpu"}, "--device"),
    ({"layers": 3_215_639_748}, "--layers"),  # would build a 3e9-long hidden list
    ({"hidden": "10000000000"}, "--hidden"),
])
def test_bad_values_name_the_option(values: dict, option: str) -> None:
    with pytest.raises(ConfigError, match=option.replace("-", r"\-")):
        make_config(values)


def test_round_trip_through_plain_dict() -> None:
    config = make_config({"hidden": "64,32", "norm_size": "28,28", "optim": "sgd", "lr": 0.05})
    plain = config.to_dict()
    assert plain["hidden"] == [64, 32] and plain["norm_size"] == [28, 28]
    assert all(isinstance(value, str | int | float | bool | list | type(None))
               for value in plain.values())
    assert config_from_dict(plain) == config


def test_replace_revalidates() -> None:
    config = make_config({"hidden": "64,32"})
    assert replace(config, hidden=(16,)).layers == 2
    with pytest.raises(ConfigError, match="--lr"):
        replace(config, lr=0)


def test_cnn_defaults_to_its_own_epochs_and_four_conv_layers() -> None:
    cnn = make_config({"arch": "cnn"})
    assert cnn.epochs == CNN_EPOCHS != TrainConfig().epochs
    assert cnn.conv == ((3, 3, 16), (3, 3, 32), (3, 3, 64), (3, 3, 128))
    assert make_config({"arch": "cnn", "epochs": 30}).epochs == 30  # a given value wins
    assert make_config({"arch": "mlp"}).epochs == 30
    assert config_from_dict(cnn.to_dict()) == cnn  # a checkpoint's config rebuilds unchanged
