"""`workbench fit-batch EXP.toml`: the largest training batch size that fits the device."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fit-batch",
        help="find the largest batch size that fits (real steps on a GPU, estimated on the CPU)",
        description="Double the batch size until it no longer fits, then bisect. On CUDA and MPS "
        "each size runs two real training steps and out-of-memory errors are caught; on the CPU "
        "the memory estimate is compared with the free RAM.",
    )
    parser.add_argument("experiment", help="experiment .toml file, or a preset name like mnist-cnn")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument(
        "--max", type=int, metavar="N", help="search no further than N (default: the training set)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.batch_fit import cpu_budget_text, find_batch_size
    from workbench.engine.errors import ExperimentError
    from workbench.engine.experiment import load_experiment
    from workbench.engine.memory_estimate import estimate_training_memory, format_bytes
    from workbench.engine.overrides import with_overrides
    from workbench.engine.presets import resolve_experiment_path

    if args.max is not None and args.max < 1:
        raise ExperimentError(f"command line: --max {args.max}: give a batch size of at least 1")
    experiment = with_overrides(
        load_experiment(resolve_experiment_path(args.experiment)),
        {"train.device": args.device},
        source="command line",
    )

    def show(size: int, ok: bool) -> None:
        print(f"  batch {size}: {'fits' if ok else 'does not fit'}", flush=True)

    print(f"Searching the largest batch size for {args.experiment}...", flush=True)
    found = find_batch_size(experiment, on_try=show, upper=args.max)
    how = (
        f"measured on {found.device}: two real training steps per size, out-of-memory caught"
        if found.measured
        else f"estimated on {found.device}, against {cpu_budget_text()} (the CPU has no "
        "out-of-memory error to catch: it would swap)"
    )
    if found.batch_size is None:
        print(f"Not even a batch of 1 fits ({how})")
        return 1
    print(f"Largest batch size that fits: {found.batch_size} ({how})")
    if found.limit:
        print(f"  the search stopped there: {found.limit}")
    now = experiment.data.batch_size
    print(f"To use it: data.batch_size = {found.batch_size} (now {now})")
    val = estimate_training_memory(experiment, batch_size=found.batch_size)
    print(
        f"  the validation pass at data.val_batch_size {val.val_batch_size} needs about "
        f"{format_bytes(val.eval_peak)}"
    )
    return 0
