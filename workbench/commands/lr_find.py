"""`workbench lr-find EXP.toml`: an exponential learning-rate ramp and a suggested rate, with why."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lr-find",
        help="find a learning rate: a short exponential ramp, the smoothed loss, a suggestion",
        description="Train a few steps while the learning rate grows exponentially, print the "
        "smoothed loss against the rate and suggest a rate. Nothing is saved and the model is "
        "left as it was.",
    )
    parser.add_argument(
        "experiment", help="experiment .toml file, or a preset name like digits-mlp"
    )
    parser.add_argument("--start", type=float, default=1e-7, help="first rate (default 1e-7)")
    parser.add_argument("--end", type=float, default=10.0, help="last rate (default 10)")
    parser.add_argument(
        "--steps", type=int, default=100, help="optimizer steps, at most 100 (default 100)"
    )
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument("--csv", metavar="FILE", help="also write every step (lr, loss, smoothed)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from workbench.engine.atomic import atomic_write_text
    from workbench.engine.experiment import load_experiment
    from workbench.engine.lr_finder import check_ramp, find_lr_for_experiment
    from workbench.engine.overrides import with_overrides
    from workbench.engine.presets import resolve_experiment_path

    check_ramp(args.start, args.end, args.steps)
    path = resolve_experiment_path(args.experiment)
    experiment = with_overrides(
        load_experiment(path), {"train.device": args.device}, source="command line"
    )
    train = experiment.train
    print(
        f"Learning-rate finder: {args.steps} steps from {args.start:g} to {args.end:g} "
        f"({train.optimizer}, batch {experiment.data.batch_size}"
        f"{f' x {train.accumulate_grad_batches}' if train.accumulate_grad_batches > 1 else ''})",
        flush=True,
    )
    result, trainer = find_lr_for_experiment(
        experiment, start=args.start, end=args.end, steps=args.steps
    )
    print(f"on {trainer.device_info.name}; the ramp {result.ended}")
    print(result.table())
    if args.csv:
        atomic_write_text(Path(args.csv), result.csv())
        print(f"Every step: {args.csv}")
    if result.suggestion is None:
        print(f"No suggestion: {result.reason}")
        return 1
    print(f"Suggested learning rate: {result.suggestion:.3g} ({result.reason})")
    print(
        f"The model and optimizer were restored. To use it: train.lr = {result.suggestion:.3g} "
        f"in {args.experiment} (now {train.lr:g})"
    )
    return 0
