"""Checks the parameters a user gave a layer: known names, types, ranges, choices, and defaults."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from workbench.engine.layer_rules import show
from workbench.engine.layers import LayerType, ParamSpec


def checked_arguments(kind: LayerType, params: Mapping[str, Any]) -> dict[str, Any]:
    """Every constructor argument: the user's values checked, torch's defaults for the rest.

    None counts as not set (inferred sizes stay None for the rules to fill in). A problem is a
    ValueError whose message says what is wrong and how to fix it.
    """
    for name in params:
        if name not in kind.param_names:
            raise ValueError(unknown_param(kind, name))
    args: dict[str, Any] = {}
    for param in kind.params:
        value = params.get(param.name)
        if value is None and param.required:
            raise ValueError(
                f"{param.name} is required; e.g. {param.name} = {show(param.suggested)}"
            )
        args[param.name] = param.default if value is None else _checked(param, value, kind)
    return args


def unknown_param(kind: LayerType, name: str) -> str:
    if not kind.params:
        return f"{kind.name} takes no parameters; remove {name!r}"
    close = difflib.get_close_matches(name, kind.param_names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown parameter {name!r}{hint}; {kind.name} takes: {', '.join(kind.param_names)}"


def _checked(param: ParamSpec, value: Any, kind: LayerType) -> Any:
    """The value as the constructor wants it, or ValueError with the reason and the fix."""
    shown = f"{param.name} = {show(value)}"
    if param.kind == "text" or (param.kind == "bool_or_text" and not isinstance(value, bool)):
        if not isinstance(value, str) or not value.strip():
            allowed = "true, false or " if param.kind == "bool_or_text" else ""
            example = param.default if param.suggested is None else param.suggested
            raise ValueError(f'{shown} is not {allowed}a name in quotes, e.g. "{example}"')
        return value
    if param.kind == "bool_or_text":
        return value
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{shown} is not true or false")
        return value
    if param.kind == "int" and isinstance(value, str) and value not in param.choices:
        words = " or ".join(repr(choice) for choice in param.choices)
        raise ValueError(f"{shown} is not a whole number" + (f" or {words}" if words else ""))
    if param.kind == "choice" or (isinstance(value, str) and param.choices):
        if value not in param.choices:
            close = difflib.get_close_matches(str(value), param.choices, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(
                f"{shown} is not allowed{hint}; choose one of {', '.join(param.choices)}"
            )
        return value
    if param.kind == "float":
        if not is_int(value) and not isinstance(value, float):
            raise ValueError(f"{shown} is not a number")
        value = float(value)
        numbers: tuple[float, ...] = (value,)
    elif is_int(value):
        numbers = (value,)
    elif param.kind == "int_or_tuple" and _is_int_tuple(value, kind.spatial_dims):
        value = numbers = tuple(value)
    else:
        raise ValueError(f"{shown} is not {_int_kind_text(param, kind.spatial_dims)}")
    check_range(param, shown, numbers)
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_int_tuple(value: Any, length: int) -> bool:
    if not isinstance(value, tuple | list) or not value:
        return False
    return all(is_int(item) for item in value) and length in (0, len(value))


def _int_kind_text(param: ParamSpec, length: int) -> str:
    if param.kind == "int":
        return "a whole number"
    count = "whole numbers" if length == 0 else f"{length} whole number{'s' * (length != 1)}"
    return f"a whole number or a list of {count}"


def check_range(param: ParamSpec, shown: str, numbers: tuple[float, ...]) -> None:
    low, high = param.minimum, param.maximum
    if all((low is None or n >= low) and (high is None or n <= high) for n in numbers):
        return
    if high is None:
        bound = f"of at least {low:g}"
    elif low is None:
        bound = f"of at most {high:g}"
    else:
        bound = f"between {low:g} and {high:g}"
    raise ValueError(f"{shown} is out of range; use a value {bound}")
