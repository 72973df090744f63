"""`workbench sweep EXP.toml --grid KEY=V1,V2 ... --out DIR`: many trials, one table, resumable."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="train many variations of an experiment; one run folder per trial and sweep.csv",
        description="Train one trial per combination of values (or N random draws) in this "
        "process, each into DIR/trial-NNN, with DIR/sweep.csv as the table. Ctrl+C stops after "
        "the current batch; the same command again skips finished trials and resumes the rest.",
    )
    parser.add_argument(
        "experiment", help="experiment .toml file, or a preset name like digits-mlp"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of an experiment key (train.lr, data.batch_size, model.layers.1.out_features"
        ", ...); repeat for more keys; every combination is a trial",
    )
    parser.add_argument(
        "--random", type=int, metavar="N", help="draw N random trials instead of the whole grid"
    )
    parser.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="KEY=LOW:HIGH[:SCALE]",
        help="a range --random draws from; SCALE linear (default), log or int",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    parser.add_argument(
        "--prune", choices=["median"], help="median stopping: end trials that fall behind"
    )
    parser.add_argument(
        "--metric",
        default="val_loss",
        help="what pruning and the best trial use (default val_loss)",
    )
    parser.add_argument("--epochs", type=int, help="override train.epochs for every trial")
    parser.add_argument("--device", help="override train.device for every trial")
    parser.add_argument("--out", required=True, help="the sweep folder (created, or continued)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.commands.train import _stop_on_interrupt
    from workbench.engine.control import RunControl
    from workbench.engine.experiment import load_experiment
    from workbench.engine.overrides import with_overrides
    from workbench.engine.presets import resolve_experiment_path
    from workbench.engine.sweep import SweepRunner
    from workbench.engine.sweep_console import SweepConsole
    from workbench.engine.sweep_plan import SweepSpec, parse_grid, parse_range

    experiment = with_overrides(
        load_experiment(resolve_experiment_path(args.experiment)),
        {"train.epochs": args.epochs, "train.device": args.device},
        source="command line",
    )
    spec = SweepSpec(
        experiment,
        grid=tuple(parse_grid(text) for text in args.grid),
        ranges=tuple(parse_range(text) for text in args.range),
        random_trials=args.random,
        seed=args.seed,
        prune=args.prune,
        metric=args.metric,
    )
    control = RunControl()
    runner = SweepRunner(spec, args.out, SweepConsole(spec.keys, spec.metric), control)
    runner.prepare()  # every trial is checked before the first one runs
    with _stop_on_interrupt(control):
        results = runner.run()
    print(f"Table: {runner.out_dir / 'sweep.csv'}")
    finished = [r for r in results if r.finished]
    return 1 if finished and all(r.status == "failed" for r in finished) else 0
