"""A DDP run of the RunSession: a torchrun run seen through the window's signals, and Stop.

Two tests start real 2-process gloo runs; the rest run a tiny stand-in child that prints what
torchrun's rank 0 would, so the event replay, the failure message and the SIGINT -> SIGTERM ->
SIGKILL escalation are checked in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import workbench.controllers.process_run as module
from tests import factories
from tests.conftest import PRESETS
from tests.factories import STARTED_FIELDS
from workbench.controllers.run_session import RunSession
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.reports import BatchReport, EpochReport, RunStarted, as_event
from workbench.engine.run_history import RunResult

MARKER = "WORKBENCH_TEST_MARKER"
RUN_TIMEOUT_MS = 180_000  # a loaded 2-core machine starts torch slowly; a hang still fails


class Recorder:
    """Every signal of a controller, in order."""

    def __init__(self, controller: RunSession) -> None:
        self.signals: list[tuple[str, Any]] = []
        for name in (
            "run_started",
            "batches_reported",
            "epoch_ended",
            "log_received",
            "run_succeeded",
            "run_failed",
            "state_changed",
            "run_ended",
        ):
            getattr(controller, name).connect(
                lambda value, name=name: self.signals.append((name, value))
            )

    def values(self, name: str) -> list[Any]:
        return [value for kind, value in self.signals if kind == name]

    def names(self) -> list[str]:
        return [kind for kind, _ in self.signals]


@pytest.fixture
def controller(qapp: object) -> Iterator[RunSession]:
    created = RunSession()
    yield created
    assert created.shutdown(10_000)
    assert not created.is_running


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """Tags every process the controller starts, so the test can look for leftovers."""
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARKER, value)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return value


def processes_with_marker(value: str) -> list[int]:
    """Live (not zombie) processes carrying the marker in their environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{MARKER}={value}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="uses /proc")


def stand_in_child(monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Replace torchrun with a small Python child running `script`."""
    code = textwrap.dedent(script)
    monkeypatch.setattr(
        module, "torchrun_command", lambda arguments, nproc: [sys.executable, "-c", code]
    )


def event(name: str, **fields: Any) -> str:
    return json.dumps({"event": name, **fields})


STARTED = STARTED_FIELDS | {"epochs": 1, "batches_per_epoch": 5, "world_size": 2}


def ddp(name: str = "toy-mlp") -> Experiment:
    """A preset with [train.ddp] enabled: the session runs it through torchrun."""
    experiment = load_experiment(PRESETS / f"{name}.toml")
    spec = dataclasses.replace(experiment.train.ddp, enabled=True)
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, ddp=spec))


# ------------------------------------------------------------------ real torchrun runs


@needs_proc
def test_a_two_process_toy_run_reaches_run_succeeded(
    qtbot: Any, controller: RunSession, marker: str, tmp_path: Path
) -> None:
    recorder = Recorder(controller)
    with qtbot.waitSignal(controller.run_ended, timeout=RUN_TIMEOUT_MS):
        controller.start(ddp(), out_dir=tmp_path, nproc=2)
        assert controller.state == "running"
        assert controller.supports_pause is False

    assert recorder.values("run_failed") == []
    started = recorder.values("run_started")
    assert len(started) == 1 and isinstance(started[0], RunStarted)
    assert started[0].world_size == 2
    batches = [report for group in recorder.values("batches_reported") for report in group]
    assert all(isinstance(report, BatchReport) for report in batches)
    assert [report.epoch for report in batches] == [1, 2, 3]  # rank 0's one batch per epoch
    epochs = recorder.values("epoch_ended")
    assert [report.epoch for report in epochs] == [1, 2, 3]
    assert isinstance(epochs[0], EpochReport)
    (summary,) = recorder.values("run_succeeded")
    assert (summary["world_size"], summary["status"]) == (2, "completed")
    assert (tmp_path / "model.pth").is_file()
    assert recorder.names()[-2:] == ["state_changed", "run_ended"]
    assert controller.state == "idle" and not controller.is_running
    assert processes_with_marker(marker) == []
    # The run's result, read back from its folder: the same numbers, the final weights.
    (result,) = recorder.values("run_ended")
    assert isinstance(result, RunResult) and result.ended == "completed"
    assert result.folder == tmp_path and result.summary["world_size"] == 2
    assert [report.epoch for report in result.history] == [1, 2, 3]
    saved = torch.load(tmp_path / "model.pth", weights_only=True)
    assert result.state_dict is not None and set(result.state_dict) == set(saved)
    assert all(torch.equal(result.state_dict[key], saved[key]) for key in saved)


@needs_proc
def test_stop_mid_run_stops_every_rank_and_keeps_the_files(
    qtbot: Any, marker: str, tmp_path: Path
) -> None:
    experiment = ddp("moons-mlp")
    controller = RunSession(stop_grace_seconds=90)  # room for a loaded machine
    recorder = Recorder(controller)
    controller.batches_reported.connect(lambda batches: controller.stop())
    try:
        with qtbot.waitSignal(controller.run_ended, timeout=RUN_TIMEOUT_MS):
            controller.start(_long(experiment), out_dir=tmp_path / "run", nproc=2)
    finally:
        assert controller.shutdown()

    assert "Stopping after this batch..." in recorder.values("log_received")
    assert recorder.values("run_failed") == []
    (summary,) = recorder.values("run_succeeded")
    assert summary["status"] == "stopped"
    assert (tmp_path / "run" / "model.pth").is_file()
    (result,) = recorder.values("run_ended")
    assert result.ended == "stopped" and result.state_dict is not None
    assert processes_with_marker(marker) == []


def _long(experiment: Any) -> Any:
    """The moons preset made long enough that Stop always arrives mid-run."""
    return dataclasses.replace(
        experiment,
        data=dataclasses.replace(experiment.data, batch_size=2),
        train=dataclasses.replace(experiment.train, epochs=500, device="cpu"),
    )


# ------------------------------------------------------------------ stand-in children


def test_events_replay_as_signals_with_batches_grouped(
    qtbot: Any, controller: RunSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [event("started", **STARTED)]
    lines += [
        json.dumps(as_event("batch_end", factories.batch(1, i, 5, 0.5, i + 1, 9.0)))
        for i in range(5)
    ]
    lines += [
        json.dumps(as_event("epoch_end", factories.epoch_report(epochs=1, val_accuracy=0.5))),
        event("log", text="Restored the best weights (epoch 1)"),
        "not an event",
        event("finished", summary={"status": "completed", "world_size": 2}),
    ]
    output = "\n".join(lines)
    stand_in_child(
        monkeypatch,
        f"""
        import sys
        sys.stderr.write("Epoch: 001/001 | Batch 000/005 | Train/Val Loss: 0.50\\n")
        sys.stderr.write("W1123 00:40:26.413000 22170 torch/distributed/run.py:1] chatter\\n")
        sys.stderr.write("a warning from a rank\\n")
        print({output!r})
        """,
    )
    recorder = Recorder(controller)
    with qtbot.waitSignal(controller.run_ended, timeout=30_000):
        controller.start(ddp(), nproc=2)

    names = recorder.names()
    assert names.index("batches_reported") < names.index("epoch_ended")
    batches = [report for group in recorder.values("batches_reported") for report in group]
    assert [report.batch for report in batches] == [0, 1, 2, 3, 4]
    assert len(recorder.values("batches_reported")) <= 2  # grouped, not one signal each
    assert recorder.values("run_succeeded") == [{"status": "completed", "world_size": 2}]
    logs = recorder.values("log_received")
    assert "Restored the best weights (epoch 1)" in logs
    assert "not an event" in logs and "a warning from a rank" in logs
    assert not [line for line in logs if line.startswith("Epoch: ") or "chatter" in line]


def test_a_crashed_rank_ends_the_run_with_its_reason(
    qtbot: Any, controller: RunSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in_child(
        monkeypatch,
        f"""
        import sys
        print({event("started", **STARTED)!r}, flush=True)
        sys.stderr.write(
            "E1123 00:40:26.445000 22170 torch/distributed/elastic/multiprocessing/api.py:1002]"
            " failed (exitcode: -9) local_rank: 1 (pid: 22178) of binary: python\\n"
        )
        sys.exit(1)
        """,
    )
    recorder = Recorder(controller)
    with qtbot.waitSignal(controller.run_ended, timeout=30_000):
        controller.start(ddp(), nproc=2)

    message = "training process rank 1 was killed by SIGKILL; the other ranks were stopped"
    assert recorder.values("run_failed") == [message]
    assert recorder.values("run_succeeded") == []
    (result,) = recorder.values("run_ended")
    assert (result.ended, result.message, result.state_dict) == ("failed", message, None)


@needs_proc
def test_stop_escalates_to_sigkill_when_the_child_ignores_signals(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    stand_in_child(
        monkeypatch,
        """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """,
    )
    controller = RunSession(stop_grace_seconds=0.2, kill_grace_seconds=0.2)
    recorder = Recorder(controller)
    try:
        with qtbot.waitSignal(controller.log_received, check_params_cb=lambda t: t == "ready"):
            controller.start(ddp(), nproc=2)
        pid = controller.process_id
        with qtbot.waitSignal(controller.run_ended, timeout=10_000):
            controller.stop()
    finally:
        assert controller.shutdown()

    assert "Stopped: the training processes have ended." in recorder.values("log_received")
    assert recorder.values("run_failed") == []
    assert pid is not None and processes_with_marker(marker) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@needs_proc
def test_shutdown_ends_a_running_child_at_once(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    stand_in_child(
        monkeypatch,
        """
        import time
        print("ready", flush=True)
        while True:
            time.sleep(1)
        """,
    )
    controller = RunSession()
    recorder = Recorder(controller)
    with qtbot.waitSignal(controller.log_received, check_params_cb=lambda t: t == "ready"):
        controller.start(ddp(), nproc=2)
    with pytest.raises(RuntimeError, match="already in progress"):
        controller.start(ddp(), nproc=2)

    assert controller.shutdown(5_000)
    assert recorder.names()[-1] == "run_ended" and controller.state == "idle"
    assert processes_with_marker(marker) == []


def test_pausing_is_refused_up_front(controller: RunSession) -> None:
    with pytest.raises(ValueError, match="cannot start paused"):
        controller.start(ddp(), start_paused=True)
    assert not controller.is_running and controller.state == "idle"
