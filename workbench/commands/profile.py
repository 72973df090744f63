"""`workbench profile EXP.toml`: where a training step's time and memory go, layer by layer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_OK = 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="time, FLOPs and memory of each layer of a training step, and measured what-ifs",
        description="Build the model of EXP.toml (with trained weights if given) and profile "
        "its training step on the experiment's data (random batches of the same shape where "
        "the data is not on this machine): each layer's forward and backward time, share of "
        "the step, FLOPs, parameter and activation memory; the step split into data loading, "
        "forward, backward and optimizer; peak memory; and what-ifs measured side by side "
        "(channels-last, bf16-mixed, torch.compile, a larger batch) as speed ratios. Times "
        "are means over the middle half (by time) of --batches steps after warm-up. Exit "
        "status: 0 done, 1 failed, "
        "2 bad input.",
    )
    parser.add_argument("experiment", metavar="EXP.toml", help="experiment file or preset name")
    parser.add_argument("--weights", metavar="W", help="trained weights (.pth/.safetensors)")
    parser.add_argument(
        "--batches", type=int, default=10, metavar="N", help="measured steps (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, metavar="N", help="untimed steps first (default 3)"
    )
    parser.add_argument(
        "--device", metavar="D", help="cpu, cuda, cuda:N, mps (default: train.device)"
    )
    parser.add_argument(
        "--precision", metavar="P", help="32-true, 16-mixed, bf16-mixed (default: train.precision)"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="CPU threads while profiling (default: torch's)"
    )
    parser.add_argument("--trace", metavar="OUT.json", help="write a Chrome trace of two steps")
    parser.add_argument(
        "--compile", action="store_true", help="also measure torch.compile (slow to compile)"
    )
    parser.add_argument("--no-what-ifs", action="store_true", help="skip the what-ifs")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.experiment import load_experiment
    from workbench.engine.output_files import check_writable
    from workbench.engine.presets import resolve_experiment_path
    from workbench.engine.profiling import ProfileOptions, WhatIfSettings, profile_experiment
    from workbench.engine.profiling.errors import ProfileError
    from workbench.engine.progress_log import StageLog
    from workbench.engine.weights import load_weights_for

    experiment = load_experiment(resolve_experiment_path(args.experiment))
    trace = Path(args.trace).expanduser() if args.trace else None
    if trace is not None:
        check_writable(trace, ProfileError, flag="--trace")
    options = ProfileOptions(
        steps=args.batches,
        warmup=args.warmup,
        device=args.device,
        precision=args.precision,
        trace=trace,
        threads=args.threads,
        what_ifs=not args.no_what_ifs,
        what_if_settings=WhatIfSettings(compile=args.compile),
    )
    weights = load_weights_for(experiment, args.weights) if args.weights else None
    report = profile_experiment(experiment, options, weights=weights, progress=StageLog())
    print(report.text())
    return EXIT_OK
