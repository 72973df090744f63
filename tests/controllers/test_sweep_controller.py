"""The sweep queue: sweeps run in order on a worker, Stop ends after the batch and halts the queue."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from tests.conftest import PRESETS
from workbench.controllers.sweep_controller import SweepController
from workbench.engine.experiment import load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.sweep_plan import SweepSpec, plan_trials


def toy_spec(*lrs: float) -> SweepSpec:
    base = load_experiment(PRESETS / "toy-mlp.toml")
    experiment = with_overrides(base, {"train.epochs": 2, "train.device": "cpu"}, source="test")
    return SweepSpec(experiment, grid=(("train.lr", lrs),))


def test_the_queue_runs_in_order_and_stop_halts_it_until_run(qtbot: QtBot, tmp_path: Path) -> None:
    controller = SweepController()
    first, second = toy_spec(0.5, 0.1), toy_spec(0.05)
    controller.add(first, tmp_path / "a", len(plan_trials(first)))
    controller.add(second, tmp_path / "b", 1)
    controller.add(second, tmp_path / "c", 1)
    controller.remove(2)
    assert [item.out_dir.name for item in controller.queue] == ["a", "b"]
    assert controller.queue[0].name == "train.lr (grid, 2 trials) → a"

    # Stop as the first trial starts (on the worker, so the trial cannot finish first).
    controller.trial_started.connect(
        lambda number: controller.stop(), Qt.ConnectionType.DirectConnection
    )
    states: list[str] = []
    controller.state_changed.connect(states.append)
    with qtbot.waitSignal(controller.sweep_finished, timeout=60_000) as finished:
        assert controller.run()
    results, stopped = finished.args
    assert stopped
    assert [r.status for r in results] == ["stopped", "pending"]
    qtbot.waitUntil(lambda: controller.state == "idle")
    assert states == ["running", "stopping", "idle"]
    # The stopped sweep waits at the head of the queue.
    assert [item.out_dir.name for item in controller.queue] == ["a", "b"]

    controller.trial_started.disconnect()
    ended: list[tuple[list[str], bool]] = []
    controller.sweep_finished.connect(lambda r, s: ended.append(([x.status for x in r], s)))
    assert controller.run()
    qtbot.waitUntil(lambda: len(ended) == 2 and not controller.is_running, timeout=120_000)
    assert ended == [(["completed", "completed"], False), (["completed"], False)]
    assert (tmp_path / "b" / "trial-001" / "model.pth").is_file()
    assert not controller.queue and not controller.run()
    controller.shutdown()


def test_a_sweep_that_cannot_start_says_why_and_the_queue_waits(
    qtbot: QtBot, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine", encoding="utf-8")
    controller = SweepController()
    controller.add(toy_spec(0.5), taken, 1)
    controller.add(toy_spec(0.1), tmp_path / "next", 1)
    with qtbot.waitSignal(controller.sweep_failed, timeout=60_000) as failed:
        controller.run()
    assert failed.args[0] == (
        f"{taken}: the folder is not empty and holds no sweep.json; "
        "give a new or empty folder to --out"
    )
    qtbot.waitUntil(lambda: not controller.is_running)
    assert [item.out_dir.name for item in controller.queue] == ["next"]
    controller.shutdown()
