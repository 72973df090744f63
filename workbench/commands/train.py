"""`workbench train EXP.toml`: headless training with seed-style lines, run files and events."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from workbench.engine.console import ConsoleObserver
from workbench.engine.control import RunControl
from workbench.engine.errors import DatasetError, OutputError, TrainingError, WorkbenchError
from workbench.engine.event_stream import EventWriter
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.presets import resolve_experiment_path
from workbench.engine.reports import BaseObserver, FanOutObserver, TrainingObserver

if TYPE_CHECKING:
    from workbench.engine.insight.doctor import TrainingDoctor
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
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="only deterministic algorithms (torch.use_deterministic_algorithms); "
        "measures and prints what it costs",
    )
    parser.add_argument(
        "--oom-rescue",
        action="store_true",
        help="on a CUDA out-of-memory error, halve the batch and double accumulation "
        "(the same effective batch) and go on",
    )
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
        try:
            stream = open(target, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise OutputError(
                f"--events {target}: cannot write it ({exc.strerror or exc}); give a file path "
                "you can write to, or - for stdout"
            ) from None
        with stream:
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
    from workbench.engine.ddp import inside_torchrun

    experiment = load_with_flags(args)
    if args.out is not None and args.resume is None:
        refuse_another_runs_folder(Path(args.out))
    if inside_torchrun():
        return train_rank(experiment, args)
    nproc = (
        args.nproc
        if args.nproc is not None
        else (experiment.train.ddp.nproc_per_node if experiment.train.ddp.enabled else None)
    )
    if nproc is not None:
        from workbench.engine.ddp_launch import launch_torchrun

        if getattr(args, "deterministic", False) or getattr(args, "oom_rescue", False):
            raise WorkbenchError(
                "command line: --deterministic and --oom-rescue work in single-process runs; "
                "leave out --nproc (and train.ddp.enabled) to use them"
            )

        return int(launch_torchrun(args, nproc, experiment))
    if getattr(args, "deterministic", False):
        from workbench.engine.reproducibility import deterministic_algorithms

        with deterministic_algorithms():
            return train_here(experiment, args)
    return train_here(experiment, args)


def refuse_another_runs_folder(out: Path) -> None:
    """A run never mixes its files with another's: a used --out needs --resume or a new folder."""
    from workbench.engine.run_files import earlier_run_files

    found = earlier_run_files(out)
    if found:
        raise OutputError(
            f"--out {out}: already holds another run's files ({', '.join(found)}); choose a "
            f"new folder, or continue that run with --resume {out / 'checkpoint.pt'}"
        )


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
    from workbench.engine.ddp import DDPStrategy, exit_with_parent, is_lost_peer_error
    from workbench.engine.ddp_launch import RUN_DIR_VARIABLE, RankReport, write_rank_report

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
    from workbench.engine.ddp import DDPStrategy, SyncedRunControl
    from workbench.engine.insight.doctor import TrainingDoctor
    from workbench.engine.trainer import Trainer

    control = SyncedRunControl(strategy) if isinstance(strategy, DDPStrategy) else RunControl()
    is_main = strategy is None or strategy.is_main
    doctor = TrainingDoctor()
    # Only rank 0 opens the events file: another rank's "w" would truncate what it wrote.
    with _event_stream(args.events if is_main else None) as events:
        console_out = sys.stderr if args.events == "-" else sys.stdout
        observers: list[TrainingObserver] = []
        if is_main:
            observers += [ConsoleObserver(out=console_out), doctor]
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
        trainer.run_flags = run_flags(args)
        try:
            trainer.prepare()
            fit = _reproducible_fit(trainer, args, console_out if is_main else None)
        except WorkbenchError as exc:
            if is_main and events is not None:
                EventWriter(events).on_failed(str(exc))
            raise
        with _stop_on_interrupt(control, announce=is_main):
            try:
                summary = fit()
            except TrainingError:
                _print_problems(doctor, console_out)
                return 1
            except (OutputError, DatasetError):
                return 2  # the console observer has said what to do
        _print_problems(doctor, console_out)
        if args.out is None and is_main:
            print("(no --out folder given: the trained model was not saved)", file=console_out)
        return 0 if summary["status"] != "failed" else 1


def _print_problems(doctor: TrainingDoctor, out: IO[str]) -> None:
    """The training doctor's serious findings (an exploded loss, ...), so no run looks fine."""
    from workbench.engine.insight.doctor import PROBLEM

    for finding in doctor.diagnoses:
        if finding.severity == PROBLEM:
            print(f"Doctor: {finding.text}", file=out)


def run_flags(args: argparse.Namespace) -> dict[str, Any]:
    """How this run was started, for the run folder's run.json (and `workbench rerun`)."""
    names = ("epochs", "device", "precision", "accumulate", "nproc", "resume")
    flags: dict[str, Any] = {"command": "train"}
    flags.update({name: getattr(args, name, None) for name in names})
    flags["deterministic"] = bool(getattr(args, "deterministic", False))
    flags["oom_rescue"] = bool(getattr(args, "oom_rescue", False))
    return flags


def _reproducible_fit(
    trainer: Trainer, args: argparse.Namespace, console_out: IO[str] | None
) -> Callable[[], dict[str, Any]]:
    """The fit to run: with determinism's cost measured first, and with the OOM rescue."""
    if getattr(args, "deterministic", False):
        from workbench.engine.reproducibility import measure_determinism_cost

        cost = measure_determinism_cost(trainer)
        trainer.run_flags["determinism_cost"] = round(cost.ratio, 3)
        if console_out is not None:
            print(cost.line(), file=console_out, flush=True)
    if not getattr(args, "oom_rescue", False):
        return trainer.fit
    from workbench.engine.oom_rescue import fit_with_oom_rescue
    from workbench.engine.trainer import Trainer

    def rebuild(experiment: Experiment, resume: str | Path | None) -> Trainer:
        smaller = Trainer(
            experiment,
            observer=trainer.observer,
            control=trainer.control,
            out_dir=trainer.out_dir,
            resume_from=resume,
        )
        smaller.prepare()
        return smaller

    return lambda: fit_with_oom_rescue(trainer, rebuild)
