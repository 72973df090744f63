"""Run buttons enable what makes sense, emit intents, and the progress bar tells where the run is."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from tests import factories
from workbench.engine.reports import BatchReport, RunStarted
from workbench.ui.run_panel import RunPanel, clock_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def started(epochs: int = 10, batches: int = 938, start_epoch: int = 1) -> RunStarted:
    return factories.started(
        epochs=epochs,
        batches_per_epoch=batches,
        train_size=60_000,
        val_size=10_000,
        effective_batch_size=64,
        start_epoch=start_epoch,
    )


def batch(epoch: int, index: int, batches: int = 938) -> BatchReport:
    return factories.batch(epoch, index, batches, loss=0.5, samples_per_second=1234.4)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def panel(qtbot: QtBot, clock: FakeClock) -> RunPanel:
    widget = RunPanel(clock=clock)
    qtbot.addWidget(widget)
    return widget


def enabled(panel: RunPanel) -> dict[str, bool]:
    return {
        "train": panel.train_button.isEnabled(),
        "pause": panel.pause_button.isEnabled(),
        "stop": panel.stop_button.isEnabled(),
        "step": panel.step_button.isEnabled(),
    }


def test_buttons_carry_names_tooltips_and_accessible_names(panel: RunPanel) -> None:
    for button, name in (
        (panel.train_button, "trainButton"),
        (panel.pause_button, "pauseButton"),
        (panel.stop_button, "stopButton"),
        (panel.step_button, "stepButton"),
    ):
        assert button.objectName() == name
        assert button.toolTip()
        assert button.accessibleName()


@pytest.mark.parametrize(
    ("state", "expected", "pause_text"),
    [
        ("idle", {"train": True, "pause": False, "stop": False, "step": True}, "Pause"),
        ("running", {"train": False, "pause": True, "stop": True, "step": False}, "Pause"),
        ("paused", {"train": False, "pause": True, "stop": True, "step": True}, "Resume"),
    ],
)
def test_buttons_enabled_per_state(
    panel: RunPanel, state: str, expected: dict[str, bool], pause_text: str
) -> None:
    panel.set_state("running")  # start away from the tested state, so the change shows
    panel.set_state(state)
    assert enabled(panel) == expected
    assert panel.pause_button.text() == pause_text


def test_unknown_state_is_refused(panel: RunPanel) -> None:
    with pytest.raises(ValueError, match="'stopped'"):
        panel.set_state("stopped")


def test_train_disallowed_shows_the_reason(panel: RunPanel) -> None:
    panel.set_train_allowed(False, "Layer 3 (Linear): in_features cannot be inferred")
    assert not panel.train_button.isEnabled()
    assert not panel.step_button.isEnabled()
    assert panel.train_button.toolTip() == "Layer 3 (Linear): in_features cannot be inferred"

    panel.set_train_allowed(True, "")
    assert panel.train_button.isEnabled()
    assert "Layer 3" not in panel.train_button.toolTip()


def test_clicks_emit_intents_and_pause_toggles_to_resume(panel: RunPanel, qtbot: QtBot) -> None:
    with qtbot.waitSignal(panel.train_requested, timeout=1000):
        panel.train_button.click()
    panel.set_state("running")
    with qtbot.waitSignal(panel.pause_requested, timeout=1000):
        panel.pause_button.click()
    panel.set_state("paused")
    with qtbot.waitSignal(panel.resume_requested, timeout=1000):
        panel.pause_button.click()
    with qtbot.waitSignal(panel.step_requested, timeout=1000):
        panel.step_button.click()
    with qtbot.waitSignal(panel.stop_requested, timeout=1000):
        panel.stop_button.click()


def test_progress_text_and_eta_from_progress_through_the_whole_run(
    panel: RunPanel, clock: FakeClock
) -> None:
    panel.reset(started())
    clock.now += 100.0  # 100 s for the first 1,876 of 9,380 batches: 400 s to go
    panel.add_batches([batch(2, 937)])
    assert panel.progress_text() == "Epoch 2/10 · batch 937/938 · 1,234 samples/s · ETA 6:40"
    assert panel.progress.value() == 2000  # 20.00 % of 10,000 steps

    clock.now += 20.0
    panel.add_batches([batch(3, 119)])
    assert panel.progress_text().startswith("Epoch 3/10 · batch 119/938 · 1,234 samples/s · ETA ")


def test_resumed_run_counts_progress_from_its_first_epoch(
    panel: RunPanel, clock: FakeClock
) -> None:
    panel.reset(started(epochs=4, batches=10, start_epoch=3))
    clock.now += 30.0
    panel.add_batches([batch(3, 9, batches=10)])
    assert panel.progress.value() == 5000
    assert panel.progress_text().endswith("ETA 0:30")


def test_epoch_end_and_finish_update_the_bar(panel: RunPanel, clock: FakeClock) -> None:
    panel.reset(started(epochs=2, batches=10))
    clock.now += 10.0
    panel.add_epoch(
        factories.epoch_report(
            epochs=2,
            train_loss=0.4,
            val_loss=0.5,
            val_accuracy=0.875,
            lr=0.1,
            samples_per_second=2000.0,
            elapsed_seconds=10.0,
        )
    )
    assert panel.progress_text() == "Epoch 1/2 done · val acc 87.50% · 2,000 samples/s · ETA 0:10"
    assert "87.50%" in panel.progress.text()  # '%' is not eaten as a placeholder

    panel.show_finished({"status": "completed", "epochs_completed": 2, "wall_seconds": 3725.0})
    assert panel.progress_text() == "Done: 2 epoch(s) in 1:02:05"
    assert panel.progress.value() == panel.progress.maximum()

    panel.show_failed("CUDA out of memory")
    assert panel.progress_text() == "Failed: see the log"
    assert panel.progress.toolTip() == "CUDA out of memory"


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 42.4, 725, 3725)] == ["0:00", "0:42", "12:05", "1:02:05"]
