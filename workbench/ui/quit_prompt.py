"""Before quitting during a run: name the run and say what quitting does to it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox, QWidget

from workbench.controllers.run_session import RunSession
from workbench.controllers.sweep_controller import SweepController


def run_in_progress_text(session: RunSession, folder: Path | None) -> str | None:
    """What the quit prompt says about the run in progress, or None when none is."""
    if not session.is_running:
        return None
    name = f"“{folder.name}”" if folder is not None else "The run"
    started, batch = session.last_started, session.last_batch
    where = ""
    if batch is not None:
        where = f" (epoch {batch.epoch} of {started.epochs if started else '?'}"
        where += f", batch {batch.batch}/{batch.batches})"
    elif started is not None:
        where = f" (starting epoch {started.start_epoch} of {started.epochs})"
    state = "is paused" if session.state == "paused" else "is training"
    if folder is None:
        keeps = "Nothing of it is kept: it has no run folder."
    else:
        keeps = (
            f"Its weights so far (model.pth), the metrics of the epochs it finished and the "
            f"checkpoint of the last one stay in {folder}."
        )
    return f"{name} {state}{where}.\n\nQuitting stops it after the current batch. {keeps}"


def confirm_quit_during_run(parent: QWidget, session: RunSession, folder: Path | None) -> bool:
    """True when no run is in progress, or the user agrees to stop it and quit."""
    return _agrees(parent, "Stop the run and quit?", run_in_progress_text(session, folder))


def sweep_in_progress_text(sweeps: SweepController) -> str | None:
    """What the quit prompt says about the sweep in progress, or None when none is."""
    current = sweeps.current
    if not sweeps.is_running or current is None:
        return None
    waiting = len(sweeps.queue)
    queued = f" {waiting} more sweep(s) wait in the queue and are forgotten." if waiting else ""
    return (
        f"The sweep into “{current.out_dir.name}” is running ({current.trials} trials).\n\n"
        "Quitting stops its current trial after this batch. The finished trials stay in "
        f"{current.out_dir}; the same sweep into that folder again skips them and resumes the "
        f"stopped one.{queued}"
    )


def confirm_quit_during_sweep(parent: QWidget, sweeps: SweepController) -> bool:
    """True when no sweep is in progress, or the user agrees to stop it and quit."""
    return _agrees(parent, "Stop the sweep and quit?", sweep_in_progress_text(sweeps))


def _agrees(parent: QWidget, title: str, text: str | None) -> bool:
    """Nothing to say (None), or Yes to TEXT; Cancel is the default button."""
    if text is None:
        return True
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel
    answer = QMessageBox.question(parent, title, text, buttons, QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes
