"""`workbench train EXP.toml`: headless training with seed-style lines, run files and events."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from workbench.engine.console import ConsoleObserver
from workbench.engine.control import RunControl
from workbench.engine.ddp import (
    DDPStrategy,
    SyncedRunControl,
    exit_with_parent,
    inside_torchrun,
    is_lost_peer_error,
)
from workbench.engine.ddp_launch import RUN_DIR_VARIABLE, RankReport, write_rank_report
from workbench.engine.errors import TrainingError, WorkbenchError
from workbench.engine.event_stream import EventWriter
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.presets import resolve_experiment_path
from workbench.engine.reports import BaseObserver, FanOutObserver, TrainingObserver
from workbench.engine.strategy import SingleDeviceStrategy
from workbench.engine.trainer import Trainer


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("train", help="train an experiment headless")
    parser.add_argument("experiment", help="experiment .toml file, or a preset name like toy-mlp")
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
    args.experiment = str(resolve_experiment_path(args.experiment))  # `toy-mlp` names a preset
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
def _stop_on_interrupt(control: RunControl, announce: bool = True) -> Iterator[None]:
    """First Ctrl+C stops after the current batch (files are still written); a second aborts."""

    def handler(signum: int, frame: Any) -> None:
        if control.stop_requested:
            raise KeyboardInterrupt
        if announce:
            print("\nStopping after this batch (Ctrl+C again to abort)...", file=sys.stderr)
        control.request_stop()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(args: argparse.Namespace) -> int:
    experiment = load_with_flags(args)
    if inside_torchrun():
        return train_rank(experiment, args)
    nproc = (
        args.nproc
        if args.nproc is not None
        else (experiment.train.ddp.nproc_per_node if experiment.train.ddp.enabled else None)
    )
    if nproc is not None:
        from workbench.engine.ddp_launch import launch_torchrun

        return int(launch_torchrun(args, nproc, experiment))
    return train_here(experiment, args)


class _FailureRecorder(BaseObserver):
    """Keeps the run's failure message on every rank, for the rank's report to the launcher."""

    def __init__(self, messages: list[str]) -> None:
        self.messages = messages

    def on_failed(self, message: str) -> None:
        self.messages.append(message)


def train_rank(experiment: Experiment, args: argparse.Namespace) -> int:
    """One torchrun rank: rank 0 prints and writes; every rank leaves a report of its ending.

    When our launcher listens (it set the run folder), only rank 0's console speaks and errors
    go into the reports: the launcher shows the root cause once, after the ranks have ended.
    Under a torchrun of the user's own, rank 0 prints as usual and the other ranks print their
    failures prefixed with their rank.
    """
    strategy = DDPStrategy(experiment.train)
    exit_with_parent()
    listening = bool(os.environ.get(RUN_DIR_VARIABLE))
    rank, is_main = strategy.rank, strategy.is_main
    failures: list[str] = []
    try:
        code = train_here(experiment, args, strategy, failures)
        message = failures[0] if failures else None
        write_rank_report(RankReport(rank, code, message, shown=is_main))
        if message is not None and not is_main and not listening:
            print(f"[rank {rank}] Training failed: {message}", file=sys.stderr)
        return code
    except WorkbenchError as exc:
        write_rank_report(RankReport(rank, 2, str(exc)))
        if is_main and not listening:
            raise  # the command line prints it, as in a single-process run
        return 2  # every rank meets the same bad input; it is said once
    except KeyboardInterrupt:
        write_rank_report(RankReport(rank, 1, "interrupted"))
        raise
    except Exception as exc:
        lost = is_lost_peer_error(exc)
        message = _lost_peer_message(exc) if lost else f"unexpected {type(exc).__name__}: {exc}"
        write_rank_report(RankReport(rank, 1, message, lost_peer=lost))
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        if not listening:
            if is_main and not lost:
                raise
            print(f"{'' if is_main else f'[rank {rank}] '}error: {message}", file=sys.stderr)
        return 1
    finally:
        strategy.teardown()  # also when prepare() failed: fit()'s own teardown never ran


def _text_sampler(experiment: Experiment, log: Any) -> TrainingObserver | None:
    """A text run prints a sample of generated text after each epoch (seeded, so runs compare)."""
    from workbench.engine.datasets.text import text_vocabulary
    from workbench.engine.generation import EpochSampler
    from workbench.engine.task import NEXT_TOKEN, task_kind

    if task_kind(experiment.data) != NEXT_TOKEN:
        return None
    vocabulary = text_vocabulary(experiment.data)

    def show(epoch: int, text: str) -> None:
        log(f"Sample after epoch {epoch}:\n{text}")

    return EpochSampler(vocabulary, experiment.data.block_size, show)


def _lost_peer_message(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"lost contact with another training process ({first_line})"


def train_here(
    experiment: Experiment,
    args: argparse.Namespace,
    strategy: SingleDeviceStrategy | None = None,
    failures: list[str] | None = None,
) -> int:
    control = SyncedRunControl(strategy) if isinstance(strategy, DDPStrategy) else RunControl()
    is_main = strategy is None or strategy.is_main
    # Only rank 0 opens the events file: another rank's "w" would truncate what it wrote.
    with _event_stream(args.events if is_main else None) as events:
        console_out = sys.stderr if args.events == "-" else sys.stdout
        observers: list[TrainingObserver] = []
        if is_main:
            observers.append(ConsoleObserver(out=console_out))
            if events is not None:
                observers.append(EventWriter(events))
        if failures is not None:
            observers.append(_FailureRecorder(failures))
        fan_out = FanOutObserver(*observers)
        if is_main:
            sampler = _text_sampler(experiment, fan_out.on_log)
            if sampler is not None:
                fan_out.observers.append(sampler)
        trainer = Trainer(
            experiment,
            observer=fan_out,
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
        with _stop_on_interrupt(control, announce=is_main):
            try:
                summary = trainer.fit()
            except TrainingError:
                return 1
        if args.out is None and is_main:
            print("(no --out folder given: the trained model was not saved)", file=console_out)
        return 0 if summary["status"] != "failed" else 1
