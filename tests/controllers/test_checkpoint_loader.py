"""CheckpointLoader: file work runs on worker QThreads, reports once, and leaves no thread behind."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from workbench.controllers.checkpoint_loader import (
    OPEN,
    SAVE,
    CheckpointLoader,
    Task,
    UnexpectedTaskError,
)
from workbench.engine.checkpoints import Checkpoint, UnsafeCheckpointError, open_checkpoint
from workbench.engine.errors import CheckpointError


class TouchesMarker:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def loader(qapp: object) -> Iterator[CheckpointLoader]:
    created = CheckpointLoader()
    yield created
    assert created.shutdown(10_000)
    assert not CheckpointLoader.running_threads()


def small_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"fc.weight": torch.randn(3, 4), "fc.bias": torch.zeros(3)}


def test_open_runs_off_the_gui_thread_and_reports_the_checkpoint(
    qtbot, loader: CheckpointLoader, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "model.pth"
    torch.save(small_state(), path)
    progress: list[tuple[str, str]] = []
    loader.progress.connect(lambda name, text: progress.append((name, text)))
    with qtbot.waitSignal(loader.finished, timeout=10_000) as finished:
        loader.open(path)
    name, token, checkpoint = finished.args
    assert (name, token) == (OPEN, path)
    assert isinstance(checkpoint, Checkpoint)
    assert list(checkpoint.state_dict) == ["fc.weight", "fc.bias"]
    size = path.stat().st_size
    assert progress == [(OPEN, f"Opening model.pth ({size / 1024:.1f} KiB)…")]
    qtbot.waitUntil(lambda: not loader.is_busy, timeout=5_000)
    assert not CheckpointLoader.running_threads()


def test_work_really_happens_on_another_thread(qtbot, loader: CheckpointLoader) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(loader.finished, timeout=5_000) as finished:
        loader.submit(Task("probe", "Probing", threading.get_ident))
    assert finished.args[2] != threading.get_ident()


def test_a_damaged_file_arrives_as_failed_with_its_message(
    qtbot, loader: CheckpointLoader, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cut.pth"
    torch.save(small_state(), path)
    path.write_bytes(path.read_bytes()[:200])
    with qtbot.waitSignal(loader.failed, timeout=10_000) as failed:
        loader.open(path)
    name, token, error = failed.args
    assert (name, token) == (OPEN, path)
    assert isinstance(error, CheckpointError)
    assert "truncated" in str(error) and str(path) in str(error)


def test_an_unsafe_file_keeps_its_list_of_globals_and_runs_nothing(
    qtbot, loader: CheckpointLoader, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": TouchesMarker(marker)}, path)
    with qtbot.waitSignal(loader.failed, timeout=10_000) as failed:
        loader.open(path)
    error = failed.args[2]
    assert isinstance(error, UnsafeCheckpointError)
    assert any(name.startswith("pathlib.") for name in error.unsafe_globals)
    assert not marker.exists()


def test_an_unexpected_exception_becomes_one_readable_line(qtbot, loader: CheckpointLoader) -> None:  # type: ignore[no-untyped-def]
    def broken() -> None:
        raise KeyError("boom")

    with qtbot.waitSignal(loader.failed, timeout=5_000) as failed:
        loader.submit(Task("broken", "Reading the moon", broken))
    error = failed.args[2]
    assert isinstance(error, UnexpectedTaskError)
    assert str(error) == "Reading the moon failed: KeyError: 'boom'"


def test_a_newer_task_of_the_same_name_replaces_the_queued_one(
    qtbot, loader: CheckpointLoader
) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()
    results: list[object] = []
    loader.finished.connect(lambda _name, _token, result: results.append(result))

    def first() -> str:
        release.wait(5)
        return "first"

    loader.submit(Task("stats", "first", first))
    loader.submit(Task("stats", "second", lambda: "second"))
    loader.submit(Task("stats", "third", lambda: "third"))
    release.set()
    qtbot.waitUntil(lambda: len(results) == 2 and not loader.is_busy, timeout=5_000)
    assert results == ["first", "third"]


def test_save_writes_the_file_atomically_and_reports_busy_then_idle(
    qtbot, loader: CheckpointLoader, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    busy: list[bool] = []
    loader.busy_changed.connect(busy.append)
    target = tmp_path / "out.safetensors"
    with qtbot.waitSignal(loader.finished, timeout=10_000) as finished:
        loader.save(small_state(), target)
    assert finished.args[:2] == [SAVE, target]
    qtbot.waitUntil(lambda: busy == [True, False], timeout=5_000)
    assert torch.equal(open_checkpoint(target).state_dict["fc.weight"], small_state()["fc.weight"])
    assert [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]  # no temp file left


def test_shutdown_waits_for_running_work(qtbot, loader: CheckpointLoader) -> None:  # type: ignore[no-untyped-def]
    started = threading.Event()
    release = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "done"

    loader.submit(Task("slow", "Slow work", slow))
    assert started.wait(5)
    assert loader.running_threads()
    release.set()
    assert loader.shutdown(5_000)
    assert not CheckpointLoader.running_threads()
    assert not loader.is_busy
