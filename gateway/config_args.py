"""Command-line flags from config dataclasses, as vLLM's EngineArgs makes them: every field whose metadata has a
"help" is a flag named after the field (--max-model-len for max_model_len) with the field's type, default and
help, so a setting is declared once. Booleans get --flag and --no-flag."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from gateway import arg_types

C = TypeVar("C")


def add_config_arguments(group: argparse._ActionsContainer, config_class: type) -> None:
    hints = typing.get_type_hints(config_class)
    for f in _flag_fields(config_class):
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=_default(f), help=f.metadata["help"],
                           **_kind(hints[f.name], f.metadata))


def config_from_args(config_class: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    values = {f.name: getattr(args, f.name) for f in _flag_fields(config_class)}
    values = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
    return config_class(**{**values, **overrides})


def _flag_fields(config_class: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config_class) if "help" in f.metadata]


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _kind(hint: Any, metadata: typing.Mapping[str, Any]) -> dict[str, Any]:
    base = _without_none(hint)
    if metadata.get("json"):
        return {"type": arg_types.json_object}
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(base) is tuple:
        return {"type": typing.get_args(base)[0], "nargs": "+"}
    kind: dict[str, Any] = {"type": checked_type(base, metadata)}
    if "choices" in metadata:
        kind["choices"] = metadata["choices"]
    return kind


def _without_none(hint: Any) -> Any:
    """int for `int | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (base,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return base
    return hint


def checked_type(base: type, metadata: typing.Mapping[str, Any]):
    """The field's type, refusing at parse time what its metadata rules out ("min", "max", "above",
    "power_of_two"): a bad flag is one `error:` line, not a failure after the model has loaded."""
    if not {"min", "max", "above", "power_of_two"} & set(metadata):
        return base
    return arg_types.bounded(base, metadata.get("min"), metadata.get("max"), metadata.get("above"),
                             metadata.get("power_of_two", False))
