"""CheckpointLoader cancellation: stoppable tasks end with `cancelled`, saves and opens run on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot

from workbench.controllers.checkpoint_loader import CheckpointLoader, Task
from workbench.engine.checkpoints.tensor_data import check_stop


@pytest.fixture
def loader() -> Iterator[CheckpointLoader]:
    made = CheckpointLoader()
    yield made
    assert made.shutdown(10_000)


def stoppable(started: threading.Event, stop: threading.Event) -> object:
    started.set()
    stop.wait(30)
    check_stop(stop)  # AnalysisCancelled, as the engine's chunked work raises it
    return "not cancelled"


def test_cancel_all_stops_analyses_but_a_queued_save_still_runs(
    qtbot: QtBot, loader: CheckpointLoader
) -> None:
    events: list[str] = []
    loader.finished.connect(lambda name, _token, result: events.append(f"{name}: {result}"))
    loader.failed.connect(lambda name, _token, error: events.append(f"{name} failed: {error}"))
    loader.cancelled.connect(lambda name, _token: events.append(f"{name} cancelled"))
    started, stop = threading.Event(), threading.Event()
    release_save = threading.Event()
    loader.submit(Task("stats", "stats", lambda: stoppable(started, stop), stop=stop))
    loader.submit(Task("save", "save", lambda: release_save.wait(30) and "saved"))
    loader.submit(Task("save", "save again", lambda: "saved again"))  # queued behind the first
    assert started.wait(10)

    loader.cancel_all()
    assert stop.is_set()
    release_save.set()
    qtbot.waitUntil(lambda: "save: saved again" in events and not loader.is_busy, timeout=10_000)
    assert sorted(events) == ["save: saved", "save: saved again", "stats cancelled"]


def test_a_newer_request_stops_the_running_one_and_runs_next(
    qtbot: QtBot, loader: CheckpointLoader
) -> None:
    results: list[object] = []
    cancelled: list[object] = []
    loader.finished.connect(lambda _name, token, _result: results.append(token))
    loader.cancelled.connect(lambda _name, token: cancelled.append(token))
    started, stop = threading.Event(), threading.Event()
    loader.submit(Task("stats", "old", lambda: stoppable(started, stop), "old", stop))
    assert started.wait(10)
    loader.submit(Task("stats", "new", lambda: "done", "new", threading.Event()))
    assert stop.is_set()
    qtbot.waitUntil(lambda: results == ["new"], timeout=10_000)
    assert cancelled == ["old"]
