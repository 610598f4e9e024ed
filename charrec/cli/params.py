"""Turning option strings into values without pydantic.

Typer (0.2x) converts every option value through a pydantic `TypeAdapter`; importing pydantic
and building the adapters is a large share of `charrec --help` (benchmarks/help_speed.py,
docs/benchmarks.md). charrec's options are all plain `str`, `int`,
`float` and `Path` values (some with a range), flags, or lists of them, which need no more
than `int(text)`. `fast_params` gives each such parameter a converter written here; anything else
(and any Typer without this mechanism) keeps Typer's own conversion, so the only cost of a
Typer change is speed. `tests/test_cli_params.py` checks that both convert every option alike.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

try:  # Typer's private conversion API (0.2x); without it charrec uses Typer's own conversion
    from typer._click.exceptions import BadParameter
    from typer._coercion import RuntimeParam
except ImportError:  # pragma: no cover - depends on the installed Typer
    RuntimeParam = None  # type: ignore[assignment,misc]

_INTEGER = re.compile(r"([+-]?[0-9](?:_?[0-9])*)(?:\.0+)?")  # "2.0" is 2, "2.5" is not an integer
_NAMES = {int: "integer", float: "number", bool: "boolean"}
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no", ""}


def _convert(kind: type, text: Any) -> Any:
    """`text` as a `kind` (str, int, float, bool or Path); ValueError when it is not one."""
    if isinstance(text, kind) and not isinstance(text, bool):
        return text
    if kind is str:
        return str(text)
    if kind is bool:
        word = str(text).strip().lower() if isinstance(text, str | int) else None
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("not a valid boolean")
    if kind is Path:
        if not isinstance(text, str):
            raise ValueError("not a path")
        return Path(text)
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"not a valid {_NAMES[kind]}")
    if kind is int and isinstance(text, float):
        if not text.is_integer():
            raise ValueError("not a valid integer")
        return int(text)
    if isinstance(text, str):
        text = text.strip()
        if not text.isascii():  # Python reads other scripts' digits; the CLI does not
            raise ValueError(f"not a valid {_NAMES[kind]}")
        if kind is int:
            whole = _INTEGER.fullmatch(text)
            if whole is None:
                raise ValueError("not a valid integer")
            text = whole.group(1)
    return kind(text)


if RuntimeParam is not None:
    class PlainParam(RuntimeParam):  # type: ignore[misc,valid-type]
        """Typer's runtime conversion of one parameter, for the plain types above."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind, is_list = _plain_kind(self.annotation)
            if is_list:
                items = value if isinstance(value, list | tuple) else [value]
                return [self._one(kind, item, param, ctx) for item in items]
            return self._one(kind, value, param, ctx)

        def _one(self, kind: type, text: Any, param: Any, ctx: Any) -> Any:
            try:
                value = _convert(kind, text)
            except (ValueError, TypeError, OverflowError):
                raise BadParameter(f"{text!r} is not a valid {_NAMES.get(kind, kind.__name__)}.",
                                   ctx=ctx, param=param) from None
            info = self.parameter_info
            if kind in (int, float):
                if info.min is not None and not value >= info.min:  # NaN is refused too
                    raise BadParameter(f"{value} is smaller than the minimum {info.min}.",
                                       ctx=ctx, param=param)
                if info.max is not None and not value <= info.max:
                    raise BadParameter(f"{value} is larger than the maximum {info.max}.",
                                       ctx=ctx, param=param)
            return value


def _plain_kind(annotation: Any) -> tuple[type, bool]:
    if get_origin(annotation) is list:
        return get_args(annotation)[0], True
    return annotation, False


def _is_plain(param: Any) -> bool:
    """A parameter this module converts: str, int, float, bool or Path (or a list of one), with no
    Typer extras (a custom parser, clamping, path checks)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or descriptor.file_annotation is not None:
        return False
    info = descriptor.parameter_info
    kind, _ = _plain_kind(descriptor.annotation)
    if kind not in (str, int, float, bool, Path) or info.parser is not None or info.clamp:
        return False
    if kind is Path:
        checks = (info.exists, info.resolve_path, info.path_type is not None,
                  not info.file_okay, not info.dir_okay, info.writable, info.readable is False)
        return not any(checks)
    return True


def fast_params(params: list[Any]) -> list[Any]:
    """Give each plain parameter charrec's converter (in place); returns `params`."""
    if RuntimeParam is None:  # pragma: no cover - depends on the installed Typer
        return params
    for param in params:
        if getattr(param, "_runtime_param", False) is None and _is_plain(param):
            descriptor = param.type_descriptor
            param._runtime_param = PlainParam(parameter_info=descriptor.parameter_info,
                                              annotation=descriptor.annotation)
    return params
