"""Which swept settings matter: rank correlation and random-forest importance for a metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.engine.sweep import TrialResult

MIN_TRIALS = 3  # fewer trials say nothing about importance


@dataclass(frozen=True)
class Importance:
    """One swept key: its Spearman correlation with the metric (None for text values or when
    undefined) and its share of a random forest's impurity decrease (None with too few trials)."""

    key: str
    correlation: float | None
    forest: float | None


def trial_metric(result: TrialResult, metric: str) -> float | None:
    """The trial's best value of `metric` over its epochs (best_val_*), else its final value."""
    best = {"val_accuracy": result.best_val_accuracy, "val_loss": result.best_val_loss}.get(metric)
    value = best if best is not None else result.final.get(metric)
    return value if value is not None and math.isfinite(value) else None


def is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def encode(values: Sequence[Any]) -> np.ndarray:
    """Numbers as they are; anything else (optimizer names, booleans) as the order first seen."""
    if is_numeric(values):
        return np.asarray(values, dtype=float)
    seen: dict[str, int] = {}
    return np.asarray([seen.setdefault(repr(v), len(seen)) for v in values], dtype=float)


def parameter_importance(
    results: Sequence[TrialResult], keys: Sequence[str], metric: str, seed: int = 0
) -> list[Importance]:
    """Importance of every swept key for `metric`, over the trials that reported it."""
    scored = [(r, v) for r in results if (v := trial_metric(r, metric)) is not None]
    y = np.asarray([v for _, v in scored], dtype=float)
    columns = [[r.trial.values.get(key) for r, _ in scored] for key in keys]
    correlations = [_correlation(column, y) for column in columns]
    forest: list[float | None] = [None] * len(keys)
    if len(scored) >= MIN_TRIALS and keys and np.ptp(y) > 0:
        from sklearn.ensemble import (
            RandomForestRegressor,  # scikit-learn loads in ~1.5 s: not at start-up
        )

        x = np.column_stack([encode(column) for column in columns])
        model = RandomForestRegressor(n_estimators=100, random_state=seed)
        model.fit(x, y)
        forest = [float(share) for share in model.feature_importances_]
    return [
        Importance(key, correlation, share)
        for key, correlation, share in zip(keys, correlations, forest, strict=True)
    ]


def _correlation(column: Sequence[Any], y: np.ndarray) -> float | None:
    if len(column) < MIN_TRIALS or not is_numeric(column):
        return None
    x = np.asarray(column, dtype=float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return None  # a constant has no correlation
    value = float(np.corrcoef(ranks(x), ranks(y))[0, 1])  # Spearman: Pearson on the ranks
    return value if math.isfinite(value) else None


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values), dtype=float)
    ranked[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked
