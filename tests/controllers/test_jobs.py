"""The one job plumbing: results and errors as signals, one registry, and shutdown_all()."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from workbench.controllers import jobs
from workbench.controllers.jobs import JobRunner, UnexpectedJobError
from workbench.controllers.quantization_controller import QuantizationController
from workbench.engine.errors import DatasetError
from workbench.engine.quantization import QuantizationCancelled, QuantizationOptions


@pytest.fixture
def runner(qapp: object) -> Iterator[JobRunner]:
    made = JobRunner(name="TestJob")
    yield made
    assert made.shutdown(10_000)


def test_a_result_arrives_on_the_gui_thread_then_the_job_ends(
    qtbot: QtBot, runner: JobRunner
) -> None:
    seen: list[tuple[str, Any]] = []
    runner.succeeded.connect(lambda key, result: seen.append(("succeeded", (key, result))))
    runner.ended.connect(lambda key: seen.append(("ended", key)))
    runner.busy_changed.connect(lambda busy: seen.append(("busy", busy)))
    gui = threading.get_ident()
    release = threading.Event()

    def probe() -> int:
        release.wait(10)
        return threading.get_ident()

    with qtbot.waitSignal(runner.ended, timeout=10_000):
        runner.start("probe", probe)
        assert runner.is_running("probe") and runner.is_busy
        assert [t.objectName() for t in jobs.running_threads()] == ["TestJob-probe"]
        with pytest.raises(RuntimeError, match="already running"):
            runner.start("probe", probe)
        release.set()
    assert [kind for kind, _ in seen] == ["busy", "succeeded", "ended", "busy"]
    (key, worker_thread) = seen[1][1]
    assert key == "probe" and worker_thread != gui
    assert not jobs.running_threads()


def test_errors_become_one_line_without_a_traceback(qtbot: QtBot, runner: JobRunner) -> None:
    def broken() -> None:
        raise KeyError("boom")

    def bad_input() -> None:
        raise DatasetError("data.path: no such file")

    with qtbot.waitSignal(runner.failed, timeout=10_000) as failed:
        runner.start("broken", broken)
    assert isinstance(failed.args[1], UnexpectedJobError)
    assert str(failed.args[1]) == "KeyError: 'boom'"
    with qtbot.waitSignal(runner.failed, timeout=10_000) as failed:
        runner.start("input", bad_input)
    assert isinstance(failed.args[1], DatasetError)  # the engine's own message, as it is


def test_shutdown_all_cancels_waits_and_still_delivers(qapp: object) -> None:
    stop = threading.Event()
    runner = JobRunner(name="Cancellable", cancel=stop.set)
    results: list[object] = []
    runner.succeeded.connect(lambda _key, result: results.append(result))
    started = threading.Event()

    def until_cancelled() -> str:
        started.set()
        return "cancelled" if stop.wait(10) else "timed out"

    runner.start("long", until_cancelled)
    assert started.wait(10)
    assert jobs.shutdown_all(10_000)
    assert results == ["cancelled"] and not runner.is_busy
    assert not jobs.running_threads()


def test_the_quantization_controller_takes_a_stand_in_engine(qtbot: QtBot, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def fake_quantize(*args: Any, progress: Any, stop: threading.Event, **kw: Any) -> str:
        calls.append({"args": args, **kw})
        progress("calibrating", 0.5)
        if args[2].method == "qat":
            raise QuantizationCancelled("cancelled")
        if args[2].method == "static":
            raise ValueError("bad shape")
        return "outcome"

    controller = QuantizationController(quantize=fake_quantize)
    progress: list[tuple[str, float]] = []
    outcomes: list[object] = []
    controller.progressed.connect(lambda text, fraction: progress.append((text, fraction)))
    controller.run_succeeded.connect(outcomes.append)
    try:
        with qtbot.waitSignals([controller.run_succeeded, controller.run_ended]):
            controller.start(None, {}, QuantizationOptions(method="dynamic"), tmp_path)  # type: ignore[arg-type]
        assert outcomes == ["outcome"]
        assert progress == [("calibrating", 0.5)] and calls[0]["args"][3] == tmp_path
        with qtbot.waitSignal(controller.run_failed) as failed:
            controller.start(None, {}, QuantizationOptions(method="static"), tmp_path)  # type: ignore[arg-type]
        assert failed.args == ["Quantization stopped by an unexpected error: ValueError: bad shape"]
        qtbot.waitUntil(lambda: not controller.is_running)
        with qtbot.waitSignal(controller.run_cancelled):
            controller.start(None, {}, QuantizationOptions(method="qat"), tmp_path)  # type: ignore[arg-type]
        qtbot.waitUntil(lambda: controller.state == "idle")
    finally:
        assert controller.shutdown()
