"""Built-in studies: the sweep files (and an example train config) that ship inside the package.

`charrec sweep momentum` and `charrec train --config train_example` name one of the YAML files in
this folder; a path to a file that exists is used as it is, so `charrec sweep my_study.yaml`
works as before. This module only finds and lists the files: parsing them belongs to
`charrec.sweep.spec` and `charrec.config`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from charrec.errors import ConfigError

SUFFIX = ".yaml"

_resource_paths = ExitStack()  # keeps zip-extracted copies alive until the process exits


@dataclass(frozen=True)
class BuiltinConfig:
    name: str
    path: Path
    description: str
    is_sweep: bool  # a sweep file (grid or random search), not a plain train config


def _read_header(path: Path) -> tuple[str, bool]:
    """The file's `description:` (else its first comment line) and whether it is a sweep."""
    import yaml

    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    description = data.get("description") if isinstance(data, dict) else None
    if not description:
        comments = [line.lstrip("# ").strip() for line in text.splitlines()
                    if line.startswith("#")]
        description = comments[0] if comments else ""
    is_sweep = isinstance(data, dict) and ("grid" in data or "random" in data)
    return str(description), is_sweep


def builtin_configs() -> dict[str, BuiltinConfig]:
    """Every YAML file shipped here, by name (the file name without `.yaml`), sorted."""
    folder = resources.files(__name__)
    found = {}
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.endswith(SUFFIX) and entry.is_file():
            path = Path(_resource_paths.enter_context(resources.as_file(entry)))
            description, is_sweep = _read_header(path)
            name = entry.name[: -len(SUFFIX)]
            found[name] = BuiltinConfig(name, path, description, is_sweep)
    return found


def find_config(name_or_path: str | Path, kind: str = "sweep") -> Path:
    """The YAML file a command was given: an existing path as it is, else the built-in file of
    that name (`momentum` or `momentum.yaml`). `kind` ("sweep" or "train") only shapes the
    error message."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtins = builtin_configs()
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.name
    if path.parent == Path(".") and name in builtins:
        return builtins[name].path
    if path.exists():
        raise ConfigError(f"{path} is not a file")
    wanted = [item.name for item in builtins.values() if item.is_sweep == (kind == "sweep")]
    raise ConfigError(f"{name_or_path}: no such file, and no built-in {kind} config of that "
                      f"name (built-in: {', '.join(wanted)}; `charrec sweep --list` describes "
                      f"them)")
