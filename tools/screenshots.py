"""Render the README screenshots offscreen: `make screenshots` (writes docs/img/*.png)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QWidget

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "img"
SCREEN = (1366, 768)
sys.path.insert(0, str(ROOT))

from workbench.app import make_application  # noqa: E402
from workbench.engine.experiment import load_experiment  # noqa: E402
from workbench.ui.main_window import MainWindow  # noqa: E402


def settle(app: QApplication, milliseconds: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(milliseconds, loop.quit)
    loop.exec()
    app.processEvents()


def wait_until(app: QApplication, condition: object, timeout_ms: int = 120_000) -> None:
    waited = 0
    while not condition() and waited < timeout_ms:  # type: ignore[operator]
        settle(app, 100)
        waited += 100


def save(widget: QWidget, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    widget.grab().save(str(IMAGES / name))
    print(f"wrote docs/img/{name}")


def main_window_shots(app: QApplication, scratch: Path) -> MainWindow:
    settings = QSettings(str(scratch / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings, runs_dir=scratch / "runs", recovery_dir=scratch / "rec")
    window.open_project(ROOT / "resources" / "presets" / "digits-mlp.toml")
    window.show()
    window.resize(*SCREEN)  # a 1366x768 laptop, the product's first user's screen
    wait_until(app, lambda: not window.data_panel.is_loading)
    settle(app, 500)
    save(window, "main-window.png")
    experiment = load_experiment(ROOT / "resources" / "presets" / "digits-mlp.toml")
    window.document.update_train(epochs=40)
    window.document.update_data(batch_size=16)
    del experiment
    window.start_training()
    wait_until(app, lambda: window.plots.epoch_points()["epoch"].size >= 6)
    settle(app, 300)
    save(window, "main-window-training.png")
    window.session.shutdown()
    settle(app, 200)
    window.set_dark_theme(True)
    settle(app, 300)
    save(window, "main-window-dark.png")
    window.set_dark_theme(False)
    settle(app, 200)
    return window


def main() -> int:
    app = make_application()
    with tempfile.TemporaryDirectory() as scratch:
        window = main_window_shots(app, Path(scratch))
        window.document.undo_stack.setClean()
        window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
