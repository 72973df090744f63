"""The log shows exactly the CLI's lines, stays bounded, and only follows the end when asked to."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from tests import factories
from workbench.engine.reports import BatchReport
from workbench.ui.log_view import LogView

STARTED = factories.started()


def batch(index: int, loss: float = 0.75) -> BatchReport:
    return factories.batch(1, index, loss=loss, step=index + 1)


@pytest.fixture
def log(qtbot: QtBot) -> LogView:
    view = LogView()
    qtbot.addWidget(view)
    view.resize(500, 200)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_log_is_read_only_and_named(log: LogView) -> None:
    assert log.objectName() == "logView"
    assert log.isReadOnly()
    assert log.accessibleName()


def test_batch_line_is_the_seed_style_text(log: LogView) -> None:
    log.add_started(STARTED)
    log.add_batches([batch(0)])

    lines = log.text().splitlines()
    assert lines[0].startswith("Training 1,234 parameters on cpu (32-true")
    assert lines[1] == "Epoch: 001/003 | Batch 000/002 | Train/Val Loss: 0.75"


def test_epoch_summary_and_failure_lines_match_the_cli(log: LogView) -> None:
    log.add_started(STARTED)
    log.add_epoch(factories.epoch_report(val_loss=None, val_accuracy=None))
    log.add_log("Early stopping: val_loss did not improve for 3 epochs")
    log.add_summary(
        {
            "status": "completed",
            "epochs_completed": 1,
            "wall_seconds": 2.04,
            "train_accuracy": 0.9,
            "val_accuracy": None,
            "train_loss": 0.5,
            "val_loss": None,
        }
    )
    log.add_failure("loss became NaN")

    assert log.text().splitlines()[1:] == [
        "Epoch: 001/003 | Train Acc: 90.00% | Val Acc: n/a | Train Loss: 0.5000"
        " | Val Loss: n/a | LR: 0.01 | 1,500 samples/s",
        "Early stopping: val_loss did not improve for 3 epochs",
        "Run completed after 1 epoch(s) in 2.0 s",
        "Train Acc: 90.00% | Val Acc: n/a | Train Loss: 0.5000 | Val Loss: n/a",
        "Training failed: loss became NaN",
    ]


def test_log_keeps_only_the_newest_lines(qtbot: QtBot) -> None:
    view = LogView(max_lines=50)
    qtbot.addWidget(view)
    view.add_started(STARTED)
    view.add_batches([batch(i % 2, loss=i / 100) for i in range(120)])

    lines = view.text().splitlines()
    assert len(lines) == 50
    assert lines[-1] == "Epoch: 001/003 | Batch 001/002 | Train/Val Loss: 1.19"


def test_log_follows_new_lines_only_when_the_user_is_at_the_end(log: LogView) -> None:
    log.add_started(STARTED)
    log.add_batches([batch(i % 2) for i in range(200)])
    scroll = log.verticalScrollBar()
    assert scroll.maximum() > 0
    assert scroll.value() == scroll.maximum()  # at the end: follows

    scroll.setValue(0)  # the user scrolled up to read
    log.add_batches([batch(0) for _ in range(50)])
    assert scroll.value() == 0

    scroll.setValue(scroll.maximum())
    log.add_batches([batch(1) for _ in range(50)])
    assert scroll.value() == scroll.maximum()


def test_log_in_a_hidden_tab_is_at_the_end_when_shown(qtbot: QtBot) -> None:
    view = LogView()
    qtbot.addWidget(view)
    view.resize(500, 200)
    view.add_started(STARTED)
    view.add_batches([batch(i % 2) for i in range(200)])
    view.show()
    qtbot.waitExposed(view)

    scroll = view.verticalScrollBar()
    assert scroll.maximum() > 0
    assert scroll.value() == scroll.maximum()
