"""What a sweep tries: grid and random values of experiment keys, planned into numbered trials."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import MONITORS, Experiment, frozen_mapping
from workbench.engine.overrides import parse_value, with_overrides

SCALES = ("linear", "log", "int")
PRUNERS = ("median",)
SOURCE = "command line"


class SweepError(ExperimentError):
    """A sweep cannot be planned or continued: the message names the flag, key or folder."""


@dataclass(frozen=True)
class RandomRange:
    """`train.lr=1e-4:1e-1:log`: a range a random sweep draws from (`int` draws whole numbers)."""

    key: str
    low: float
    high: float
    scale: str = "linear"

    def draw(self, rng: random.Random) -> float | int:
        if self.scale == "int":
            return rng.randint(int(self.low), int(self.high))
        if self.scale == "log":
            value = 10 ** rng.uniform(math.log10(self.low), math.log10(self.high))
        else:
            value = rng.uniform(self.low, self.high)
        return float(f"{value:.4g}")  # 4 significant digits: readable in the table and the CSV


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: the base experiment, the values to try, how many random draws, how to prune."""

    experiment: Experiment
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    ranges: tuple[RandomRange, ...] = ()
    random_trials: int | None = None
    seed: int = 0
    prune: str | None = None
    metric: str = "val_loss"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.grid) + tuple(r.key for r in self.ranges)

    @property
    def maximize(self) -> bool:
        return self.metric.endswith("accuracy")


@dataclass(frozen=True)
class Trial:
    """One planned run: its number (from 1), the swept values and the experiment they make."""

    number: int
    values: Mapping[str, Any] = field(default_factory=frozen_mapping)
    experiment: Experiment = field(default_factory=Experiment)

    @property
    def name(self) -> str:
        return f"trial-{self.number:03d}"

    def label(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.values.items())


# --------------------------------------------------------------------------- parsing flags


def parse_grid(text: str) -> tuple[str, tuple[Any, ...]]:
    """`train.lr=0.1,0.01` -> ("train.lr", (0.1, 0.01)); commas inside [...] stay in a value."""
    key, values = _split_assignment(text, "--grid", "train.lr=0.1,0.01,0.001")
    items = tuple(parse_value(item.strip()) for item in _split_top_level(values))
    if not items or any(item == "" for item in items):
        raise SweepError(f"{SOURCE}: --grid {text}: give values after '=', separated by commas")
    return key, items


def parse_range(text: str) -> RandomRange:
    """`train.lr=1e-4:1e-1:log` -> RandomRange; the scale is linear (default), log or int."""
    key, spec = _split_assignment(text, "--range", "train.lr=1e-4:1e-1:log")
    parts = spec.split(":")
    scale = parts[2].strip() if len(parts) == 3 else "linear"
    if len(parts) not in (2, 3) or scale not in SCALES:
        raise SweepError(
            f"{SOURCE}: --range {text}: write KEY=LOW:HIGH or KEY=LOW:HIGH:SCALE, "
            f"with SCALE one of {', '.join(SCALES)}"
        )
    low, high = (parse_value(part.strip()) for part in parts[:2])
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise SweepError(f"{SOURCE}: --range {text}: LOW and HIGH must be numbers")
    if not low < high:
        raise SweepError(f"{SOURCE}: --range {text}: LOW must be below HIGH")
    if scale == "log" and low <= 0:
        raise SweepError(f"{SOURCE}: --range {text}: a log range needs LOW above 0")
    if scale == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise SweepError(f"{SOURCE}: --range {text}: an int range needs whole-number bounds")
    return RandomRange(key, float(low), float(high), scale)


def _split_assignment(text: str, flag: str, example: str) -> tuple[str, str]:
    key, sep, values = text.partition("=")
    if not sep or not key.strip():
        raise SweepError(f"{SOURCE}: {flag} {text}: write KEY=VALUES, e.g. {flag} {example}")
    return key.strip(), values


def _split_top_level(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    return [*items, current]


# --------------------------------------------------------------------------- planning


def check_spec(spec: SweepSpec) -> None:
    """Refuse sweeps that make no sense before looking at a single value."""
    keys = spec.keys
    if not keys:
        raise SweepError(
            f"{SOURCE}: nothing to sweep; give --grid KEY=V1,V2 or --range with --random"
        )
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise SweepError(f"{SOURCE}: {repeated[0]} is swept twice; give each key once")
    if spec.ranges and spec.random_trials is None:
        raise SweepError(f"{SOURCE}: --range needs --random N (how many trials to draw)")
    if spec.random_trials is not None and spec.random_trials < 1:
        raise SweepError(f"{SOURCE}: --random {spec.random_trials}: draw at least 1 trial")
    if spec.prune is not None and spec.prune not in PRUNERS:
        raise SweepError(
            f"{SOURCE}: --prune {spec.prune!r} is not known; choose one of {', '.join(PRUNERS)}"
        )
    if spec.metric not in MONITORS:
        raise SweepError(
            f"{SOURCE}: --metric {spec.metric!r} is not known; choose one of {', '.join(MONITORS)}"
        )


def plan_values(spec: SweepSpec) -> list[dict[str, Any]]:
    """The swept values of every trial: the grid's product, or N seeded random draws.

    A random sweep draws each range key from its range and each grid key from its list, in the
    order the flags were given, from `random.Random(seed)`: the same seed draws the same trials.
    """
    check_spec(spec)
    if spec.random_trials is None:
        keys = [key for key, _ in spec.grid]
        return [dict(zip(keys, combo, strict=True)) for combo in _product(spec.grid)]
    rng = random.Random(spec.seed)
    trials = []
    for _ in range(spec.random_trials):
        values: dict[str, Any] = {key: rng.choice(options) for key, options in spec.grid}
        values.update({r.key: r.draw(rng) for r in spec.ranges})
        trials.append(values)
    return trials


def _product(grid: Sequence[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    return list(itertools.product(*(values for _, values in grid)))


def plan_trials(spec: SweepSpec) -> list[Trial]:
    """Every trial with its validated experiment; a bad key or value raises before any runs."""
    trials = []
    for number, values in enumerate(plan_values(spec), start=1):
        experiment = with_overrides(spec.experiment, values, source=SOURCE)
        if experiment.train.ddp.enabled:
            raise SweepError(
                f"{SOURCE}: trial {number} has train.ddp.enabled = true; a sweep runs its trials "
                "one after another in one process, so set it to false"
            )
        trials.append(Trial(number, frozen_mapping(values), experiment))
    return trials
