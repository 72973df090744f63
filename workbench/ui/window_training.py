"""The main window's Run menu: start, pause, step, stop and resume runs, and show their reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMainWindow, QMessageBox

from workbench.ui.error_dialog import show_error
from workbench.ui.project_document import ProjectDocument
from workbench.ui.screen_fit import ScrollingTabs

if TYPE_CHECKING:  # these load PyTorch: the window imports them once the frame is shown
    from workbench.controllers.run_session import RunSession
    from workbench.engine.reports import BatchReport, EpochReport, RunStarted
    from workbench.engine.run_history import RunResult
    from workbench.ui.data_panel import DataPanel
    from workbench.ui.layer_stack_panel import LayerStackPanel
    from workbench.ui.log_view import LogView
    from workbench.ui.memory_fit_line import MemoryFitLine
    from workbench.ui.plots import PlotsPanel
    from workbench.ui.run_panel import RunPanel
    from workbench.ui.training_panel import TrainingPanel

LOCKED_STACK = (
    "A run is training: the layer stack is read-only until it ends. Stop the run to edit it."
)


class RunControls(QMainWindow):
    """The training half of MainWindow (a mixin: MainWindow builds what it uses)."""

    document: ProjectDocument
    session: RunSession
    runs_dir: Path
    layer_panel: LayerStackPanel
    data_panel: DataPanel
    training_panel: TrainingPanel
    memory_fit: MemoryFitLine
    run_panel: RunPanel
    plots: PlotsPanel
    tabs: ScrollingTabs
    log_view: LogView
    train_action: QAction
    stop_action: QAction
    pause_action: QAction
    step_action: QAction
    last_run_dir: Path | None
    last_result: RunResult | None
    initial_weights: dict[str, object] | None
    preset_name: str | None

    if TYPE_CHECKING:  # made by the other halves of MainWindow

        @property
        def project_key(self) -> str: ...
        def update_model_actions(self) -> None: ...
        def _update_status(self) -> None: ...
        def model_validity(self) -> tuple[bool, str]: ...

    @property
    def last_summary(self) -> dict[str, object] | None:
        """The last run's summary (None before the first run ends)."""
        return dict(self.last_result.summary) if self.last_result is not None else None

    def train_problems(self) -> list[str]:
        problems = []
        ok, message = self.model_validity()
        if not ok and self.data_panel.is_loading and self.layer_panel.model.data_shape is None:
            problems.append("The Data panel is still reading the data; Train follows.")
        elif not ok:
            problems.append(message)
        problems.extend(self.training_panel.problems())
        return problems

    def _update_train_allowed(self) -> None:
        problems = self.train_problems()
        allowed = not problems and not self.session.is_running
        self.run_panel.set_train_allowed(not problems, "\n".join(problems))
        self.train_action.setEnabled(allowed)
        self.step_action.setEnabled(not problems)

    def _new_run_folder(self) -> Path:
        """runs_dir/<project>-<time>[-N], made now: the preset's name for a preset, never a clash."""
        from workbench.engine.run_files import claim_run_folder

        stem = self.preset_name or self.document.title.removesuffix(".toml")
        return claim_run_folder(self.runs_dir, stem)

    def start_training(self, start_paused: bool = False) -> None:
        if self.session.is_running:
            return
        problems = self.train_problems()
        if problems:
            show_error(self, "Cannot train yet", "\n".join(problems))
            return
        if not self.memory_fit.confirm_train(self):  # the estimate says it will not fit
            return
        self.last_run_dir = self._new_run_folder()
        self._clear_run_views()
        self.session.start(
            self.document.experiment,
            self.last_run_dir,
            project=self.project_key,
            start_paused=start_paused,
            initial_weights=self.initial_weights,
        )

    def resume_run(self, folder: str | Path) -> bool:
        """Continue an interrupted run from its checkpoint.pt, in its own folder."""
        from workbench.engine.errors import WorkbenchError
        from workbench.engine.run_history import read_run

        if self.session.is_running:
            return False
        try:
            run = read_run(Path(folder))
        except WorkbenchError as exc:
            show_error(self, "Cannot resume the run", str(exc))
            return False
        if run.checkpoint is None:
            show_error(self, "Cannot resume the run", f"{folder}: no checkpoint.pt to resume from")
            return False
        self.last_run_dir = run.folder
        self._clear_run_views()
        self.session.start(run.experiment, run.folder, project=run.project or self.project_key,
                           resume_from=run.checkpoint)  # fmt: skip
        return True

    def _clear_run_views(self) -> None:
        self.tabs.build_pending()  # every page listens to the run from its start
        self.plots.reset(None)
        self.run_panel.reset(None)
        self.log_view.clear()

    def stop_training(self) -> None:
        self.session.stop()

    def step_training(self) -> None:
        """One optimizer step: of the running run, or of a new run that then waits paused."""
        if self.document.experiment.train.ddp.enabled and not self.session.is_running:
            show_error(self, "Step", "Single steps need an in-process run; turn DDP off to step.")
            return
        if not self.session.is_running:
            self.start_training(start_paused=True)
        if self.session.supports_pause:
            self.session.step()

    def toggle_pause(self) -> None:
        session = self.session
        if not session.supports_pause:
            return
        if session.state == "paused":
            session.resume()
        elif session.state == "running":
            session.pause()

    def _edit_refused(self, reason: str) -> None:
        """A layer edit during a run: offer to stop the run (the edit can follow)."""
        answer = QMessageBox.question(self, "Stop the run?", f"{reason}\n\nStop the run now?")
        if answer == QMessageBox.StandardButton.Yes:
            self.stop_training()

    # ------------------------------------------------------------------ reports

    def _show_batches(self, reports: list[BatchReport]) -> None:
        self.plots.add_batches(reports)
        if self.session.state == "paused":  # a single Step: draw it now, not in 200 ms
            self.plots.flush()
        self.run_panel.add_batches(reports)
        self.log_view.add_batches(reports)

    def _on_run_started(self, report: RunStarted) -> None:
        self.plots.reset(report)
        self.run_panel.reset(report)
        self.log_view.add_started(report)

    def _on_epoch_ended(self, report: EpochReport) -> None:
        self.plots.add_epoch(report)
        self.run_panel.add_epoch(report)
        self.log_view.add_epoch(report)

    def _on_run_succeeded(self, summary: dict[str, object]) -> None:
        self.log_view.add_summary(summary)
        self.run_panel.show_finished(summary)

    def _on_run_failed(self, message: str) -> None:
        self.log_view.add_failure(message)
        self.run_panel.show_failed(message)
        show_error(self, "Training failed", message)

    def _on_run_ended(self, result: RunResult) -> None:
        self.last_result = result
        if result.succeeded:
            self.statusBar().showMessage(f"Run {result.ended}: files in {result.folder}", 8000)
        self.update_model_actions()

    def _on_state_changed(self, state: str) -> None:
        self.run_panel.set_state(state)
        running = state != "idle"
        if running:
            self.document.lock_layers(LOCKED_STACK)
        else:
            self.document.unlock_layers()
        pausable = self.session.supports_pause or not running
        self.run_panel.set_pausable(
            pausable, "A DDP run lives in other processes: it can stop, not pause"
        )
        self.stop_action.setEnabled(running)
        self.pause_action.setEnabled(running and pausable)
        self.update_model_actions()
        self._update_train_allowed()
        self._update_status()
