"""Settings declared once: a dataclass field with `option(...)` metadata is its CLI flag, TOML key and help.

    @dataclass(frozen=True)
    class EvalSpec:
        every: int = option(1, "take every K-th test image (10: a fixed 1,000-image subset)")

`add_options(parser, EvalSpec)` adds `--every` (type, help and default from the field), and
`given(EvalSpec, args)` reads back the values the user gave. Nested dataclass fields (data
options, output options) add their own fields' flags. The TOML keys of a preset are the field
names; `advmnist recipes` and the docs list the same declarations.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

_KEY = "advmnist_option"
_GROUP = "advmnist_option_group"


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    help: str
    flag: str | None = None  # default: --field-name
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    cli: bool = True  # False: a setting of presets and the API only
    text: bool = False  # the flag takes text that the loader parses (e.g. an eps given as "8/255")


def option(
    default: Any,
    help: str,  # noqa: A002  # the argparse name
    *,
    flag: str | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] | None = None,
    cli: bool = True,
    text: bool = False,
) -> Any:
    """A dataclass field that is also a command-line option (and a TOML key: the field name)."""
    info = OptionInfo(help, flag, metavar, choices, cli, text)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple or a default_factory for mutable defaults")
    return dataclasses.field(default=default, metadata={_KEY: info})


def group(factory: Any = None) -> Any:
    """A field holding a dataclass of options (data options, output options): its flags join the command's.

    `factory` makes the default; without one the field is required.
    """
    if factory is None:
        return dataclasses.field(metadata={_GROUP: True})
    return dataclasses.field(default_factory=factory, metadata={_GROUP: True})


def info(f: dataclasses.Field[Any]) -> OptionInfo | None:
    found = f.metadata.get(_KEY)
    return found if isinstance(found, OptionInfo) else None


def flag_of(f: dataclasses.Field[Any]) -> str:
    meta = info(f)
    return (meta.flag if meta and meta.flag else None) or "--" + f.name.replace("_", "-")


def _base_type(hint: Any) -> Any:
    """`int | None` -> int; `tuple[str, ...]` -> tuple."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        return _base_type(kinds[0]) if len(kinds) == 1 else str
    return typing.get_origin(hint) or hint


def fields_with_options(cls: type) -> list[tuple[dataclasses.Field[Any], OptionInfo, Any]]:
    """(field, option info, base type) of every option field of `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = info(f)
        if meta is not None:
            out.append((f, meta, _base_type(hints[f.name])))
    return out


def nested(cls: type) -> list[tuple[str, type]]:
    """(field name, dataclass) of the fields of `cls` that are option groups themselves."""
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.metadata.get(_GROUP)]


def _default_text(value: Any, text: str) -> str:
    if value in (None, False, (), "") or value is dataclasses.MISSING or "default" in text:
        return ""
    return f" (default {value})"


Declared = tuple[dataclasses.Field[Any], OptionInfo, Any]


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *, skip: tuple[str, ...] = ()
) -> None:
    """Add a flag for every option field of `cls` (and of its nested option groups) but those in `skip`.

    Every flag defaults to None, so `given` can tell a value the user gave from one left out.
    """
    add_fields(parser, fields_with_options(cls), skip=skip)
    for _, group in nested(cls):
        add_options(parser, group, skip=skip)


def add_fields(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, declared: list[Declared], *, skip: tuple[str, ...] = ()
) -> None:
    """Add a flag for each of these option fields (see `add_options`)."""
    for f, meta, kind in declared:
        if not meta.cli or f.name in skip:
            continue
        text = meta.help + _default_text(f.default, meta.help)
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": text.replace("%", "%%")}
        if kind is bool:
            parser.add_argument(flag_of(f), action="store_true", **kwargs)
            continue
        if kind is tuple:
            kwargs.update(action="append", metavar=meta.metavar or f.name.upper())
        else:
            kwargs.update(type=kind if kind in (int, float) and not meta.text else str, metavar=meta.metavar)
        if meta.choices:
            kwargs["choices"] = meta.choices
        parser.add_argument(flag_of(f), **kwargs)


def given(cls: type, args: argparse.Namespace | Mapping[str, Any]) -> dict[str, Any]:
    """The option values of `cls` the user gave (not None), by field name; nested groups built too."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    out = given_fields(fields_with_options(cls), values)
    for name, group in nested(cls):
        out[name] = group(**given(group, values))
    return out


def given_fields(declared: list[Declared], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values of these option fields that the user gave (not None), by field name."""
    out: dict[str, Any] = {}
    for f, meta, kind in declared:
        value = values.get(f.name)
        if meta.cli and value is not None:
            out[f.name] = tuple(value) if kind is tuple else value
    return out
