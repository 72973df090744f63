"""An in-process run: the engine's Trainer on a worker thread, ending in a RunResult built there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workbench.controllers.jobs import JobRunner, one_line
from workbench.controllers.run_reports import SignalReporter
from workbench.engine.control import RunControl
from workbench.engine.cpu_threads import lower_this_threads_priority, release_idle_cpu_threads
from workbench.engine.errors import WorkbenchError
from workbench.engine.reports import FanOutObserver, TrainingObserver
from workbench.engine.run_history import RunResult, cpu_copy, epoch_reports, frozen_summary
from workbench.engine.trainer import Trainer

JOB = "training"
# Makes the run's Trainer: `Trainer`, or a stand-in in a controller test.
MakeTrainer = Callable[..., Trainer]
# Called with each new run's Trainer (not yet prepared); returns an observer for that run, or None.
ObserverFactory = Callable[[Trainer], TrainingObserver | None]


def _unexpected(detail: str) -> WorkbenchError:
    return WorkbenchError(f"Training stopped by an unexpected error: {detail}")


class LocalRun:
    """One in-process run on the session's job runner; `control` pauses, steps and stops it."""

    def __init__(
        self,
        jobs: JobRunner,
        reporter: SignalReporter,
        trainer: Trainer,
        extra_observers: Sequence[TrainingObserver],
        control: RunControl,
        project: str = "",
    ) -> None:
        self.reporter, self.trainer, self.control = reporter, trainer, control
        self.extra_observers, self.project = list(extra_observers), project
        release_idle_cpu_threads()  # the GUI thread's idle team would slow the training thread's
        jobs.start(JOB, self.train, _unexpected)

    def train(self) -> RunResult:
        """The job, on the worker thread: prepare, fit, and the RunResult of however it ended."""
        # First, before any tensor work: the OpenMP workers this thread starts inherit it.
        lower_this_threads_priority()
        trainer, reporter = self.trainer, self.reporter
        # The reporter goes first, so the window hears of an epoch before any extra observer's
        # work on it; extra observers run here, on the training thread, between batches.
        extra = self.extra_observers
        trainer.observer = FanOutObserver(reporter, *extra) if extra else reporter
        summary: dict[str, Any] | None = None
        message = ""
        try:
            trainer.prepare()  # loading data can take seconds: never on the GUI thread
            summary = trainer.fit()
        except WorkbenchError as exc:
            message = str(exc)
            if not trainer.failed_reported:
                reporter.on_failed(message)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a run_failed signal
            message = f"Training stopped by an unexpected error: {one_line(exc)}"
            reporter.on_failed(message)
        finally:
            reporter.pacer.flush()
        return self.result(summary, message)

    def result(self, summary: dict[str, Any] | None, message: str) -> RunResult:
        trainer = self.trainer
        experiment = trainer.experiment
        history = epoch_reports(trainer.history, experiment.train.epochs)
        model = getattr(trainer, "model", None)  # only once prepared
        if summary is None:
            summary = {"status": "failed", "epochs_completed": len(history)}
            built = getattr(trainer, "built", None)
            if built is not None:
                summary["parameters"] = built.total_parameters
        ended = "failed" if message else str(summary.get("status") or "completed")
        state = cpu_copy(model.state_dict()) if model is not None and not message else None
        return RunResult(
            experiment=experiment,
            summary=frozen_summary(summary),
            history=history,
            state_dict=state,
            folder=Path(trainer.out_dir) if trainer.out_dir is not None else None,
            ended=ended,
            message=message,
            project=self.project,
        )
