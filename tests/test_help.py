"""The help text: flags show no value type, defaults are written one way, and shell completion
is offered."""

from __future__ import annotations

import pytest

from tests.helpers import invoke

COMMANDS = [[], ["train"], ["test"], ["predict"], ["sweep"], ["summary"], ["gradcheck"],
            ["som"], ["data"], ["data", "synth"], ["data", "stats"], ["data", "show"],
            ["data", "import"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda words: " ".join(words) or "charrec")
def test_help_shows_no_bool_metavar_and_one_default_style(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    assert "(default:" not in result.stdout  # defaults appear only as [default: ...]


def test_shell_completion_is_offered() -> None:
    result = invoke("--help")
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_choices_are_visible_in_train_help() -> None:
    from typer.testing import CliRunner

    from charrec.cli import app

    wide = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    text = " ".join(wide.stdout.split())
    for choices in ("sgd, adagrad, rmsprop, adam, adadelta, adamw", "relu, sigmoid, tanh, none",
                    "mlp or cnn", "auto, cpu or cuda"):
        assert choices in text, choices
