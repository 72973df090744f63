"""Say when the chosen precision is slower than float32 here: measured once in the background,
remembered in the settings per device and PyTorch version."""

from __future__ import annotations

import json
from typing import cast

from PySide6.QtCore import QObject, QSettings

from workbench.controllers.background_task import BackgroundTask
from workbench.ui.project_document import ProjectDocument
from workbench.ui.training_panel import PRECISION_LABELS, TrainingPanel

SETTINGS_GROUP = "precisionSpeed"


class PrecisionSpeedCheck(QObject):
    """Watches the document's device and precision; shows the training panel a note when the
    precision measured slower than float32 on that device."""

    def __init__(
        self, settings: QSettings, document: ProjectDocument, panel: TrainingPanel
    ) -> None:
        super().__init__(panel)
        self.settings, self.document, self.panel = settings, document, panel
        self.task = BackgroundTask(self)
        self.task.succeeded.connect(self._measured)
        self.task.failed.connect(self._not_measured)
        self._measuring: str | None = None  # the settings key being measured
        document.changed.connect(self.update)
        self.update()

    def settings_key(self) -> str:
        import torch

        device = self.panel.selected_device().name.replace(":", "-")
        return f"{SETTINGS_GROUP}/{device}-torch-{torch.__version__}"

    def remembered(self) -> dict[str, float] | None:
        raw = self.settings.value(self.settings_key())
        try:
            values = json.loads(str(raw)) if raw is not None else None
        except ValueError:
            return None
        return {str(k): float(v) for k, v in values.items()} if isinstance(values, dict) else None

    def update(self) -> None:
        """Show the note for the chosen precision; measure first if this device never was."""
        from workbench.engine.choice_costs import precision_slowdowns, slowdown_note

        precision = self.document.experiment.train.precision
        if precision == "32-true":
            self.panel.set_precision_note(None)
            return
        slowdowns = self.remembered()
        if slowdowns is None:
            key = self.settings_key()
            if self._measuring != key:
                self._measuring = key
                device = self.panel.selected_device()
                self.panel.set_precision_note("Measuring its speed against float32…")
                self.task.run(lambda: (key, precision_slowdowns(device)))
            return
        note = slowdown_note(slowdowns.get(precision, 1.0))
        label = PRECISION_LABELS.get(precision, precision)
        self.panel.set_precision_note(f"{label}: {note}" if note else None)

    def _measured(self, result: object) -> None:
        key, slowdowns = cast(tuple[str, dict[str, float]], result)
        self.settings.setValue(key, json.dumps(slowdowns))
        self.settings.sync()
        self._measuring = None
        self.update()

    def _not_measured(self, _message: str) -> None:
        """A failed measurement is no reason to warn: remember that, and say nothing."""
        if self._measuring is not None:
            self.settings.setValue(self._measuring, json.dumps({}))
        self._measuring = None
        self.update()

    def shutdown(self) -> None:
        self.task.jobs.shutdown()
