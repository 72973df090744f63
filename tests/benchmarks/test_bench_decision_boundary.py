"""Benchmark: what a live decision boundary costs, per refresh and in training throughput.

Side by side in one run, on the moons-mlp preset (2 -> 16 -> 16 -> 2, Tanh, Adam) with 20,000
points (15,000 training, batch 32: 469 batches an epoch), on the CPU:

* refresh cost: `decision_boundary` on a 200x200 grid (40,000 points, one batched forward under
  inference_mode), and turning the grid into the RGBA field the view draws (`grid_image`);
  milliseconds per refresh, median of 30.
* training throughput (samples/s over 2 epochs) without a live boundary, then with
  `LiveBoundary` refreshing every 50 and every 10 batches (no time cap), and with the window's
  default (every 10 batches, at most 5 refreshes a second). Rounds alternate to share noise.

Run with `pytest -s -m bench tests/benchmarks/test_bench_decision_boundary.py`.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import pytest
import torch

from tests.conftest import PRESETS
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.insight.decision_boundary import (
    LiveBoundary,
    decision_boundary,
    padded_ranges,
)
from workbench.engine.reports import BaseObserver
from workbench.engine.trainer import Trainer

POINTS = 20_000
EPOCHS = 2
ROUNDS = 2
SETTINGS = {  # name: (every_n_batches, min_interval_seconds) or None for no live boundary
    "no live boundary": None,
    "every 50 batches": (50, 0.0),
    "every 10 batches": (10, 0.0),
    "every 10, max 5/s (default)": (10, 0.2),
}


def experiment() -> Experiment:
    base = load_experiment(PRESETS / "moons-mlp.toml")
    data = dataclasses.replace(base.data, options={**base.data.options, "n_samples": POINTS})
    train = dataclasses.replace(base.train, epochs=EPOCHS, device="cpu")
    return dataclasses.replace(base, data=data, train=train)


def throughput(setting: tuple[int, float] | None) -> tuple[float, int]:
    trainer = Trainer(experiment())
    trainer.prepare()
    live = None
    if setting is not None:
        live = LiveBoundary(
            lambda: trainer.model,
            *padded_ranges(trainer.loaders.train.x),
            every_n_batches=setting[0],
            min_interval_seconds=setting[1],
        )
    trainer.observer = live or BaseObserver()
    summary = trainer.fit()
    return float(summary["samples_per_second"]), live.refreshes if live else 0


@pytest.mark.bench
def test_bench_decision_boundary_refresh_and_training_cost() -> None:
    torch.set_num_threads(1)
    trainer = Trainer(experiment())
    trainer.prepare()
    ranges = padded_ranges(trainer.loaders.train.x)
    from workbench.ui.insight.decision_boundary_view import grid_image  # numpy only, no window

    compute, convert = [], []
    for _ in range(30):
        started = time.perf_counter()
        grid = decision_boundary(trainer.model, *ranges, resolution=200)
        middle = time.perf_counter()
        grid_image(grid)
        compute.append(middle - started)
        convert.append(time.perf_counter() - middle)
    print(f"\n200x200 decision boundary of the moons MLP ({torch.get_num_threads()} thread):")
    print(f"  compute (one batched forward): {1000 * statistics.median(compute):7.2f} ms/refresh")
    print(f"  grid -> RGBA field:            {1000 * statistics.median(convert):7.2f} ms/refresh")

    results: dict[str, list[float]] = {name: [] for name in SETTINGS}
    refreshes: dict[str, int] = {}
    for _ in range(ROUNDS):
        for name, setting in SETTINGS.items():
            speed, count = throughput(setting)
            results[name].append(speed)
            refreshes[name] = count
    baseline = statistics.median(results["no live boundary"])
    print(f"\nTraining throughput, {POINTS:,} points, {EPOCHS} epochs, median of {ROUNDS} rounds:")
    for name, speeds in results.items():
        speed = statistics.median(speeds)
        print(
            f"  {name:30s} {speed:10,.0f} samples/s  {speed / baseline:6.1%} of baseline"
            f"  ({refreshes[name]} refreshes)"
        )
    assert all(speeds for speeds in results.values())
