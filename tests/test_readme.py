"""The README's set-up commands are what newcomers copy and what CI runs: keep them in sync."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("charrec train")
    assert "pip install" in commands[0] and "pip install" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci_lines


def test_readme_config_examples_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in re.findall(r"(configs/[\w./-]+\.yaml)", text):
        assert (ROOT / path).is_file(), path
