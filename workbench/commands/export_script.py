"""`workbench export-script EXP.toml -o train.py`: the experiment as a plain PyTorch script."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.engine.errors import ExperimentError
from workbench.engine.experiment import Experiment, load_experiment
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
        if experiment.model.from_code:
            print(_companion_note(experiment), file=sys.stderr)
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
    copied = " and a copy of the model's file next to it" if experiment.model.from_code else ""
    print(f"Wrote {output}{copied}; run it with: {command}")
    return 0


def _companion_note(experiment: Experiment) -> str:
    """Where the printed script finds the user's model (only -o copies the file for it)."""
    from workbench.engine.experiment_model import build_experiment_model
    from workbench.engine.script_export.own_model import companion_files

    files = companion_files(build_experiment_model(experiment))
    if not files:
        return "note: the script imports the model's module; it must be importable where it runs"
    return (
        "note: put "
        + ", ".join(f"a copy of {source} as {name}" for name, source in files.items())
        + " next to the script (-o FILE does that)"
    )
