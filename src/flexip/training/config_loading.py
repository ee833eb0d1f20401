"""Reading a typed config: a YAML file and `a.b=value` overrides → a raw mapping → validated dataclasses.

    config = read_config(TrainConfig, "configs/train_tiny.yaml", ["optim.lr=1e-4", "data.mix.video=0.7"])

The schema is any dataclass whose fields are dataclasses (sections) or plain types; this module does not
know which config it reads. Validation is pydantic's (≥ 2.12, for `extra="forbid"` per call) in strict
JSON mode, over the dataclasses as they are (they stay plain dataclasses and their `__post_init__` checks
run): a YAML document is JSON data, and strict JSON validation takes an int for a float but no bool or
string for a number, no float for an int, no number for true/false, and no unknown key; NaN is rejected
first. The first problem becomes one `FlexIPInputError` line naming the dotted key:

    optim.lr: expected a number, got 'fast'
    unknown config key optim.lrr; optim has: batch_size, betas, ...
    data.manifest is required

YAML is read with PyYAML's safe loader taught YAML 1.2's floats with an exponent and no dot (`1e-4`,
a string to YAML 1.1).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from flexip.errors import FlexIPInputError

T = TypeVar("T")


class _YAMLLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that also reads `1e-4`, `2E5`, `1.5e3` (no dot or no exponent sign) as floats."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str) -> Any:
    """YAML text → Python values (safe loader; `1e-4` is a float)."""
    return yaml.load(text, Loader=_YAMLLoader)  # a SafeLoader: no arbitrary objects


def read_config(schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Read a YAML file (or start from the defaults when `path` is None), apply `section.key=value`
    overrides (values in YAML syntax: `optim.lr=1e-4`, `logging.validation_gammas=[0,0.5,1]`), validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FlexIPInputError(f"config file not found: {path}")
        try:
            loaded = parse_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise FlexIPInputError(f"{path} is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise FlexIPInputError(f"{path}: expected a mapping of sections (model, data, optim, ...), got {type(loaded).__name__}")
        raw = loaded or {}
    for override in overrides:
        apply_override(schema, raw, override)
    return build_config(schema, raw)


def apply_override(schema: type, raw: dict[str, Any], override: str) -> None:
    """Set `section.key=value` (or deeper, `model.adapter.num_queries=8`) in a raw config mapping; a
    mapping on the way that `raw` lacks starts as the schema's default (`data.mix.video=0.7` keeps mix.image)."""
    key, separator, text = override.partition("=")
    if not separator or not key.strip():
        raise FlexIPInputError(f"an override is KEY=VALUE (e.g. optim.lr=1e-4), got {override!r}")
    try:
        value = parse_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = dict(_default_mapping(schema, parts[: depth + 1]))
        if not isinstance(child, dict):
            raise FlexIPInputError(f"override {override!r}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _default_mapping(schema: type, path: list[str]) -> Mapping[str, Any]:
    """The default value at a dotted path of `schema` when it is a mapping (a section or a dict field)."""
    cls = schema
    for index, name in enumerate(path):
        match = next((f for f in dataclasses.fields(cls) if f.name == name), None) if dataclasses.is_dataclass(cls) else None
        if match is None:
            return {}
        hint = typing.get_type_hints(cls)[name]
        if dataclasses.is_dataclass(hint):
            cls = hint
            continue
        if index != len(path) - 1:
            return {}
        if match.default_factory is not dataclasses.MISSING:
            default = match.default_factory()
        else:
            default = None if match.default is dataclasses.MISSING else match.default
        return default if isinstance(default, Mapping) else {}
    return {}


# ---- validation: raw mapping → dataclasses, pydantic's errors → one line naming the key --------------


@functools.cache
def _adapter(schema: type):
    from pydantic import TypeAdapter  # on first use: importing pydantic takes a few hundred ms

    return TypeAdapter(schema)


def build_config(schema: type[T], values: Any) -> T:
    """A raw mapping (as read from YAML) → a validated `schema` instance. An empty section (`cache:` with
    nothing under it reads as null) takes its defaults."""
    import pydantic_core
    from pydantic import ValidationError

    if not isinstance(values, Mapping):
        raise FlexIPInputError(f"config: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(schema)
    values = {key: value for key, value in values.items() if value is not None or not dataclasses.is_dataclass(hints.get(key))}
    for loc in _nan_locations(values, ()):
        hint = _hint_at(schema, loc)
        if hint is not None and hint is not Any:  # NaN where a type is declared (an `Any` value is its section's to check)
            raise FlexIPInputError(f"{_dotted(loc)}: expected {_describe(hint)}, got nan")
    try:
        document = pydantic_core.to_json(values)
    except pydantic_core.PydanticSerializationError as error:
        raise FlexIPInputError(f"config: a value is not YAML data: {error}") from None
    try:
        return _adapter(schema).validate_json(document, strict=True, extra="forbid")
    except ValidationError as error:
        raise FlexIPInputError(_message(schema, error.errors()[0])) from None


def _nan_locations(value: Any, loc: tuple) -> Iterator[tuple]:
    """Where a raw mapping holds NaN (JSON would carry it through to the dataclasses)."""
    if isinstance(value, float) and math.isnan(value):
        yield loc
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        yield from _nan_locations(item, (*loc, key))


def _message(schema: type, error: Mapping[str, Any]) -> str:
    """One pydantic error → one line that names the dotted key and what was expected."""
    loc, kind = tuple(error["loc"]), error["type"]
    if kind == "value_error":  # a dataclass's own `__post_init__` check (its message names the key)
        cause = error["ctx"]["error"]
        return str(cause) if isinstance(cause, FlexIPInputError) else f"{_dotted(loc) or 'config'}: {cause}"
    if kind == "unexpected_keyword_argument":
        names = sorted(f.name for f in dataclasses.fields(_hint_at(schema, loc[:-1])))
        return f"unknown config key {_dotted(loc)}; {_dotted(loc[:-1]) or 'config'} has: {', '.join(names)}"
    if kind == "missing" and isinstance(loc[-1], int):  # a list too short for its tuple
        loc = loc[:-1]
    elif kind == "missing":
        hint = _hint_at(schema, loc)
        while dataclasses.is_dataclass(hint):  # a whole section is missing: name its first required key
            required = [f.name for f in dataclasses.fields(hint) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            if not required:
                break
            loc, hint = (*loc, required[0]), typing.get_type_hints(hint)[required[0]]
        return f"{_dotted(loc)} is required"
    hint = _hint_at(schema, loc)
    what = error["msg"] if hint is None else f"expected {_describe(hint)}"
    return f"{_dotted(loc) or 'config'}: {what}, got {error['input']!r}"


def _dotted(loc: Sequence[str | int]) -> str:
    """("gate", "image_range", 0) → "gate.image_range[0]"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _hint_at(schema: type, loc: Sequence[str | int]):
    """The declared type at a location in `schema` (dataclass fields, tuple / list items, mapping values)."""
    hint = schema
    for part in loc:
        hint = _without_none(hint)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            hint = typing.get_type_hints(hint).get(part)
        elif origin is tuple and args[-1:] == (Ellipsis,):
            hint = args[0]
        elif origin is tuple and isinstance(part, int) and part < len(args):
            hint = args[part]
        elif origin is list:
            hint = args[0]
        elif origin is dict:
            hint = args[1]
        else:
            return None
    return hint


def _without_none(hint):
    """`X | None` → X; any other type as it is."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _describe(hint) -> str:
    """A type in words: `float | None` → "a number or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", type(None): "null", Any: "a value"}
    if hint in names:
        return names[hint]
    if origin is tuple and args[-1:] != (Ellipsis,):
        return f"a list of {len(args)} values"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))
