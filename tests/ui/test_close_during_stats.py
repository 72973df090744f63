"""Closing the window while tensor statistics run: the process ends with status 0, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

# The window as `workbench FILE` opens it; once the big tensor's statistics run, close it.
DRIVER = """
import sys
from pathlib import Path
from PySide6.QtCore import QSettings, QTimer
from workbench.app import make_application
from workbench.ui.main_window import MainWindow

tmp = Path(sys.argv[2])
app = make_application()
settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
window = MainWindow(settings=settings, runs_dir=tmp / "runs", recovery_dir=tmp / "rec")
window.show()
window.open_startup(Path(sys.argv[1]))
editor = window.checkpoint_editor
loader = editor.document.loader
loader.cancelled.connect(lambda name, token: print("cancelled", name, flush=True))
loader.finished.connect(lambda name, token, result: print("finished", name, flush=True))

def step():
    if not editor.document.is_open:
        QTimer.singleShot(20, step)
    elif not loader.is_running("stats"):
        editor.key_tree.select_path("w")
        QTimer.singleShot(20, step)
    else:
        print("closing while statistics run", flush=True)
        window.close()

QTimer.singleShot(0, step)
sys.exit(app.exec())
"""


def test_closing_the_window_during_statistics_exits_0_without_a_traceback(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.pt"
    torch.save({"w": torch.ones(64_000_000)}, big)  # 256 MB: statistics take seconds
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", DRIVER, str(big), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "closing while statistics run" in result.stdout
    assert "cancelled stats" in result.stdout  # stopped, not waited for
    assert "finished stats" not in result.stdout
    assert "Traceback" not in result.stderr
    assert "QThread" not in result.stderr
