"""`workbench summary EXP.toml`: the model as print(model) shows it, a per-layer table, the total."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.presets import resolve_experiment_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("summary", help="print the model, a per-layer table and totals")
    parser.add_argument("experiment", help="experiment .toml file, or a preset name like mnist-cnn")
    parser.set_defaults(run=run)


def experiment_summary(experiment: Experiment) -> str:
    from workbench.engine.run_notes import experiment_summary as summary

    return summary(experiment)


def print_summary(path: str | Path) -> int:
    experiment = load_experiment(resolve_experiment_path(str(path)))
    print(experiment_summary(experiment))
    print()
    print("\n".join(memory_lines(experiment)))
    return 0


def memory_lines(experiment: Experiment) -> list[str]:
    """The estimated peak training memory against the device's free memory (will it fit)."""
    from workbench.engine.errors import WorkbenchError
    from workbench.engine.memory_estimate import estimate_training_memory, fit_verdict, free_memory

    try:
        estimate = estimate_training_memory(experiment)
    except WorkbenchError as exc:
        return [f"Memory estimate unavailable: {exc}"]
    except Exception as exc:  # noqa: BLE001 - a model the fake-tensor trace cannot run
        return [f"Memory estimate unavailable: {type(exc).__name__}: {str(exc).splitlines()[0]}"]
    from workbench.engine.devices import resolve_device

    free = free_memory(resolve_device(estimate.device))
    return [*estimate.lines(), f"  {fit_verdict(estimate, free)[1]}"]


def run(args: argparse.Namespace) -> int:
    return print_summary(args.experiment)
