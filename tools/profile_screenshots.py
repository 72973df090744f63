"""Render the Profile tab and the Export Model dialog offscreen (docs/img/profile-panel.png,
docs/img/export-dialog.png): `python tools/profile_screenshots.py`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QSettings
from screenshots import save, settle, wait_until  # tools/screenshots.py, beside this file

from workbench.app import make_application
from workbench.ui.main_window import PRESETS_DIR, MainWindow

JOB_MS = 300_000


def main() -> int:
    app = make_application()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, runs_dir=scratch / "runs", recovery_dir=scratch)
        window.resize(1366, 768)
        window.show()
        window.open_preset(PRESETS_DIR / "mnist-cnn.toml")
        window.document.update_data(root=str(scratch / "data"), batch_size=32)
        panel = window.profile_panel
        panel.steps.setValue(4)
        window.profile_action.trigger()
        wait_until(app, lambda: panel.report is not None and not panel.job.is_busy, JOB_MS)
        panel.start_what_ifs()
        wait_until(app, lambda: not panel.job.is_busy, JOB_MS)
        settle(app, 300)
        save(panel, "profile-panel.png")
        dialog = window.show_export_dialog()
        dialog.output.setText(str(scratch / "mnist.onnx"))
        dialog.start_export()
        wait_until(app, lambda: dialog.last_result is not None and not dialog.job.is_busy, JOB_MS)
        settle(app, 300)
        save(dialog, "export-dialog.png")
        dialog.close()
        window.document.undo_stack.setClean()
        window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
