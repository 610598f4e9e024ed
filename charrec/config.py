"""Training configuration: one frozen dataclass, its defaults, and parsing from flags and YAML.

Every `charrec train` option is a field of `TrainConfig`, with the same name (dashes or
underscores both accepted). Values arrive as strings (flags), YAML scalars or lists; each field has
one parser that turns any of these into the field's type or raises `ConfigError` naming the
option. `make_config` applies defaults < YAML file < flags and checks cross-field rules (e.g.
`--layers` against `--hidden`) before any work starts.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charrec.errors import ConfigError

DEFAULT_HIDDEN_WIDTH = 256
MAX_LAYERS = 100  # bounds that keep a typo (--layers 3000000000) from exhausting memory
MAX_HIDDEN_WIDTH = 65536
ACTIVATIONS = ("relu", "sigmoid", "tanh", "none")
INITS = ("auto", "normal")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adadelta", "adamw")
LR_SCHEDULES = ("constant", "cosine")
ADAM_STRONG_DECAY = 0.01  # from here Adam's coupled L2 decay costs accuracy (docs/sweeps.md)
LOSSES = ("ce", "mse")
ARCHS = ("mlp", "cnn")
DEFAULT_CONV = ((3, 3, 16), (3, 3, 32), (3, 3, 64), (3, 3, 128))  # --arch cnn: (kh, kw, out)
CNN_EPOCHS = 10  # --arch cnn without --epochs: ~3 min on one thread (docs/models.md)
DEVICES = ("auto", "cpu", "cuda")
KEEP_EPOCHS = ("best", "last")
# Options that describe the network: with --from they come from the parent checkpoint.
ARCHITECTURE_FIELDS = ("norm_size", "arch", "hidden", "layers", "conv", "channels", "bias",
                       "batch_norm", "act", "init")
# What --from changes when the user sets none of these: a short run at a moderate rate on
# augmented user letters mixed half and half with built-in ones, which keeps the last epoch
# (no best-epoch choice on a handful of validation images) and blends 80% tuned with 20% of
# the parent's weights. Chosen by measurement: docs/finetune.md.
TUNING_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3, "epochs": 30, "lr_schedule": "cosine", "augment": True, "train_layers": 0,
    "rehearsal": 0.5, "blend": 0.8, "keep_epoch": "last",
}
TUNING_ONLY = {"rehearsal": 0.0, "train_layers": 0, "blend": 1.0}  # options that need --from (off)
ALIASES = {"from": "from_model"}  # `from` is a Python keyword, so the field has a longer name


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored whole in every checkpoint."""

    data_dir: str = "data/character_classification"
    norm_size: tuple[int, int] = (32, 32)
    arch: str = "mlp"
    hidden: tuple[int, ...] = (DEFAULT_HIDDEN_WIDTH,)
    layers: int = 2
    conv: tuple[tuple[int, int, int], ...] = DEFAULT_CONV  # used by --arch cnn
    channels: int = 1  # input channels; charrec's preprocessing gives grayscale (1)
    bias: bool = True  # --no-bias: Linear and Conv2d layers without bias
    batch_norm: bool = False  # CNN: batch normalisation after each conv layer's pooling
    act: str = "relu"
    init: str = "auto"
    loss: str = "ce"
    label_smoothing: float = 0.0  # "ce": targets (1 - e) * onehot + e / classes
    optim: str = "adam"
    lr_schedule: str = "cosine"  # lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2; or constant
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 30  # CNN_EPOCHS for --arch cnn when not given (make_config)
    val_interval: int = 1
    seed: int = 0
    device: str = "auto"
    augment: bool | None = None  # None: on for the built-in synthetic data, off otherwise
    out: str = "saved_models/recognition.pth"
    from_model: str | None = None  # --from: a checkpoint path or "bundled" to start from
    rehearsal: float = 0.0  # share of each batch that is built-in letters (with --from)
    train_layers: int = 0  # with --from: only the last N layers with weights train (0: all)
    keep_epoch: str = "best"  # which epoch's weights are saved: best validation, or last
    blend: float = 1.0  # with --from: saved weights = blend * tuned + (1 - blend) * parent's

    def to_dict(self) -> dict[str, Any]:
        """Plain-type dict (lists, not tuples) fit for YAML, JSON and checkpoints."""
        return {
            key: _plain(value)
            for key, value in dataclasses.asdict(self).items()
        }

    @property
    def input_size(self) -> int:
        return self.norm_size[0] * self.norm_size[1] * self.channels


def _plain(value: Any) -> Any:
    """Tuples (also nested, like `conv`) -> lists."""
    return [_plain(item) for item in value] if isinstance(value, tuple) else value


FIELD_NAMES = tuple(field.name for field in dataclasses.fields(TrainConfig))


# ---------------------------------------------------------------- parsers: raw value -> field type


def _parse_int_list(value: Any, option: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ConfigError(f"--{option} expects integers, got {value!r}")
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", "none", "[]"):
            return ()
        parts = [part.strip() for part in text.replace("x", ",").split(",")]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ConfigError(f"--{option} expects a comma-separated list of integers, got {value!r}")
    try:
        numbers = tuple(int(part) for part in parts)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--{option} expects a comma-separated list of integers, got {value!r}"
        ) from None
    if any(isinstance(part, bool | float) for part in parts):
        raise ConfigError(f"--{option} expects integers, got {value!r}")
    return numbers


def _parse_hidden(value: Any) -> tuple[int, ...]:
    sizes = _parse_int_list(value, "hidden")
    if any(size <= 0 for size in sizes):
        raise ConfigError(f"--hidden sizes must be positive, got {value!r}")
    if len(sizes) >= MAX_LAYERS or max(sizes, default=0) > MAX_HIDDEN_WIDTH:
        raise ConfigError(f"--hidden {value!r} is too large (at most {MAX_LAYERS - 1} layers of "
                          f"at most {MAX_HIDDEN_WIDTH} units)")
    return sizes


def _parse_norm_size(value: Any) -> tuple[int, int]:
    sizes = _parse_int_list(value, "norm-size")
    if len(sizes) == 1:
        sizes = (sizes[0], sizes[0])
    if len(sizes) != 2 or min(sizes) <= 0:
        raise ConfigError(
            f"--norm-size expects two positive integers H,W (e.g. 32,32), got {value!r}")
    if max(sizes) > 1024:
        raise ConfigError(f"--norm-size {value!r} is too large (at most 1024 per side)")
    return sizes  # type: ignore[return-value]


def _int(option: str, minimum: int | None = None,
         maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"--{option} expects an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--{option} expects an integer, got {value!r}") from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"--{option} must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"--{option} must be at most {maximum}, got {number}")
        return number

    return parse


def _float(option: str, *, positive: bool = False, low: float | None = None,
           high: float | None = None) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ConfigError(f"--{option} expects a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--{option} expects a number, got {value!r}") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(f"--{option} must be a finite number, got {value!r}")
        if positive and number <= 0:
            raise ConfigError(f"--{option} must be greater than 0, got {value!r}")
        if low is not None and number < low:
            raise ConfigError(f"--{option} must be at least {low}, got {value!r}")
        if high is not None and number > high:
            raise ConfigError(f"--{option} must be at most {high}, got {value!r}")
        return number

    return parse


def _choice(option: str, choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ConfigError(f"--{option} must be one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def _text(option: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str | Path) or not str(value).strip():
            raise ConfigError(f"--{option} expects a path, got {value!r}")
        return str(value)

    return parse


def _optional_text(option: str) -> Callable[[Any], str | None]:
    def parse(value: Any) -> str | None:
        return None if value is None else _text(option)(value)

    return parse


def _optional_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "none", ""):
        return None
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"--augment expects true, false or auto, got {value!r}")


def _bool(option: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"--{option} expects true or false, got {value!r}")

    return parse


def _parse_conv(value: Any) -> tuple[tuple[int, int, int], ...]:
    """'5x5x20,3x3x30' (or a list of such strings or of [kh, kw, out] lists) -> ((5, 5, 20), ..)."""
    problem = (f"--conv expects comma-separated layers KHxKWxOUT (kernel height x kernel width "
               f"x output channels, odd kernels), e.g. 5x5x20,3x3x30; got {value!r}")
    if isinstance(value, str):
        items: list[Any] = [item for item in value.replace(" ", "").split(",") if item]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ConfigError(problem)
    layers = []
    for item in items:
        if isinstance(item, str):
            item = item.lower().replace("×", "x").split("x")
        if not isinstance(item, list | tuple) or len(item) != 3 or any(
                isinstance(number, bool | float) for number in item):
            raise ConfigError(problem)
        try:
            kernel_h, kernel_w, out_channels = (int(number) for number in item)
        except (TypeError, ValueError):
            raise ConfigError(problem) from None
        if min(kernel_h, kernel_w, out_channels) <= 0 or kernel_h % 2 == 0 or kernel_w % 2 == 0:
            raise ConfigError(f"{problem} (kernel sizes must be odd for 'same' padding, "
                              f"channels positive)")
        layers.append((kernel_h, kernel_w, out_channels))
    if not layers:
        raise ConfigError(problem)
    return tuple(layers)


def option_name(field: str) -> str:
    """The command-line flag of a TrainConfig field: `--weight-decay`, `--from` (ALIASES)."""
    return "--" + _FLAG_NAMES.get(field, field).replace("_", "-")


_FLAG_NAMES = {field: flag for flag, field in ALIASES.items()}

# Each field's parser, made for its option's name (which error messages quote): the names are
# derived from the fields, never written out again.
_PARSER_FACTORIES: dict[str, Callable[[str], Callable[[Any], Any]]] = {
    "data_dir": _text,
    "norm_size": lambda option: _parse_norm_size,
    "arch": lambda option: _choice(option, ARCHS),
    "hidden": lambda option: _parse_hidden,
    "layers": functools.partial(_int, minimum=1, maximum=MAX_LAYERS),
    "conv": lambda option: _parse_conv,
    "channels": functools.partial(_int, minimum=1),
    "bias": _bool,
    "batch_norm": _bool,
    "act": lambda option: _choice(option, ACTIVATIONS),
    "init": lambda option: _choice(option, INITS),
    "loss": lambda option: _choice(option, LOSSES),
    "label_smoothing": functools.partial(_float, low=0.0, high=0.5),
    "optim": lambda option: _choice(option, OPTIMIZERS),
    "lr_schedule": lambda option: _choice(option, LR_SCHEDULES),
    "lr": functools.partial(_float, positive=True),
    "momentum": functools.partial(_float, low=0.0, high=1.0),
    "weight_decay": functools.partial(_float, low=0.0),
    "batch_size": functools.partial(_int, minimum=1),
    "epochs": functools.partial(_int, minimum=1),
    "val_interval": functools.partial(_int, minimum=1),
    "seed": functools.partial(_int, minimum=0),
    "device": lambda option: _choice(option, DEVICES),
    "augment": lambda option: _optional_bool,
    "out": _text,
    "from_model": _optional_text,
    "rehearsal": functools.partial(_float, low=0.0, high=0.95),
    "train_layers": functools.partial(_int, minimum=0, maximum=MAX_LAYERS),
    "keep_epoch": lambda option: _choice(option, KEEP_EPOCHS),
    "blend": functools.partial(_float, positive=True, high=1.0),
}
PARSERS: dict[str, Callable[[Any], Any]] = {
    field: factory(option_name(field)[2:]) for field, factory in _PARSER_FACTORIES.items()
}
assert set(PARSERS) == set(FIELD_NAMES), "every TrainConfig field needs a parser"


def normalise_key(key: Any) -> str:
    name = str(key).strip().replace("-", "_")
    return ALIASES.get(name, name)


def check_keys(values: Mapping[str, Any], where: str = "options",
               lines: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Normalise keys (dashes -> underscores) and reject unknown ones, naming them."""
    normalised: dict[str, Any] = {}
    for key, value in values.items():
        name = normalise_key(key)
        if name not in PARSERS:
            line = f" (line {lines[str(key)]})" if lines and str(key) in lines else ""
            raise ConfigError(
                f"{where}{line}: unknown option {key!r}; known options: {', '.join(FIELD_NAMES)}"
            )
        normalised[name] = value
    return normalised


def parse_values(values: Mapping[str, Any], where: str = "options") -> dict[str, Any]:
    """Parse raw values into field types (unknown keys rejected)."""
    parsed: dict[str, Any] = {}
    for name, value in check_keys(values, where).items():
        try:
            parsed[name] = PARSERS[name](value)
        except ConfigError as error:
            prefix = "" if where == "options" else f"{where}: "
            raise ConfigError(f"{prefix}{error}") from None
    return parsed


def _resolve_architecture(parsed: dict[str, Any]) -> None:
    """Make `hidden` and `layers` agree: `layers` counts Linear layers, so len(hidden) == layers-1.

    One hidden width with more layers is repeated (`--layers 3 --hidden 64` -> 64,64).
    """
    hidden = parsed.get("hidden")
    layers = parsed.get("layers")
    if layers is None:
        hidden = (DEFAULT_HIDDEN_WIDTH,) if hidden is None else hidden
        layers = len(hidden) + 1
    elif hidden is None:
        hidden = (DEFAULT_HIDDEN_WIDTH,) * (layers - 1)
    elif len(hidden) == 1 and layers >= 2:
        hidden = hidden * (layers - 1)
    elif len(hidden) != layers - 1:
        if layers == 1:
            raise ConfigError(
                f"--layers 1 is a linear classifier and takes no hidden sizes, but --hidden is "
                f"{','.join(map(str, hidden))}; drop --hidden or raise --layers"
            )
        raise ConfigError(
            f"--layers {layers} needs {layers - 1} hidden sizes (e.g. --hidden "
            f"{','.join(['256'] * (layers - 1))}), but --hidden "
            f"{','.join(map(str, hidden)) or 'none'} gives {len(hidden)}"
        )
    parsed["hidden"], parsed["layers"] = tuple(hidden), layers


def make_config(*sources: Mapping[str, Any]) -> TrainConfig:
    """Build a validated config from user input: defaults, then each source in order (later
    sources win).

    Each source maps option names to raw values; `None` values are ignored so that unset CLI
    flags do not override a YAML file. With `from` (--from), architecture options are refused
    (they come from the parent checkpoint, see `charrec.tune`) and TUNING_DEFAULTS fill the
    training options the sources leave unset.
    """
    merged: dict[str, Any] = {}
    for source in sources:
        merged.update({key: value for key, value in check_keys(source).items()
                       if value is not None})
    if "from_model" in merged:
        given = [name for name in ARCHITECTURE_FIELDS if name in merged]
        if given:
            names = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ConfigError(f"--from takes the network from its checkpoint; {names} cannot "
                              f"change (drop {'it' if len(given) == 1 else 'them'})")
        merged = {**TUNING_DEFAULTS, **merged}
    else:
        tuning_only = [name for name, off in TUNING_ONLY.items()
                       if name in merged and PARSERS[name](merged[name]) != off]
        if tuning_only:
            flag = "--" + tuning_only[0].replace("_", "-")
            raise ConfigError(f"{flag} is for fine-tuning a trained model; give --from MODEL "
                              f"(a checkpoint or 'bundled') too")
    return _build(merged)


def _build(values: Mapping[str, Any]) -> TrainConfig:
    """Parse, settle `hidden`/`layers` and the CNN's epochs, and build the config."""
    parsed = parse_values(values)
    _resolve_architecture(parsed)
    if parsed.get("arch") == "cnn" and "epochs" not in parsed:
        parsed["epochs"] = CNN_EPOCHS
    return TrainConfig(**parsed)


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a config stored in a checkpoint or a sweep's trial list (keys missing from older
    files take defaults; nothing is refused or filled in as for user input)."""
    return _build({key: value for key, value in check_keys(values).items()
                   if value is not None})


def stored_config(values: Any, path: str | Path = "checkpoint") -> TrainConfig:
    """The config stored in a checkpoint or an ONNX model's metadata; CheckpointError (one
    line) if it is not a valid one."""
    from charrec.errors import CheckpointError

    if isinstance(values, dict) and "lr_schedule" not in values:
        values = {**values, "lr_schedule": "constant"}  # written before schedules existed
    try:
        return config_from_dict(values)
    except (ConfigError, AttributeError, TypeError, ValueError, KeyError, IndexError) as error:
        raise CheckpointError(f"{path}: invalid config inside the model: {error}") from None


def replace(config: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of `config` with `changes` applied and everything re-validated."""
    values = config.to_dict()
    values.update(changes)
    if "hidden" in changes and "layers" not in changes:
        values.pop("layers")
    return config_from_dict(values)



def optimizer_hint(config: TrainConfig) -> str | None:
    """A one-line hint for a setting that trains badly, or None: Adam adds weight decay to the
    gradient (L2), where it is rescaled with it; at 0.01 and above that is strong (configs/
    weight_decay.yaml: 61% -> 57% at 0.01, 19% at 0.18), AdamW decouples it."""
    if config.optim == "adam" and config.weight_decay >= ADAM_STRONG_DECAY:
        return (f"Adam's weight decay is coupled L2 (added to the gradient): "
                f"{config.weight_decay:g} is strong for it; --optim adamw decouples the decay "
                f"from the gradient and trains well with such values")
    return None


def resolve_augment(config: TrainConfig) -> TrainConfig:
    """`augment: auto` (None) means on for the built-in letters: a data folder whose
    manifest.json was written by `charrec data synth`, or one that holds nothing yet (training
    renders them there; a dry run renders its batch in memory)."""
    if config.augment is not None:
        return config
    data_dir = Path(config.data_dir)
    unmade = not (data_dir.is_dir() and any(data_dir.iterdir()))
    return replace(config, augment=unmade or (data_dir / "manifest.json").is_file())

# ---------------------------------------------------------------- YAML files


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int]]:
    """Read a YAML file -> (data, {top-level and `base:` key -> line number})."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    return data, _key_lines(node)


def _key_lines(node: Any) -> dict[str, int]:
    import yaml

    lines: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key_node, value_node in node.value:
        key = str(key_node.value)
        lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for inner_key, _ in value_node.value:
                lines.setdefault(str(inner_key.value), inner_key.start_mark.line + 1)
    return lines


def load_train_yaml(path: str | Path) -> dict[str, Any]:
    """Options from a `charrec train --config` file: a flat mapping, or one with a `base:` key
    (the format of sweep files and of the `best.yaml` a sweep writes)."""
    data, lines = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    if "base" in data:
        extra = [key for key in data if key not in ("base", "name")]
        if extra:
            raise ConfigError(
                f"{path}: {', '.join(map(repr, extra))} belong to sweep files; "
                f"run it with `charrec sweep {path}`"
            )
        data = data["base"] or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: `base:` must be a mapping of option: value")
    values = check_keys(data, where=str(path), lines=lines)
    for key, value in data.items():
        try:
            PARSERS[normalise_key(key)](value)
        except ConfigError as error:
            line = f" (line {lines[str(key)]})" if str(key) in lines else ""
            raise ConfigError(f"{path}{line}: {error}") from None
    return values
