"""TF Playground's immediacy: a visible Paused state, one boundary redraw per Step, honest ETA."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from tests.ui.test_run_panel import FakeClock, batch, started
from workbench.ui.main_window import PRESETS_DIR, MainWindow
from workbench.ui.run_panel import PAUSED_TEXT, RunPanel

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def panel(qtbot: QtBot, clock: FakeClock) -> RunPanel:
    widget = RunPanel(clock=clock)
    qtbot.addWidget(widget)
    widget.show()
    return widget


def test_paused_shows_a_label_and_drops_speed_and_eta(panel: RunPanel) -> None:
    panel.reset(started())
    panel.set_state("running")
    assert not panel.state_label.isVisible()
    panel.set_state("paused")
    assert panel.state_label.isVisible()
    assert panel.state_label.text() == PAUSED_TEXT
    panel.add_batches([batch(1, 4)])  # a single Step's report
    assert panel.progress_text() == "Epoch 1/10 · batch 4/938"
    panel.set_state("running")
    assert not panel.state_label.isVisible()


def test_the_eta_leaves_paused_time_out(panel: RunPanel, clock: FakeClock) -> None:
    panel.reset(started())
    panel.set_state("running")
    clock.now += 50.0
    panel.set_state("paused")
    clock.now += 1000.0  # a long coffee break
    panel.set_state("running")
    clock.now += 50.0  # 100 s of training for 20 % of the run: 400 s to go
    panel.add_batches([batch(2, 937)])
    assert panel.progress_text() == "Epoch 2/10 · batch 937/938 · 1,234 samples/s · ETA 6:40"


def test_each_step_redraws_the_boundary_once(qtbot: QtBot, window: MainWindow) -> None:
    window.open_project(PRESETS_DIR / "moons-mlp.toml")
    window.document.update_train(epochs=50, device="cpu")
    window.tabs.setCurrentWidget(window.insight_panel)
    live_frames: list[tuple[int, int]] = []
    window.insight_panel.relay.grid_ready.connect(
        lambda epoch, batch, _grid: live_frames.append((epoch, batch)) if batch >= 0 else None
    )
    session = window.session
    for step in (1, 2, 3):
        window.step_training()
        qtbot.waitUntil(
            lambda s=step: session.last_batch is not None and session.last_batch.step == s,
            timeout=30_000,
        )
        qtbot.waitUntil(lambda s=step: len(live_frames) >= s, timeout=10_000)
        assert window.run_panel.state_label.isVisible()
    qtbot.waitUntil(lambda: window.insight_panel.boundary.current is not None)
    assert live_frames == [(1, 0), (1, 1), (1, 2)]
    assert window.run_panel.progress_text() == f"Epoch 1/50 · batch 2/{session.last_batch.batches}"
    with qtbot.waitSignal(session.run_ended, timeout=10_000):
        session.stop()


def test_the_redraw_every_control_reaches_the_training_thread(window: MainWindow) -> None:
    spin = window.insight_panel.boundary.redraw_every
    assert spin.value() == window.insight_panel.relay.redraw_every
    spin.setValue(3)
    assert window.insight_panel.relay.redraw_every == 3
