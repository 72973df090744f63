"""Command-line overrides of experiment values, validated exactly like the file itself."""

from __future__ import annotations

from typing import Any

from workbench.engine.experiment import Experiment, experiment_from_dict, experiment_to_dict


def with_overrides(experiment: Experiment, overrides: dict[str, Any], source: str) -> Experiment:
    """Return a copy with dotted keys (`train.epochs`) replaced; None values are left alone."""
    values = experiment_to_dict(experiment)
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        table = values
        for key in parents:
            table = table.setdefault(key, {})
        table[last] = value
    return experiment_from_dict(values, source=source)
