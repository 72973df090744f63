"""The two-step start: the window frame shows before PyTorch loads, the panels follow."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from workbench.ui import main_window
from workbench.ui.main_window import MainWindow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_modal_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A modal question would hang a failing test at teardown: answer as a hurried user."""
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Discard)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)


def _deferred_window(qtbot, tmp_path: Path) -> MainWindow:  # type: ignore[no-untyped-def]
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        settings=settings, runs_dir=tmp_path / "runs", recovery_dir=tmp_path / "rec", deferred=True
    )
    qtbot.addWidget(window)
    window.show()
    return window


def _broken_torch_import() -> None:
    raise ImportError("libtorch_cpu.so: cannot open shared object file")


def _close_built(window: MainWindow) -> None:
    """Close a fully built window as a user who saved nothing, and join its preview thread."""
    window.document.undo_stack.setClean()
    assert window.close()
    window.data_panel.shutdown()


def test_the_window_module_does_not_load_pytorch() -> None:
    """What lets the frame show in about a second: PyTorch alone takes ~2 s to import here."""
    code = (
        "import sys; import workbench.app, workbench.ui.main_window; "
        "print(sorted(m for m in ('torch', 'pyqtgraph', 'torchvision') if m in sys.modules))"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_deferred_window_shows_loading_then_builds_the_panels(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = _deferred_window(qtbot, tmp_path)
    assert not window.is_ready
    assert window.centralWidget() is window.loading_view
    assert window.loading_view.message.text() == "Loading PyTorch…"
    assert window.windowTitle() == "Torch Workbench"
    opened: list[bool] = []
    with qtbot.waitSignal(window.ready, timeout=60_000):
        window.load_in_background(then=lambda: opened.append(True))
    assert window.is_ready and opened == [True]
    assert window.centralWidget() is not window.loading_view
    window.open_startup(None)
    assert window.windowTitle().startswith("digits-mlp (preset)")
    assert window.layer_panel.model.rowCount() > 0
    assert window.layers_dock.isVisible() and window.findChild(type(window.tabs), "mainTabs")
    _close_built(window)


def test_closing_while_pytorch_loads_ends_cleanly(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = _deferred_window(qtbot, tmp_path)
    window.load_in_background()
    assert window.close()  # nothing to save yet; the loader thread is joined (no QThread leak)
    assert not window.isVisible()


def test_a_broken_pytorch_install_is_explained_in_the_window(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(main_window, "import_heavy_modules", _broken_torch_import)
    window = _deferred_window(qtbot, tmp_path)
    window.load_in_background()
    qtbot.waitUntil(lambda: "could not load PyTorch" in window.loading_view.message.text())
    text = window.loading_view.message.text()
    assert "libtorch_cpu.so: cannot open shared object file" in text
    assert 'python -c "import torch"' in text
    assert not window.is_ready and window.loading_view.busy.isHidden()
    assert window.close()


def test_startup_check_reports_shown_and_ready_times(tmp_path: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "--startup-check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    match = re.search(
        r"^window shown after ([\d.]+) s, ready after ([\d.]+) s: digits-mlp \(preset\).*; Train enabled$",
        result.stdout,
        re.MULTILINE,
    )
    assert match, result.stdout
    assert float(match[1]) <= float(match[2])


def test_a_new_window_builds_its_hidden_tab_pages_when_idle(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The pages of tabs not shown (Insight, Checkpoint, ...) are left out of the path to a usable
    window and built right after it, one per turn of the event loop."""
    window = _deferred_window(qtbot, tmp_path)
    with qtbot.waitSignal(window.ready, timeout=60_000):
        window.load_in_background(then=lambda: window.open_startup(None))
    qtbot.waitUntil(lambda: not window.tabs.has_pending(), timeout=30_000)
    for page in ("insight_panel", "checkpoint_editor", "quantization_panel", "profile_panel",
                 "experiments_tab", "generate_panel"):  # fmt: skip
        assert window.is_built(page), page
    assert window.tabs.indexOf(window.generate_panel) == window.tabs.count() - 1
    window.insight_panel.shutdown()
    window.experiments_tab.shutdown()
    window.generate_panel.shutdown()
    _close_built(window)


def test_deferred_window_restores_the_saved_dock_layout(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = _deferred_window(qtbot, tmp_path)
    with qtbot.waitSignal(first.ready, timeout=60_000):
        first.load_in_background()
    first.open_startup(None)
    first.runs_dock.raise_()
    first.settings_dock.close()  # the user hid one dock
    _close_built(first)

    again = _deferred_window(qtbot, tmp_path)
    with qtbot.waitSignal(again.ready, timeout=60_000):
        again.load_in_background()
    assert again.layers_dock.isVisible() and again.runs_dock.isVisible()
    assert not again.settings_dock.isVisible()
    assert again.menuBar().isVisible() and again.centralWidget().isVisible()
    _close_built(again)


def test_startup_check_ends_with_status_1_when_pytorch_cannot_load(
    qtbot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from workbench import app

    monkeypatch.setattr(main_window, "import_heavy_modules", _broken_torch_import)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # run_app installs its own hook
    windows: list[MainWindow] = []
    real_init = MainWindow.__init__

    def init(self: MainWindow, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        windows.append(self)

    monkeypatch.setattr(MainWindow, "__init__", init)
    assert app.run_app(startup_check=True) == 1
    assert "PyTorch could not be loaded: ImportError: libtorch_cpu.so" in capsys.readouterr().err
    for window in windows:
        qtbot.addWidget(window)


def test_the_loading_page_says_when_the_panels_are_being_built(
    qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    window = _deferred_window(qtbot, tmp_path)
    seen: list[str] = []
    build = window.finish_building

    def recording_build() -> None:
        seen.append(window.loading_view.message.text())
        build()

    monkeypatch.setattr(window, "finish_building", recording_build)
    with qtbot.waitSignal(window.ready, timeout=60_000):
        window.load_in_background()
    assert seen == ["Preparing the panels…"]
    _close_built(window)
