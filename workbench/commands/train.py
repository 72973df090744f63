"""`workbench train EXP.toml`: headless training with seed-style lines, run files and events."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from workbench.engine.console import ConsoleObserver
from workbench.engine.control import RunControl
from workbench.engine.errors import TrainingError, WorkbenchError
from workbench.engine.event_stream import EventWriter
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.reports import FanOutObserver, TrainingObserver
from workbench.engine.trainer import Trainer


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="train an experiment headless")
    parser.add_argument("experiment", help="experiment .toml file")
    parser.add_argument("--out", help="folder for model.pth, checkpoint.pt, metrics.csv, ...")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N, mps)")
    parser.add_argument(
        "--precision", help="override train.precision (32-true, 16-mixed, bf16-mixed)"
    )
    parser.add_argument("--accumulate", type=int, help="override train.accumulate_grad_batches")
    parser.add_argument("--nproc", type=int, help="train with DDP on N processes (torchrun)")
    parser.add_argument("--resume", help="continue from a checkpoint.pt of an earlier run")
    parser.add_argument("--events", help="write JSON-line events to FILE, or - for stdout")
    parser.set_defaults(run=run)


def load_with_flags(args: argparse.Namespace) -> Experiment:
    experiment = load_experiment(args.experiment)
    return with_overrides(
        experiment,
        {
            "train.epochs": args.epochs,
            "train.device": args.device,
            "train.precision": args.precision,
            "train.accumulate_grad_batches": args.accumulate,
        },
        source="command line",
    )


@contextlib.contextmanager
def _event_stream(target: str | None) -> Iterator[IO[str] | None]:
    if target is None:
        yield None
    elif target == "-":
        yield sys.stdout
    else:
        with open(target, "w", encoding="utf-8") as stream:
            yield stream


@contextlib.contextmanager
def _stop_on_interrupt(control: RunControl) -> Iterator[None]:
    """First Ctrl+C stops after the current batch (files are still written); a second aborts."""

    def handler(signum: int, frame: Any) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        print("\nStopping after this batch (Ctrl+C again to abort)...", file=sys.stderr)
        control.request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(args: argparse.Namespace) -> int:
    experiment = load_with_flags(args)
    nproc = (
        args.nproc
        if args.nproc is not None
        else (experiment.train.ddp.nproc_per_node if experiment.train.ddp.enabled else None)
    )
    if nproc is not None and not _inside_torchrun():
        from workbench.engine.ddp_launch import launch_torchrun

        return int(launch_torchrun(args, nproc))
    return train_here(experiment, args)


def _inside_torchrun() -> bool:
    import os

    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def train_here(experiment: Experiment, args: argparse.Namespace, strategy: Any = None) -> int:
    control = RunControl()
    with _event_stream(args.events) as events:
        console_out = sys.stderr if events is sys.stdout else sys.stdout
        observers: list[TrainingObserver] = []
        is_main = strategy is None or strategy.is_main
        if is_main:
            observers.append(ConsoleObserver(out=console_out))
            if events is not None:
                observers.append(EventWriter(events))
        trainer = Trainer(
            experiment,
            observer=FanOutObserver(*observers),
            control=control,
            out_dir=Path(args.out) if args.out else None,
            resume_from=args.resume,
            strategy=strategy,
        )
        try:
            trainer.prepare()
        except WorkbenchError as exc:
            if is_main and events is not None:
                EventWriter(events).on_failed(str(exc))
            raise
        with _stop_on_interrupt(control):
            try:
                summary = trainer.fit()
            except TrainingError:
                return 1
        if args.out is None and is_main:
            print("(no --out folder given: the trained model was not saved)", file=console_out)
        return 0 if summary["status"] != "failed" else 1
