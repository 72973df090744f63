"""Read-only mappings and tuples for the frozen specs, and back to plain TOML-friendly values."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any


class _Frozen(dict[str, Any]):
    """A read-only dict, so that frozen specs stay immutable yet pickle and compare like dicts."""

    def _refuse(self, *args: object, **kwargs: object) -> typing.NoReturn:
        raise TypeError("specs are immutable; use dataclasses.replace() to make a changed copy")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda item: item[0])))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Frozen, (dict(self),))


def frozen_mapping(values: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """Return an immutable copy of `values` (nested lists become tuples)."""
    return _Frozen({key: freeze(value) for key, value in (values or {}).items()})


def freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, Mapping):
        return frozen_mapping(value)
    return value


def thaw(value: Any) -> Any:
    """Turn specs' tuples and frozen mappings back into plain TOML-friendly lists and dicts."""
    if isinstance(value, tuple | list):
        return [thaw(item) for item in value]
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items() if item is not None}
    return value
