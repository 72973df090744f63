"""`workbench rerun DIR`: train a run folder's experiment again, with its flags, into a new folder."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rerun",
        help="repeat a run from its folder (experiment.toml and run.json) into a new folder",
        description="Train the experiment a run folder holds again, with the flags it was "
        "started with, say what differs from the machine it ran on, and compare the results.",
    )
    parser.add_argument("run_dir", metavar="DIR", help="a folder `workbench train --out` wrote")
    parser.add_argument("--out", help="the new run folder (default: DIR-rerun, DIR-rerun-2, ...)")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="only deterministic algorithms, also when the run did not use them",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from workbench.commands import train
    from workbench.engine.errors import ExperimentError
    from workbench.engine.reproducibility import environment_differences, read_run_record
    from workbench.engine.run_compare import compare_runs, free_folder

    folder = Path(args.run_dir)
    if not (folder / "experiment.toml").is_file():
        raise ExperimentError(
            f"{folder}: not a run folder (no experiment.toml); give a folder that "
            "`workbench train --out` wrote"
        )
    record = read_run_record(folder)
    flags: dict[str, Any] = (record or {}).get("flags") or {}
    out = Path(args.out) if args.out else free_folder(folder)
    if record is None:
        print(f"{folder} has no run.json (an older run): versions and flags unknown")
    else:
        for difference in environment_differences(record, args.device):
            print(f"Note: {difference}; the numbers may differ")
    deterministic = bool(args.deterministic or flags.get("deterministic"))
    print(
        f"Repeating {folder} into {out}{' with deterministic algorithms' if deterministic else ''}"
    )
    train_args = argparse.Namespace(
        experiment=str(folder / "experiment.toml"),  # already holds the run's overrides
        out=str(out),
        epochs=None,
        device=args.device,
        precision=None,
        accumulate=None,
        nproc=flags.get("nproc"),
        resume=None,  # the whole run again, from its first epoch
        events=None,
        deterministic=deterministic,
        oom_rescue=bool(flags.get("oom_rescue")),
    )
    code = int(train.run(train_args))
    if code == 0:
        for line in compare_runs(folder, out):
            print(line)
    return code
