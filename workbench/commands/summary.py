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
    print(experiment_summary(load_experiment(resolve_experiment_path(str(path)))))
    return 0


def run(args: argparse.Namespace) -> int:
    return print_summary(args.experiment)
