"""Runs a DDP experiment as a torchrun child process and replays rank 0's events as Qt signals.

The window draws it with the same code as an in-process run: the public signals and methods are
TrainingController's. Pausing and single steps cannot reach across processes (`supports_pause`
is False); Stop asks the ranks to stop after their batch (SIGINT, as Ctrl+C does), then ends
them (SIGTERM, then SIGKILL) if they have not ended after a grace period.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from workbench.engine.ddp_launch import (
    RunOutcome,
    TorchrunOutput,
    child_environment,
    read_rank_reports,
    run_outcome,
    torchrun_command,
)
from workbench.engine.event_stream import dispatch_event
from workbench.engine.experiment import Experiment, save_experiment
from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted

EMIT_INTERVAL_SECONDS = 0.05  # at most ~20 batch updates a second reach the window
STOP_GRACE_SECONDS = 10.0  # for the ranks to finish their batch and save, before SIGTERM
KILL_GRACE_SECONDS = 5.0  # after SIGTERM, before SIGKILL
# The console lines rank 0 prints to stderr repeat what its events say: keep them out of the log.
_CONSOLE_ECHOES = (
    "Epoch: ",
    "Training failed: ",
    "Train Acc: ",
    "Run ",
    "Training ",
    "Stopping after this batch",  # its "Ctrl+C again" hint is for the terminal
    "(no --out folder given",
)


def _is_console_echo(line: str) -> bool:
    if line.startswith("Training ") and " parameters on " not in line:
        return False
    if line.startswith("Run ") and " after " not in line:
        return False
    return line.startswith(_CONSOLE_ECHOES)


class _SignalObserver(BaseObserver):
    """Turns replayed events into the controller's signals; batch reports wait to be batched."""

    def __init__(self, controller: ProcessTrainingController) -> None:
        self.controller = controller

    def on_started(self, report: RunStarted) -> None:
        self.controller.run_started.emit(report)

    def on_batch_end(self, report: BatchReport) -> None:
        self.controller._pending.append(report)

    def on_epoch_end(self, report: EpochReport) -> None:
        self.controller.epoch_ended.emit(report)

    def on_log(self, text: str) -> None:
        self.controller.log_received.emit(text)

    def on_finished(self, summary: dict[str, Any]) -> None:
        self.controller._ended_with_event = True
        self.controller.run_succeeded.emit(summary)

    def on_failed(self, message: str) -> None:
        self.controller._ended_with_event = True
        self.controller.run_failed.emit(message)


class ProcessTrainingController(QObject):
    """Starts and stops one torchrun DDP run at a time; `shutdown()` ends every rank."""

    supports_pause = False  # pause and single steps cannot reach across processes

    run_started = Signal(object)  # RunStarted
    batches_reported = Signal(list)  # list[BatchReport]
    epoch_ended = Signal(object)  # EpochReport
    log_received = Signal(str)
    run_succeeded = Signal(dict)
    run_failed = Signal(str)
    state_changed = Signal(str)  # "idle" | "running" (never "paused")
    run_ended = Signal()

    def __init__(
        self,
        parent: QObject | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
    ) -> None:
        super().__init__(parent)
        self.stop_grace_seconds = stop_grace_seconds
        self.kill_grace_seconds = kill_grace_seconds
        self.state = "idle"
        self._process: QProcess | None = None
        self._run_dir: tempfile.TemporaryDirectory[str] | None = None
        self._observer = _SignalObserver(self)
        self._pending: list[BatchReport] = []
        self._last_emit = 0.0
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._flush_batches)
        self._escalation = QTimer(self)
        self._escalation.setSingleShot(True)
        self._escalation.timeout.connect(self._escalate)
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._stdout_tail = b""
        self._stderr_tail = b""
        self._output = TorchrunOutput()
        self._ended_with_event = False
        self._stop_requested = False
        self._terminated = False
        self._pending = []

    @property
    def is_running(self) -> bool:
        return self._process is not None

    @property
    def process_id(self) -> int | None:
        """torchrun's process id while a run is going (its ranks are its children)."""
        if self._process is None:
            return None
        pid = int(self._process.processId())
        return pid or None

    # ------------------------------------------------------------------ starting

    def start(
        self,
        experiment: Experiment,
        out_dir: str | Path | None = None,
        start_paused: bool = False,
        resume_from: str | Path | None = None,
        nproc: int | None = None,
    ) -> None:
        """Launch `nproc` ranks (default: train.ddp.nproc_per_node); bad input arrives as
        `run_failed`, as with TrainingController."""
        if self.is_running:
            raise RuntimeError("a run is already in progress")
        if start_paused:
            raise ValueError("a DDP run cannot start paused: pausing needs a single process")
        processes = nproc if nproc is not None else experiment.train.ddp.nproc_per_node
        self._reset_run_state()
        self._run_dir = tempfile.TemporaryDirectory(prefix="workbench-ddp-")
        experiment_file = Path(self._run_dir.name) / "experiment.toml"
        save_experiment(experiment, experiment_file)
        arguments = [str(experiment_file), "--events=-"]
        if out_dir is not None:
            arguments.append(f"--out={Path(out_dir).resolve()}")
        if resume_from is not None:
            arguments.append(f"--resume={Path(resume_from).resolve()}")
        self._process = self._make_process(torchrun_command(arguments, processes), processes)
        self._process.start()
        self._set_state("running")
        self.log_received.emit(f"Starting {processes} training processes with torchrun...")

    def _make_process(self, command: list[str], nproc: int) -> QProcess:
        assert self._run_dir is not None
        process = QProcess(self)
        process.setProgram(command[0])
        process.setArguments(command[1:])
        environment = QProcessEnvironment()
        for key, value in child_environment(self._run_dir.name, nproc).items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        if sys.platform != "win32":
            # Its own session: the terminal's Ctrl+C and the window's group stay apart from it.
            process.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(functools.partial(self._on_finished, process))
        process.errorOccurred.connect(functools.partial(self._on_error, process))
        return process

    def _set_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    # ------------------------------------------------------------------ output

    def _read_stdout(self) -> None:
        if self._process is None:
            return
        data = self._stdout_tail + bytes(self._process.readAllStandardOutput().data())
        *lines, self._stdout_tail = data.split(b"\n")
        for raw in lines:
            self._handle_event_line(raw.decode("utf-8", errors="replace").rstrip("\r"))
        self._schedule_flush()

    def _handle_event_line(self, line: str) -> None:
        if not line.strip():
            return
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or "event" not in event:
            self.log_received.emit(line)
            return
        if event["event"] != "batch_end":
            self._flush_batches()
        try:
            dispatch_event(event, self._observer)
        except TypeError:  # an event of another version: show it rather than fail
            self.log_received.emit(line)

    def _read_stderr(self) -> None:
        if self._process is None:
            return
        data = self._stderr_tail + bytes(self._process.readAllStandardError().data())
        *lines, self._stderr_tail = data.split(b"\n")
        for raw in lines:
            self._show_log_lines(self._output.feed(raw.decode("utf-8", errors="replace")))

    def _show_log_lines(self, lines: list[str]) -> None:
        for line in lines:
            text = line.rstrip()
            if text and not _is_console_echo(text):
                self.log_received.emit(text)

    def _schedule_flush(self) -> None:
        """Emit pending batches now if the last emit was long enough ago, else a bit later."""
        if not self._pending:
            return
        wait = EMIT_INTERVAL_SECONDS - (time.monotonic() - self._last_emit)
        if wait <= 0:
            self._flush_batches()
        elif not self._flush_timer.isActive():
            self._flush_timer.start(max(1, int(wait * 1000)))

    def _flush_batches(self) -> None:
        self._flush_timer.stop()
        if self._pending:
            batches, self._pending = self._pending, []
            self.batches_reported.emit(batches)
        self._last_emit = time.monotonic()

    # ------------------------------------------------------------------ ending

    def _on_finished(self, process: QProcess, exit_code: int, exit_status: Any) -> None:
        if process is not self._process:
            return  # already handled
        self._read_stdout()
        self._read_stderr()
        if self._stdout_tail.strip():  # a last line without its newline
            self._handle_event_line(self._stdout_tail.decode("utf-8", errors="replace"))
        if self._stderr_tail.strip():
            self._show_log_lines(self._output.feed(self._stderr_tail.decode(errors="replace")))
        self._stdout_tail = self._stderr_tail = b""
        self._show_log_lines(self._output.finish())
        self._flush_batches()
        if not self._ended_with_event:
            self._report_ending(self._outcome(exit_code))
        self._cleanup()

    def _outcome(self, exit_code: int) -> RunOutcome:
        reports = read_rank_reports(self._run_dir.name) if self._run_dir is not None else {}
        outcome = run_outcome(reports, self._output.first_failure, exit_code)
        main = reports.get(0)
        if outcome.message is None and main is not None and main.code != 0 and main.message:
            return RunOutcome(outcome.code, main.message)  # rank 0 printed it, but to stderr
        return outcome

    def _report_ending(self, outcome: RunOutcome) -> None:
        if self._stop_requested:
            self.log_received.emit("Stopped: the training processes have ended.")
        elif outcome.code == 0:
            self.run_failed.emit("the training processes ended without reporting a result")
        else:
            self.run_failed.emit(outcome.message or "the training processes failed")

    def _on_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if process is not self._process or error != QProcess.ProcessError.FailedToStart:
            return
        self.run_failed.emit(f"could not start torchrun ({process.errorString()})")
        self._cleanup()

    def _cleanup(self) -> None:
        self._escalation.stop()
        self._flush_timer.stop()
        process, self._process = self._process, None
        if process is not None:
            process.deleteLater()
        if self._run_dir is not None:
            with contextlib.suppress(OSError):
                self._run_dir.cleanup()
            self._run_dir = None
        self._set_state("idle")
        self.run_ended.emit()

    # ------------------------------------------------------------------ stopping

    def stop(self) -> None:
        """Ask every rank to stop after its batch (files are written); end them if they don't."""
        if self._process is None or self._stop_requested:
            return
        self._stop_requested = True
        self.log_received.emit("Stopping after this batch...")
        if sys.platform == "win32":
            self._process.terminate()
        else:
            self._signal_group(signal.SIGINT)  # torchrun passes it to every rank
        self._escalation.start(int(self.stop_grace_seconds * 1000))

    def _escalate(self) -> None:
        if self._process is None:
            return
        if not self._terminated:
            self._terminated = True
            self._terminate()
            self._escalation.start(int(self.kill_grace_seconds * 1000))
        else:
            self._kill()

    def _terminate(self) -> None:
        """SIGTERM torchrun's group; torchrun SIGTERMs each rank (each has its own session)."""
        if sys.platform == "win32":
            self._kill()
        else:
            self._signal_group(signal.SIGTERM)

    def _kill(self) -> None:
        """SIGKILL torchrun's group; its ranks notice their parent is gone and exit at once."""
        if self._process is None:
            return
        pid = self.process_id
        if sys.platform == "win32" and pid is not None:
            subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True)
        elif pid is not None:
            self._signal_group(signal.SIGKILL)
        self._process.kill()

    def _signal_group(self, signum: int) -> None:
        pid = self.process_id
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)  # the new session's id is torchrun's pid

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """End any run now (SIGTERM, then SIGKILL) and wait for it; True when nothing is left."""
        process = self._process
        if process is None:
            return True
        self._stop_requested = True
        self._terminated = True
        self._terminate()
        grace_ms = min(int(self.kill_grace_seconds * 1000), timeout_ms)
        if not process.waitForFinished(grace_ms):
            self._kill()
            process.waitForFinished(max(timeout_ms - grace_ms, 1000))
        finished = process.state() == QProcess.ProcessState.NotRunning
        if finished and self._process is process:
            self._on_finished(process, process.exitCode(), process.exitStatus())
        return finished
