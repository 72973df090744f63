"""Benchmark: what the Insight tab's training-thread observer costs a run.

Side by side in one run, on the CPU (one thread): each preset trains without any extra
observer, then with the `InsightObserver` the Insight tab registers (model copy and one-batch
probe after each epoch, a gradient norm at most 50 times a second, and for 2-D sets the
boundary after each epoch plus live frames at most 5 times a second while the boundary tab is
on screen), with the boundary tab on screen and hidden. Its findings go out as Qt signals that
nobody drains here, as in a window whose GUI thread is busy.

* moons-mlp with 20,000 points (469 batches an epoch), 2 epochs;
* digits-mlp (1,437 training images, 45 batches an epoch), 5 epochs: short epochs, so the
  per-epoch work weighs the most.

Figures: samples/s inside the epochs (what the run reports) and the whole run's wall time,
which includes the epoch-end work; rounds alternate to share the noise of a shared machine.
Run with `pytest -s -m bench tests/benchmarks/test_bench_insight_panel.py`.
"""

from __future__ import annotations

import dataclasses
import statistics

import pytest
import torch
from PySide6.QtWidgets import QApplication

from tests.conftest import PRESETS
from workbench.controllers.insight_bridge import InsightObserver, InsightRelay
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.trainer import Trainer

ROUNDS = 3


def moons() -> Experiment:
    base = load_experiment(PRESETS / "moons-mlp.toml")
    data = dataclasses.replace(base.data, options={**base.data.options, "n_samples": 20_000})
    return dataclasses.replace(
        base, data=data, train=dataclasses.replace(base.train, epochs=2, device="cpu")
    )


def digits() -> Experiment:
    base = load_experiment(PRESETS / "digits-mlp.toml")
    return dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=5, device="cpu"))


def run(experiment: Experiment, relay: InsightRelay | None) -> tuple[float, float]:
    """(samples/s, wall seconds) of one run, observed through `relay` (None: not observed)."""
    trainer = Trainer(experiment)
    if relay is not None:
        trainer.observer = InsightObserver(trainer, relay)
    summary = trainer.fit()
    return float(summary["samples_per_second"]), float(summary["wall_seconds"])


@pytest.mark.bench
def test_bench_insight_observer_training_cost(qapp: QApplication) -> None:
    torch.set_num_threads(1)
    shown, hidden = InsightRelay(), InsightRelay()
    hidden.live_frames_wanted = False
    print()
    print(f"{'preset':<22}{'Insight':<12}{'samples/s':>12}{'wall s':>10}  vs none (speed / wall)")
    for name, make in (("moons-mlp, 20k points", moons), ("digits-mlp", digits)):
        results: dict[str, list[tuple[float, float]]] = {"none": [], "tab shown": [],
                                                         "tab hidden": []}  # fmt: skip
        for _ in range(ROUNDS):
            results["none"].append(run(make(), None))
            results["tab shown"].append(run(make(), shown))
            results["tab hidden"].append(run(make(), hidden))
        plain = results["none"]
        base_speed = statistics.median(s for s, _ in plain)
        base_wall = statistics.median(w for _, w in plain)
        for label, figures in results.items():
            speed = statistics.median(s for s, _ in figures)
            wall = statistics.median(w for _, w in figures)
            print(
                f"{name:<22}{label:<12}{speed:>12,.0f}{wall:>10.2f}"
                f"{speed / base_speed:>9.0%} / {base_wall / wall:.0%} wall"
            )
