"""`workbench export-script EXP.toml -o train.py`: the experiment as a plain PyTorch script."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import load_experiment
from workbench.engine.presets import resolve_experiment_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export-script",
        help="write the experiment as a standalone PyTorch training script",
        description="Write a readable PyTorch script that trains the same model on the same "
        "data with the same settings and seed, and runs without Torch Workbench installed.",
    )
    parser.add_argument("experiment", help="experiment .toml file")
    parser.add_argument(
        "-o", "--output", help="the script to write (e.g. train.py); without it, print it"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite the output file if it exists"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.script_export import export_script, write_script

    experiment = load_experiment(resolve_experiment_path(args.experiment))
    if args.output is None:
        sys.stdout.write(export_script(experiment, args.experiment))
        return 0
    output = Path(args.output)
    if output.exists() and not args.force:
        raise ExperimentError(
            f"{output}: the file exists; choose another name or add --force to overwrite it"
        )
    if output.suffix != ".py":
        raise ExperimentError(f"{output}: a Python script needs the .py suffix, e.g. train.py")
    write_script(experiment, output, args.experiment)
    command = (
        f"torchrun --nproc_per_node={experiment.train.ddp.nproc_per_node} {output}"
        if experiment.train.ddp.enabled
        else f"python {output}"
    )
    print(f"Wrote {output}; run it with: {command}")
    return 0
