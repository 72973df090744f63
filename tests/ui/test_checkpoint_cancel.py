"""Statistics in the checkpoint editor stop when the editor closes or another tensor is picked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from workbench.engine.checkpoints import TensorStats, tensor_stats
from workbench.ui.checkpoint_editor import CheckpointEditor
from workbench.ui.checkpoint_editor import tensor_panel as tensor_panel_module

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


class HeldStats:
    """tensor_stats that waits (the first `held` calls) until its stop event is set."""

    def __init__(self, held: int = 1) -> None:
        self.held = held
        self.started = threading.Event()
        self.stops: list[threading.Event] = []

    def __call__(
        self, tensor: torch.Tensor, key: str = "tensor", stop: threading.Event | None = None
    ) -> TensorStats:
        assert stop is not None, "the editor must hand its statistics a stop event"
        self.stops.append(stop)
        if len(self.stops) <= self.held:
            self.started.set()
            stop.wait(30)
        return tensor_stats(tensor, key, stop)  # raises AnalysisCancelled once stop is set


def editor_on(qtbot, path: Path) -> Iterator[CheckpointEditor]:  # type: ignore[no-untyped-def]
    """An editor with `path` open; shut down (no thread left) after the test."""
    made = CheckpointEditor()
    qtbot.addWidget(made)
    with qtbot.waitSignal(made.title_changed, timeout=10_000):
        made.open_file(path)
    yield made
    assert made.shutdown(10_000)


@pytest.fixture
def editor(qtbot, tmp_path: Path) -> Iterator[CheckpointEditor]:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    path = tmp_path / "two.pt"
    torch.save({"big.weight": torch.randn(64, 64), "other.weight": torch.ones(40, 40)}, path)
    yield from editor_on(qtbot, path)


def hold_statistics(editor: CheckpointEditor, monkeypatch: pytest.MonkeyPatch) -> HeldStats:
    """Statistics of every tensor go to the worker and wait there until stopped (the first)."""
    held = HeldStats()
    monkeypatch.setattr(tensor_panel_module, "SYNC_LIMIT", 16)
    monkeypatch.setattr(tensor_panel_module, "tensor_stats", held)
    return held


def test_closing_the_editor_mid_statistics_stops_them_and_shows_nothing(
    qtbot, editor, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    held = hold_statistics(editor, monkeypatch)
    loader, panel = editor.document.loader, editor.tensor_panel
    arrived: list[str] = []
    loader.finished.connect(lambda name, _token, _result: arrived.append(f"finished {name}"))
    loader.failed.connect(lambda name, _token, error: arrived.append(f"failed {name}: {error}"))
    editor.show()
    assert editor.key_tree.select_path("big.weight")
    assert held.started.wait(10)
    assert not held.stops[0].is_set()

    with qtbot.waitSignal(loader.cancelled, timeout=10_000) as cancelled:
        editor.close()
    assert held.stops[0].is_set()
    assert cancelled.args == ["stats", ("big.weight", cancelled.args[1][1])]
    qtbot.waitUntil(lambda: not loader.is_busy, timeout=10_000)
    assert arrived == []
    assert "Std" not in panel.stats_text()
    assert "cancel" not in editor.error_banner.text.lower()


def test_picking_another_tensor_cancels_the_statistics_in_flight(
    qtbot, editor, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    held = hold_statistics(editor, monkeypatch)
    loader, panel = editor.document.loader, editor.tensor_panel
    failures: list[object] = []
    loader.failed.connect(lambda _name, _token, error: failures.append(error))
    assert editor.key_tree.select_path("big.weight")
    assert held.started.wait(10)

    with qtbot.waitSignal(loader.cancelled, timeout=10_000):
        assert editor.key_tree.select_path("other.weight")
    assert held.stops[0].is_set()
    qtbot.waitUntil(lambda: "Std" in panel.stats_text(), timeout=10_000)
    assert panel.current_key == "other.weight"
    assert panel.stats_text()["Mean"] == "1" and panel.stats_text()["Std"] == "0"
    assert not held.stops[1].is_set()
    assert failures == []
