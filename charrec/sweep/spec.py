"""Sweep files: parse and validate a sweep YAML, and expand it into the list of trials to run.

A sweep file holds `name`, `base` (any `charrec train` option), then either `grid` (option ->
list of values; their cartesian product) or `random` (`trials`, `seed`, `params`: option ->
`{choice: [...]}`, `{uniform: [low, high]}` or `{log_uniform: [low, high]}`), and `repeats`
(seeds per point). Everything is checked before any trial runs: unknown keys, wrong types,
impossible values and inconsistent combinations are one `ConfigError` naming the key and, when
it comes from a file, the line.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charrec.config import (
    FIELD_NAMES,
    PARSERS,
    TrainConfig,
    config_from_dict,
    make_config,
    normalise_key,
    read_yaml,
)
from charrec.errors import CharrecError, ConfigError

SWEEP_KEYS = ("name", "description", "base", "grid", "random", "repeats")
RANDOM_KEYS = ("trials", "seed", "params")
DISTRIBUTIONS = ("choice", "uniform", "log_uniform")
NUMERIC_OPTIONS = ("lr", "momentum", "weight_decay", "layers", "batch_size", "epochs",
                   "val_interval", "seed")
INTEGER_OPTIONS = ("layers", "batch_size", "epochs", "val_interval", "seed")
SET_BY_SWEEP = ("out",)  # each trial's checkpoint path belongs to the run folder
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RandomSearch:
    trials: int
    seed: int
    params: dict[str, tuple[str, list[Any]]]  # option -> (distribution, arguments)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. Option keys are normalised (underscores); values stay as written."""

    name: str
    base: dict[str, Any]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    random: RandomSearch | None = None
    repeats: int = 1
    description: str = ""
    source: str = "<sweep>"

    @property
    def varied(self) -> list[str]:
        """The options that change from point to point, in file order."""
        return list(self.random.params) if self.random else list(self.grid)

    def to_dict(self) -> dict[str, Any]:
        """A mapping that is itself a valid sweep file (what a run folder's sweep.yaml holds)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["base"] = dict(self.base)
        if self.random:
            params = {option: {kind: list(arguments)}
                      for option, (kind, arguments) in self.random.params.items()}
            data["random"] = {"trials": self.random.trials, "seed": self.random.seed,
                              "params": params}
        elif self.grid:  # repeats of the base alone have no grid (an empty one is refused)
            data["grid"] = {option: list(values) for option, values in self.grid.items()}
        data["repeats"] = self.repeats
        return data


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: a point of the grid (or a random sample) and a repeat."""

    index: int
    point: int
    repeat: int
    options: dict[str, Any]  # the varied options of this point, as written or sampled
    config: dict[str, Any]  # the full TrainConfig, as plain types

    @property
    def trial_id(self) -> str:
        return f"t{self.index:03d}"

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial_id, "index": self.index, "point": self.point,
                "repeat": self.repeat, "options": self.options, "config": self.config}


# --------------------------------------------------------------------------- reading the file


def load_sweep(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep file; `overrides` (option -> raw value) replace `base:` keys."""
    data, _ = read_yaml(path)
    lines = _nested_key_lines(Path(path))
    return sweep_from_dict(data, source=str(path), lines=lines, overrides=overrides)


def _nested_key_lines(path: Path) -> dict[str, int]:
    """Line numbers of every key and list item: {"grid.momentum": 7, "grid.momentum[2]": 7}."""
    import yaml

    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[name] = key_node.start_mark.line + 1
                walk(value_node, name)
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                lines[f"{prefix}[{position}]"] = item.start_mark.line + 1
                walk(item, f"{prefix}[{position}]")

    walk(yaml.compose(path.read_text(encoding="utf-8")), "")
    return lines


class _Checker:
    """Raises ConfigErrors that name the file, the line (when known) and the key path."""

    def __init__(self, source: str, lines: Mapping[str, int]):
        self.source, self.lines = source, lines

    def error(self, key: str, message: str) -> ConfigError:
        line = self.lines.get(key)
        where = f"{self.source} (line {line})" if line else self.source
        return ConfigError(f"{where}: {key}: {message}")

    def option(self, key: str, raw_name: Any) -> str:
        name = normalise_key(raw_name)
        if name not in PARSERS:
            raise self.error(key, f"unknown option {raw_name!r}; known options: "
                                  f"{', '.join(FIELD_NAMES)}")
        if name in SET_BY_SWEEP:
            raise self.error(key, f"{name!r} is set per trial by the sweep (checkpoints go in "
                                  f"the run folder); remove it")
        return name

    def value(self, key: str, name: str, value: Any) -> Any:
        try:
            PARSERS[name](value)
        except ConfigError as error:
            raise self.error(key, str(error)) from None
        return value

    def mapping(self, key: str, value: Any, example: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping (e.g. {example}), got "
                                  f"{type(value).__name__} {value!r}")
        return value

    def integer(self, key: str, value: Any, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"expected an integer of at least {minimum}, got {value!r}")
        return value


def sweep_from_dict(data: Any, source: str = "<sweep>", lines: Mapping[str, int] | None = None,
                    overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Validate a parsed sweep file (see the module docstring for the format)."""
    check = _Checker(source, lines or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep file is a mapping with name, base, grid or random, "
                          f"repeats; got {type(data).__name__}")
    for key in data:
        if key not in SWEEP_KEYS:
            raise check.error(str(key), f"unknown sweep key; expected {', '.join(SWEEP_KEYS)} "
                                        f"(train options go under base:)")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise check.error("name", f"expected a short name of letters, digits, '_', '-' or '.' "
                                  f"(it names the run folder), got {name!r}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise check.error("description", f"expected text, got {description!r}")
    base = _parse_base(check, data.get("base") or {}, overrides or {})
    if "grid" in data and "random" in data:
        raise check.error("random", "use either grid: or random:, not both")
    grid = _parse_grid(check, data["grid"]) if "grid" in data else {}
    search = _parse_random(check, data["random"]) if "random" in data else None
    overridden = {normalise_key(key) for key in overrides or {}}
    for option in grid if search is None else search.params:
        if option in overridden:
            raise check.error(f"--set {option}", "this option is varied by the sweep; "
                                                 "change its values in the file instead")
        base.pop(option, None)  # a varied option overrides the base value
    repeats = check.integer("repeats", data.get("repeats", 1), 1)
    spec = SweepSpec(name=name, base=base, grid=grid, random=search, repeats=repeats,
                     description=description, source=source)
    expand(spec)  # builds every trial's config, so cross-option errors surface now
    return spec


def _parse_base(check: _Checker, base: Any, overrides: Mapping[str, Any]) -> dict[str, Any]:
    base = check.mapping("base", base, "base: {optim: sgd, lr: 0.01}")
    values: dict[str, Any] = {}
    for raw_name, value in base.items():
        name = check.option(f"base.{raw_name}", raw_name)
        values[name] = check.value(f"base.{raw_name}", name, value)
    for raw_name, value in overrides.items():
        name = check.option(f"--set {raw_name}", raw_name)
        values[name] = check.value(f"--set {raw_name}", name, value)
    return values


def _parse_grid(check: _Checker, grid: Any) -> dict[str, list[Any]]:
    grid = check.mapping("grid", grid, "grid: {momentum: [0.9, 0.95]}")
    if not grid:
        raise check.error("grid", "is empty; list at least one option and its values")
    parsed: dict[str, list[Any]] = {}
    for raw_name, values in grid.items():
        key = f"grid.{raw_name}"
        name = check.option(key, raw_name)
        if name in parsed:
            raise check.error(key, f"{name!r} is listed twice (dashes and underscores are the "
                                   f"same option)")
        if not isinstance(values, list):
            raise check.error(key, f"expected a list of values, e.g. [{values!r}, ...], "
                                   f"got {values!r}")
        if not values:
            raise check.error(key, "the list of values is empty")
        parsed[name] = [check.value(f"{key}[{position}]", name, value)
                        for position, value in enumerate(values)]
    return parsed


def _parse_random(check: _Checker, search: Any) -> RandomSearch:
    search = check.mapping("random", search, "random: {trials: 20, seed: 0, params: {...}}")
    for key in search:
        if key not in RANDOM_KEYS:
            raise check.error(f"random.{key}", f"unknown key; expected {', '.join(RANDOM_KEYS)}")
    trials = check.integer("random.trials", search.get("trials"), 1)
    seed = check.integer("random.seed", search.get("seed", 0), 0)
    params = check.mapping("random.params", search.get("params"),
                           "params: {lr: {log_uniform: [1e-4, 1e-1]}}")
    if not params:
        raise check.error("random.params", "is empty; give at least one option to sample")
    parsed: dict[str, tuple[str, list[Any]]] = {}
    for raw_name, spec in params.items():
        key = f"random.params.{raw_name}"
        name = check.option(key, raw_name)
        spec = check.mapping(key, spec, "{choice: [64, 128]} or {log_uniform: [1e-4, 1e-1]}")
        if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise check.error(key, f"expected exactly one of {', '.join(DISTRIBUTIONS)}, "
                                   f"got {spec!r}")
        kind, arguments = next(iter(spec.items()))
        parsed[name] = (kind, _parse_distribution(check, f"{key}.{kind}", name, kind, arguments))
    return RandomSearch(trials=trials, seed=seed, params=parsed)


def _parse_distribution(check: _Checker, key: str, name: str, kind: str,
                        arguments: Any) -> list[Any]:
    if kind == "choice":
        if not isinstance(arguments, list) or not arguments:
            raise check.error(key, f"expected a non-empty list of values, got {arguments!r}")
        return [check.value(f"{key}[{position}]", name, value)
                for position, value in enumerate(arguments)]
    if name not in NUMERIC_OPTIONS:
        raise check.error(key, f"{kind} needs a numeric option ({', '.join(NUMERIC_OPTIONS)}); "
                               f"use choice: for {name}")
    if (not isinstance(arguments, list) or len(arguments) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in arguments)):
        raise check.error(key, f"expected [low, high] (two numbers), got {arguments!r}")
    low, high = (float(x) for x in arguments)
    if not low < high:
        raise check.error(key, f"low must be below high, got [{low:g}, {high:g}]")
    if kind == "log_uniform" and low <= 0:
        raise check.error(key, f"log_uniform needs low > 0, got {low:g}")
    for position, bound in enumerate(arguments):
        check.value(f"{key}[{position}]", name, _round_sample(name, float(bound)))
    return list(arguments)


# ------------------------------------------------------------------------------ expanding


def _round_sample(name: str, value: float) -> int | float:
    """Samples are rounded so tables stay readable: integers for integer options, else 4
    significant digits."""
    return round(value) if name in INTEGER_OPTIONS else float(f"{value:.4g}")


def points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The varied options of each point: the grid's cartesian product or the random samples."""
    if spec.random is None:
        names = list(spec.grid)
        return [dict(zip(names, values, strict=True))
                for values in itertools.product(*(spec.grid[name] for name in names))] or [{}]
    rng = random.Random(spec.random.seed)
    samples = []
    for _ in range(spec.random.trials):
        sample = {}
        for name, (kind, arguments) in spec.random.params.items():
            if kind == "choice":
                sample[name] = arguments[rng.randrange(len(arguments))]
            elif kind == "uniform":
                sample[name] = _round_sample(name, rng.uniform(*arguments))
            else:
                low, high = (math.log(float(x)) for x in arguments)
                sample[name] = _round_sample(name, math.exp(rng.uniform(low, high)))
        samples.append(sample)
    return samples


def _base_for_point(base: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The base options that make sense with a point's depth: a varied `hidden` list defines
    the depth (as `--hidden` does in `charrec train`); with a varied `layers`, a single base
    `hidden` width is the width of every hidden layer, and `layers: 1` has none."""
    base = dict(base)
    if "hidden" in options and "layers" not in options:
        base.pop("layers", None)
    if "layers" in options and "hidden" not in options and "hidden" in base:
        if len(PARSERS["hidden"](base["hidden"])) == 1 and PARSERS["layers"](
                options["layers"]) == 1:
            base.pop("hidden")
    return base


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial of the sweep, point by point, each point `repeats` times with seeds
    seed, seed+1, ... (the seed of the base or of the point)."""
    trials: list[Trial] = []
    for point_index, options in enumerate(points(spec)):
        try:
            config = make_config(_base_for_point(spec.base, options), options)
        except CharrecError as error:
            described = ", ".join(f"{name}={value}" for name, value in options.items())
            raise ConfigError(f"{spec.source}: point {point_index} ({described or 'base'}): "
                              f"{error}") from None
        for repeat in range(spec.repeats):
            values = config.to_dict()
            values["seed"] = config.seed + repeat
            trials.append(Trial(index=len(trials), point=point_index, repeat=repeat,
                                options=dict(options), config=values))
    return trials


def config_hash(trials: Sequence[Trial]) -> str:
    """A fingerprint of exactly what the trials will run, to refuse resuming a changed sweep."""
    canonical = json.dumps([trial.to_dict() for trial in trials], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_change(old: Sequence[Mapping[str, Any]], new: Sequence[Trial]) -> str:
    """The first difference between stored trials and new ones, in words."""
    if len(old) != len(new):
        return f"it had {len(old)} trials, now {len(new)}"
    for stored, trial in zip(old, new, strict=True):
        changed = [key for key in sorted(set(stored["config"]) | set(trial.config))
                   if stored["config"].get(key) != trial.config.get(key)]
        if changed:
            key = changed[0]
            return (f"trial {trial.trial_id} {key} was {stored['config'].get(key)!r}, "
                    f"now {trial.config.get(key)!r}")
    return "the trial list differs"


def trial_config(trial: Trial, **changes: Any) -> TrainConfig:
    """The TrainConfig of a trial, with `changes` (e.g. its checkpoint path) applied."""
    return config_from_dict({**trial.config, **changes})
