"""The run session: starts an in-process or a DDP run, and ends every run with one RunResult."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from workbench.controllers import local_run
from workbench.controllers.jobs import JobRunner, register_owner
from workbench.controllers.local_run import LocalRun, MakeTrainer, ObserverFactory
from workbench.controllers.process_run import KILL_GRACE_SECONDS, STOP_GRACE_SECONDS, ProcessRun
from workbench.controllers.run_reports import SignalReporter
from workbench.engine.control import RunControl
from workbench.engine.experiment import Experiment
from workbench.engine.reports import BatchReport, EpochReport, RunStarted
from workbench.engine.run_history import (
    RUN_LABEL,
    RunResult,
    frozen_summary,
    read_run,
    write_run_label,
)
from workbench.engine.trainer import Trainer

READ_BACK = "read back"  # the job that loads a DDP run's folder once its processes have ended


class RunSession(QObject):
    """One run at a time, in this process or through torchrun: the window's only way to train.

    The window, plots, Runs list, quantization lab and insight views subscribe to its signals;
    `run_ended(RunResult)` comes last for every run, however it ended (a DDP run's result is
    read back from its folder, weights included). `start(..., project=KEY)` labels the run
    folder so the Runs list finds it after a restart. Pause and single steps need an
    in-process run (`supports_pause`).
    """

    run_started = Signal(object)  # RunStarted
    batches_reported = Signal(list)  # list[BatchReport], paced (run_reports)
    epoch_ended = Signal(object)  # EpochReport
    log_received = Signal(str)
    run_succeeded = Signal(dict)  # the run's summary: it ended on its own terms
    run_failed = Signal(str)
    state_changed = Signal(str)  # "idle" | "running" | "paused"
    run_ended = Signal(object)  # RunResult

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        make_trainer: MakeTrainer = Trainer,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
    ) -> None:
        super().__init__(parent)
        self.make_trainer = make_trainer
        self.state = "idle"
        self.last_result: RunResult | None = None
        self.last_started: RunStarted | None = None
        self.last_batch: BatchReport | None = None
        self._factories: list[ObserverFactory] = []
        self._local: LocalRun | None = None
        self._reporter = SignalReporter(self)  # the current (or last) run's
        self._run: tuple[Experiment, Path | None, str] | None = None  # experiment, folder, project
        self._epochs: list[EpochReport] = []
        self._ending: RunResult | None = None
        self._closing = False
        self.jobs = JobRunner(self, name="TrainingThread", cancel=self.stop)
        self.jobs.succeeded.connect(self._job_succeeded)
        self.jobs.failed.connect(self._job_failed)
        self.jobs.ended.connect(self._job_ended)
        self.process = ProcessRun(
            self, self._process_ended, self, stop_grace_seconds, kill_grace_seconds
        )
        self.run_started.connect(self._remember_start)
        self.batches_reported.connect(self._remember_batches)
        self.epoch_ended.connect(self._remember_epoch)
        register_owner(self)

    # ------------------------------------------------------------------ what is going on

    @property
    def is_running(self) -> bool:
        return self._run is not None

    @property
    def folder(self) -> Path | None:
        """The running run's folder (None between runs, or when it writes none)."""
        return self._run[1] if self._run is not None else None

    @property
    def is_ddp(self) -> bool:
        """The run going now is a torchrun one."""
        return self.process.is_running or self.jobs.is_running(READ_BACK)

    @property
    def supports_pause(self) -> bool:
        return not self.is_ddp

    @property
    def process_id(self) -> int | None:
        return self.process.process_id

    @property
    def batches_seen(self) -> int:
        """Batches the engine has reported so far (ahead of what the window has been sent)."""
        return self._reporter.batches_seen

    def add_observer_factory(self, factory: ObserverFactory) -> None:
        """Have every later in-process run also report to `factory(trainer)`'s observer (None:
        not this run). Called on the GUI thread when a run starts, before its data is loaded;
        the observer then gets every report on the training thread, between batches, where it
        may read the model safely. DDP runs live in other processes and have none."""
        if factory not in self._factories:
            self._factories.append(factory)

    def remove_observer_factory(self, factory: ObserverFactory) -> None:
        if factory in self._factories:
            self._factories.remove(factory)

    # ------------------------------------------------------------------ starting

    def start(
        self,
        experiment: Experiment,
        out_dir: str | Path | None = None,
        *,
        project: str | None = None,
        start_paused: bool = False,
        resume_from: str | Path | None = None,
        initial_weights: dict[str, Any] | None = None,
        nproc: int | None = None,
    ) -> None:
        """Start a run (DDP when the experiment says so); bad input arrives as `run_failed`,
        then `run_ended`. With `project` the folder is labelled as that project's run."""
        if self.is_running:
            raise RuntimeError("a run is already in progress")
        ddp = experiment.train.ddp.enabled
        if ddp and start_paused:
            raise ValueError("a DDP run cannot start paused: pausing needs a single process")
        folder = Path(out_dir) if out_dir is not None else None
        if folder is not None and project is not None and not (folder / RUN_LABEL).is_file():
            write_run_label(folder, project, experiment)
        self._run = (experiment, folder, project or "")
        self._epochs, self._ending = [], None
        self.last_started = self.last_batch = None
        if ddp:
            self._local = None
            self.process.start(experiment, folder, resume_from, nproc)
            self._reporter = self.process.reporter
        else:
            self._start_local(experiment, folder, start_paused, resume_from, initial_weights)
        if self._run is not None:  # torchrun may fail to start at once: then it has ended
            self._set_state("paused" if start_paused else "running")

    def _start_local(
        self,
        experiment: Experiment,
        folder: Path | None,
        start_paused: bool,
        resume_from: str | Path | None,
        initial_weights: dict[str, Any] | None,
    ) -> None:
        control = RunControl(start_paused=start_paused)
        trainer = self.make_trainer(
            experiment,
            control=control,
            out_dir=folder,
            resume_from=resume_from,
            initial_weights=initial_weights,
        )
        made = [factory(trainer) for factory in list(self._factories)]
        extra = [observer for observer in made if observer is not None]
        reporter = SignalReporter(self, hold=lambda: control.paused)
        assert self._run is not None
        self._reporter = reporter
        self._local = LocalRun(self.jobs, reporter, trainer, extra, control, self._run[2])

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Stop after the current batch (the run still ends with its files and a RunResult)."""
        if self._local is not None:
            self._local.control.request_stop()
        self.process.stop()

    def pause(self) -> None:
        if self._local is not None and self.is_running:
            self._local.control.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self._local is not None and self.is_running:
            self._local.control.resume()
            self._set_state("running")

    def step(self) -> None:
        """One optimizer step of the current run (which then stays paused)."""
        if self._local is not None and self.is_running:
            self._local.control.step()
            self._set_state("paused")

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Stop any run and wait for it (a DDP run's ranks are ended); True when nothing is left."""
        self._closing = True
        try:
            ok = self.process.shutdown(timeout_ms)
            return self.jobs.shutdown(timeout_ms) and ok
        finally:
            self._closing = False

    # ------------------------------------------------------------------ ending

    def _job_succeeded(self, _key: Hashable, result: object) -> None:
        assert isinstance(result, RunResult)
        self._ending = result

    def _job_failed(self, key: Hashable, error: object) -> None:
        if key == local_run.JOB:  # a bug of ours, not of the run: still one line, still an end
            self.run_failed.emit(str(error))
            self._ending = self._result_without_folder(str(error))
        else:  # the folder could not be read back: the run is shown without its weights
            self.log_received.emit(f"Cannot read the run's files back: {error}")

    def _job_ended(self, _key: Hashable) -> None:
        result = self._ending or self._result_without_folder("")
        self._local = None
        self._finish(result)

    def _process_ended(self) -> None:
        reporter = self.process.reporter
        assert self._run is not None
        folder = self._run[1]
        if reporter.summary is not None and folder is not None and not self._closing:
            read = functools.partial(self._read_back, folder)
            self._ending = self._result_without_folder("")
            self.jobs.start(READ_BACK, read)
            return
        self._finish(self._result_without_folder(reporter.failure or ""))

    def _read_back(self, folder: Path) -> RunResult:
        """On a worker thread: the DDP run as its folder tells it, with its final weights."""
        assert self._run is not None
        return dataclasses.replace(read_run(folder, weights=True), project=self._run[2])

    def _result_without_folder(self, failure: str) -> RunResult:
        """A run's end as the session saw it, without reading its folder."""
        assert self._run is not None
        experiment, folder, project = self._run
        summary = self.process.reporter.summary if self._local is None else None
        if summary is None:
            status = "failed" if failure else "stopped"
            summary = {"status": status, "epochs_completed": len(self._epochs)}
        ended = "failed" if failure else str(summary.get("status") or "completed")
        return RunResult(
            experiment=experiment,
            summary=frozen_summary(summary),
            history=tuple(self._epochs),
            state_dict=None,
            folder=folder,
            ended=ended,
            message=failure,
            project=project,
        )

    def _finish(self, result: RunResult) -> None:
        self._run = None
        self.last_result = result
        self._set_state("idle")
        self.run_ended.emit(result)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _remember_start(self, report: RunStarted) -> None:
        self.last_started = report

    def _remember_batches(self, reports: list[BatchReport]) -> None:
        if reports:
            self.last_batch = reports[-1]

    def _remember_epoch(self, report: EpochReport) -> None:
        self._epochs.append(report)
