"""A DDP run: a torchrun child process whose rank-0 events replay as the session's signals.

The window draws it with the same code as an in-process run. Pausing and single steps cannot
reach across processes; Stop asks the ranks to stop after their batch (SIGINT, as Ctrl+C does),
then ends them (SIGTERM, then SIGKILL) if they have not ended after a grace period.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer

from workbench.controllers.run_reports import RunSignals, SignalReporter
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


class ProcessRun(QObject):
    """Starts and stops one torchrun DDP run at a time; `shutdown()` ends every rank.

    Its reports become `signals`' signals (the session's); `ended()` is called once the process
    has gone (`reporter.summary` or `reporter.failure` then say how the run ended).
    """

    def __init__(
        self,
        signals: RunSignals,
        ended: Callable[[], None],
        parent: QObject | None = None,
        stop_grace_seconds: float = STOP_GRACE_SECONDS,
        kill_grace_seconds: float = KILL_GRACE_SECONDS,
    ) -> None:
        super().__init__(parent)
        self.signals, self.ended = signals, ended
        self.stop_grace_seconds = stop_grace_seconds
        self.kill_grace_seconds = kill_grace_seconds
        self._process: QProcess | None = None
        self._run_dir: tempfile.TemporaryDirectory[str] | None = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(lambda: self.reporter.pacer.flush())
        self._escalation = QTimer(self)
        self._escalation.setSingleShot(True)
        self._escalation.timeout.connect(self._escalate)
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._stdout_tail = b""
        self._stderr_tail = b""
        self._output = TorchrunOutput()
        self.reporter = SignalReporter(self.signals)
        self.stop_requested = False
        self._terminated = False

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
        resume_from: str | Path | None = None,
        nproc: int | None = None,
    ) -> None:
        """Launch `nproc` ranks (default: train.ddp.nproc_per_node); bad input arrives as
        `run_failed`, as for an in-process run."""
        if self.is_running:
            raise RuntimeError("a run is already in progress")
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
        self.signals.log_received.emit(f"Starting {processes} training processes with torchrun...")

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
            self.reporter.on_log(line)
            return
        try:
            dispatch_event(event, self.reporter)
        except TypeError:  # an event of another version: show it rather than fail
            self.reporter.on_log(line)

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
                self.reporter.on_log(text)

    def _schedule_flush(self) -> None:
        """Batches the pacer held back go once their time has come (this thread has a loop)."""
        pacer = self.reporter.pacer
        if pacer.pending and not self._flush_timer.isActive():
            self._flush_timer.start(max(1, int(pacer.due_in() * 1000)))

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
        self.reporter.pacer.flush()
        if self.reporter.summary is None and self.reporter.failure is None:
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
        """Say how a run without a last event ended."""
        if self.stop_requested:
            self.reporter.on_log("Stopped: the training processes have ended.")
        elif outcome.code == 0:
            self.reporter.on_failed("the training processes ended without reporting a result")
        else:
            self.reporter.on_failed(outcome.message or "the training processes failed")

    def _on_error(self, process: QProcess, error: QProcess.ProcessError) -> None:
        if process is not self._process or error != QProcess.ProcessError.FailedToStart:
            return
        self.reporter.on_failed(f"could not start torchrun ({process.errorString()})")
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
        self.ended()

    # ------------------------------------------------------------------ stopping

    def stop(self) -> None:
        """Ask every rank to stop after its batch (files are written); end them if they don't."""
        if self._process is None or self.stop_requested:
            return
        self.stop_requested = True
        self.reporter.on_log("Stopping after this batch...")
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
        self.stop_requested = True
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
