"""charrec's option conversion (`charrec.cli.params`) against Typer's own (pydantic), on every
option of every command, and the import it saves."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

typer_coercion = pytest.importorskip("typer._coercion", reason="Typer without runtime params")

from typer._click import Context  # noqa: E402
from typer._click.exceptions import BadParameter  # noqa: E402
from typer.main import get_command  # noqa: E402

from charrec.cli import app  # noqa: E402
from charrec.cli.params import PlainParam, fast_params  # noqa: E402

SAMPLES: dict[Any, list[Any]] = {
    str: ["abc", "", " a b ", "3", "-", "ü"],
    int: ["3", "-2", "+3", "0", "-0", "007", " 4 ", "1_000", "1__0", "x", "", "3.5", "1e3", "2.0",
          "2.00", "2.", ".5", "0x10", "inf", "99999999999999999999", "\uff11\uff12", 3, 2.0, 2.5],
    float: ["0.5", "-1", "1e-3", "3", " 2.5 ", "2.", ".5", "x", "", "inf", "-inf", "nan", "1_000",
            "1e400", "0x10", "\uff11\uff12", 0.25, 7],
    bool: [True, False, "true", "False", "1", "0", "yes", "no", "on", "off", "maybe", " true "],
    Path: ["a.png", "dir/", "", "-", "~/x", "ä b.png"],
}


def _all_params() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []

    def walk(command: Any, name: str) -> None:
        context = Context(command)
        for param in command.get_params(context):
            found.append((f"{name} {param.name}", param))
        for sub_name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{name} {sub_name}")

    walk(get_command(app), "charrec")
    return found


PARAMS = _all_params()


def _outcome(runtime: Any, param: Any, value: Any) -> Any:
    context = Context(get_command(app))
    try:
        result = runtime.coerce(value, param=param, ctx=context)
    except BadParameter:
        return "error"
    return result if not isinstance(result, float) or result == result else "nan"


def test_every_charrec_option_gets_the_fast_conversion() -> None:
    slow = [name for name, param in PARAMS if not isinstance(param._runtime_param, PlainParam)]
    assert slow == []


@pytest.mark.parametrize(("name", "param"), PARAMS, ids=[name for name, _ in PARAMS])
def test_conversion_matches_typers_own(name: str, param: Any) -> None:
    descriptor = param.type_descriptor
    typers = typer_coercion.build_runtime_param(descriptor)
    ours = param._runtime_param
    kind = descriptor.annotation
    is_list = getattr(kind, "__origin__", None) is list
    if is_list:
        kind = kind.__args__[0]
    for sample in SAMPLES[kind]:
        value = [sample, sample] if is_list else sample
        assert _outcome(ours, param, value) == _outcome(typers, param, value), (name, value)
    for bound in (descriptor.parameter_info.min, descriptor.parameter_info.max):
        if bound is not None:
            for value in (bound - 1, bound, bound + 1, str(bound + 1)):
                assert _outcome(ours, param, value) == _outcome(typers, param, value), \
                    (name, value)


def test_other_parameters_keep_typers_conversion() -> None:
    other = typer.Typer()

    @other.command()
    def command(when: datetime, n: Annotated[int, typer.Option(min=0, max=3, clamp=True)] = 0,
                path: Annotated[Path, typer.Option(exists=True)] = Path(".")) -> None:
        """Options charrec does not convert itself."""

    click_command = get_command(other)
    params = fast_params(click_command.get_params(Context(click_command)))
    converted = {param.name for param in params if isinstance(param._runtime_param, PlainParam)}
    assert not converted & {"when", "n", "path"}  # datetime, clamped, checked path: Typer's
    assert "help" in converted  # a plain flag


def test_cli_rejects_bad_values_in_one_line(tmp_path: Path) -> None:
    from tests.helpers import invoke

    for args, words in ((["train", "--epochs", "x", "--dry-run"], "'x' is not a valid integer"),
                        (["predict", "--top-k", "30", "a.png"], "larger than the maximum 26"),
                        (["train", "--lr", "fast", "--dry-run"], "'fast' is not a valid number")):
        result = invoke(*args)
        assert result.exit_code == 2 and words in result.output, result.output


HEAVY = ("pydantic", "rich.console", "charrec.train", "matplotlib")  # none needed to read a letter


@pytest.mark.parametrize("argv", [["train", "--help"], ["--help"], ["predict", "k.png"]],
                         ids=" ".join)
def test_help_and_predict_import_only_what_they_need(tmp_path: Path, argv: list[str]) -> None:
    """What keeps `--help` under 0.3 s and `predict` near `import torch` (benchmarks/
    help_speed.py, predict_speed.py): no pydantic, no rich console, no training code."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (48, 48), 230)
    ImageDraw.Draw(image).rectangle((14, 8, 22, 40), fill=20)
    image.save(tmp_path / "k.png")
    script = (f"import sys; from charrec.cli import main; sys.argv = ['charrec', *{argv!r}]\n"
              "try:\n    main()\nexcept SystemExit as exit_:\n    assert exit_.code in (0, None)\n"
              f"print([name for name in {HEAVY!r} if name in sys.modules], file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
