"""The package's shape: dependencies point one way (cli -> sweep/train -> nn/data ->
config/errors/files), there are no import circles, not even through imports inside functions,
and every module opens with a docstring."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "charrec"

# module (or sub-package) prefix -> prefixes it must never import
FORBIDDEN = {
    "charrec.errors": ("charrec.",),
    # files sits on errors alone: a disk error leaves it as a WriteError
    "charrec.files": ("charrec.config", "charrec.cli", "charrec.train", "charrec.sweep",
                      "charrec.nn", "charrec.data", "charrec.checkpoint", "charrec.report",
                      "charrec.measure", "charrec.tools", "charrec.studies", "charrec.models",
                      "charrec.predict", "charrec.chart", "charrec.export", "charrec.reader",
                      "charrec.onnx_model"),
    "charrec.config": ("charrec.cli", "charrec.train", "charrec.sweep", "charrec.nn",
                       "charrec.data", "charrec.checkpoint", "charrec.report",
                       "charrec.measure"),
    "charrec.nn": ("charrec.data", "charrec.sweep", "charrec.train", "charrec.cli",
                   "charrec.checkpoint", "charrec.report", "charrec.measure", "charrec.tools"),
    "charrec.tools": ("charrec.sweep", "charrec.train", "charrec.cli", "charrec.checkpoint",
                      "charrec.report", "charrec.measure"),
    "charrec.nn.functions": ("charrec.nn.layers", "charrec.nn.model"),
    "charrec.nn.conv": ("charrec.nn.layers", "charrec.nn.model"),
    "charrec.data": ("charrec.nn", "charrec.tools", "charrec.sweep", "charrec.train", "charrec.cli",
                     "charrec.checkpoint", "charrec.report", "charrec.measure"),
    "charrec.checkpoint": ("charrec.train", "charrec.sweep", "charrec.cli", "charrec.report",
                           "charrec.measure"),
    "charrec.train": ("charrec.sweep", "charrec.cli", "charrec.report", "charrec.measure"),
    "charrec.tune": ("charrec.train", "charrec.sweep", "charrec.cli", "charrec.report",
                     "charrec.measure"),
    "charrec.measure": ("charrec.sweep", "charrec.cli", "charrec.report"),
    "charrec.report": ("charrec.sweep", "charrec.cli", "charrec.train"),
    "charrec.sweep": ("charrec.cli",),
    "charrec.studies": ("charrec.cli", "charrec.sweep", "charrec.train", "charrec.nn",
                        "charrec.data", "charrec.report"),
    "charrec.models": ("charrec.train", "charrec.sweep", "charrec.cli", "charrec.report",
                       "charrec.measure", "charrec.predict"),
    "charrec.serve": ("charrec.cli", "charrec.sweep", "charrec.train", "charrec.report",
                      "charrec.measure"),
    "charrec.predict": ("charrec.sweep", "charrec.cli", "charrec.report", "charrec.measure",
                        "charrec.reader", "charrec.nn", "charrec.checkpoint"),
    # reading ONNX models must never pull in torch: no module here may reach nn or checkpoint
    "charrec.onnx_model": ("charrec.nn", "charrec.checkpoint", "charrec.train", "charrec.cli",
                           "charrec.export", "charrec.reader", "charrec.measure",
                           "charrec.data"),
    "charrec.reader": ("charrec.cli", "charrec.sweep", "charrec.train", "charrec.report",
                       "charrec.export", "charrec.measure"),
    "charrec.export": ("charrec.cli", "charrec.sweep", "charrec.train", "charrec.report",
                       "charrec.reader", "charrec.measure"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every charrec module `path` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in known)
    return {name for name in found if name in known and name != "charrec"}


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imported_modules(path, set(MODULES)) - {name} for name, path in MODULES.items()}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_a_layer_above_it(name: str) -> None:
    for prefix, banned in FORBIDDEN.items():
        if name == prefix or name.startswith(prefix + "."):
            wrong = sorted(target for target in GRAPH[name]
                           if any(target == ban.rstrip(".") or target.startswith(ban)
                                  for ban in banned))
            assert not wrong, f"{name} imports {wrong} (rule for {prefix})"


def test_there_are_no_import_circles() -> None:
    # package __init__ modules import nothing, so edges into a package mean its submodules
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target):] + [target] if target in trail else [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_opens_with_a_docstring(name: str) -> None:
    tree = ast.parse(MODULES[name].read_text())
    docstring = ast.get_docstring(tree)
    if MODULES[name].name == "__main__.py":
        return
    assert docstring and len(docstring.split()) >= 8, f"{name} has no real docstring"


def test_the_detector_sees_imports_inside_functions() -> None:
    assert "charrec.train" in GRAPH["charrec.sweep.trial"]  # imported inside run_trial
    assert "charrec.data.builtin.synth" in GRAPH["charrec.train"]


def test_only_the_ray_modules_import_ray() -> None:
    # ray is an optional extra (charrec[ray]) and slow to import: two modules of sweep/ hold it
    importers = set()
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(found == "ray" or found.startswith("ray.") for found in names):
                importers.add(name)
    assert importers == {"charrec.sweep.ray_executor", "charrec.sweep.ray_auth"}


def test_the_tree_keeps_its_rooms() -> None:
    """One CLI package, network maths alone in nn/, the built-in letters in data/builtin/, the
    inspection tools in tools/ (issue 26's layout)."""
    assert not list(PACKAGE.glob("cli*.py")), "the CLI lives in charrec/cli/"
    assert (PACKAGE / "cli" / "__init__.py").is_file()
    tools = {"summary", "gradcheck", "som"}
    assert not tools & {path.stem for path in (PACKAGE / "nn").glob("*.py")}
    assert tools <= {path.stem for path in (PACKAGE / "tools").glob("*.py")}
    builtin = {"synth", "handwriting", "strokes", "fonts", "font_cache"}
    assert not builtin & {path.stem for path in (PACKAGE / "data").glob("*.py")}
    assert builtin <= {path.stem for path in (PACKAGE / "data" / "builtin").glob("*.py")}


def test_no_test_only_helpers_in_the_package() -> None:
    """Functions only the tests called moved to tests/helpers.py (issue 26)."""
    for name in ("count_parameters", "find_fonts", "paint_on_paper", "preprocess"):
        defined = [module for module, path in MODULES.items()
                   if f"def {name}(" in path.read_text()]
        assert not defined, f"{name} is defined in {defined}"
