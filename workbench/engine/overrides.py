"""Command-line overrides of experiment values, validated exactly like the file itself."""

from __future__ import annotations

import tomllib
from typing import Any

from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import Experiment, experiment_from_dict, experiment_to_dict


def with_overrides(experiment: Experiment, overrides: dict[str, Any], source: str) -> Experiment:
    """Return a copy with dotted keys (`train.epochs`) replaced; None values are left alone.

    A number in the path picks a list entry: `model.layers.1.out_features` is the second layer's.
    """
    values = experiment_to_dict(experiment)
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        container: Any = values
        for depth, key in enumerate(parents):
            container = _child(container, key, ".".join(parents[: depth + 1]), source)
        _assign(container, last, value, dotted, source)
    return experiment_from_dict(values, source=source)


def _child(container: Any, key: str, path: str, source: str) -> Any:
    if isinstance(container, list):
        return container[_index(container, key, path, source)]
    if not isinstance(container, dict):
        raise ExperimentError(f"{source}: {path}: is a value, not a table; it has no keys")
    child = container.setdefault(key, {})
    if not isinstance(child, dict | list):
        raise ExperimentError(f"{source}: {path}: is a value, not a table; it has no keys")
    return child


def _assign(container: Any, key: str, value: Any, path: str, source: str) -> None:
    if isinstance(container, list):
        container[_index(container, key, path, source)] = value
    elif isinstance(container, dict):
        container[key] = value
    else:
        raise ExperimentError(f"{source}: {path}: its parent is a value, not a table")


def _index(items: list[Any], key: str, path: str, source: str) -> int:
    if not key.isdigit() or int(key) >= len(items):
        raise ExperimentError(
            f"{source}: {path}: no entry {key!r}; the list has {len(items)} entries, "
            f"numbered 0 to {len(items) - 1}"
        )
    return int(key)


def parse_value(text: str) -> Any:
    """A command-line value as TOML reads it (`0.1`, `64`, `true`, `[1, 28, 28]`); else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
