"""Your own nn.Module in the window: asked before its file is imported, shown as a module tree
where the layer stack is, rebuilt when the file changes, and trained, saved, quantized and
asked for predictions through the run session like any model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QDropEvent
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from tests.own_models import CNN, MNIST_NET, MODELS, reference_model, write_project
from tests.ui.conftest import close_window, open_window
from workbench.engine.module_trust import TRUST_KEY, file_digest
from workbench.engine.quantization import MeasureSettings
from workbench.ui.main_window import MainWindow
from workbench.ui.module_panel import MESSAGE_PAGE, TREE_PAGE
from workbench.ui.trust_prompt import TRUST_BUTTON, TrustPrompt

FAST = MeasureSettings(repeats=2, warmup=1, threads=1, inference_options=False)
CNN_MODULES = ["conv1", "conv2", "dropout1", "fc1", "fc2"]


def asking(window: MainWindow, answer: bool) -> list[Path]:
    """Answer the trust prompt with ANSWER; returns the files asked about, in order."""
    asked: list[Path] = []

    def ask(_parent: object, path: Path) -> bool:
        asked.append(path)
        return answer

    window.trust_guard.ask = ask
    return asked


def marking_source(marker: Path, source: str = CNN) -> str:
    """The CNN, preceded by a line that writes MARKER when the file is imported."""
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n{source}"


def cnn_project(folder: Path, source: str = CNN) -> tuple[Path, Path]:
    """A digits project naming models/net.py:Net; (the experiment file, the model file)."""
    experiment = write_project(folder, MODELS["cnn"])
    code = folder / "models" / "net.py"
    code.write_text(source, encoding="utf-8")
    return experiment, code


def wait_rebuilt(qtbot: QtBot, window: MainWindow, work: Callable[[], object]) -> None:
    with qtbot.waitSignal(window.module_panel.rebuilt, timeout=30_000):
        work()


def test_a_project_naming_a_module_shows_its_tree_trains_saves_quantizes_and_predicts(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    asked = asking(window, True)
    experiment, code = cnn_project(tmp_path / "project")
    assert window.open_project(experiment)
    panel = window.module_panel
    assert asked == [code]
    assert window.model_pages.currentWidget() is panel
    assert window.layers_dock.windowTitle() == "Model code"
    assert panel.pages.currentIndex() == TREE_PAGE
    assert panel.tree_model.paths() == CNN_MODULES
    assert panel.title.text() == "Net from net.py"
    assert panel.total.text() == "Total parameters: 3,658"
    row = [panel.tree_model.item(1, column).text() for column in range(4)]
    assert row == ["conv2", "Conv2d", "[16, 4, 4]", "1,168"]
    assert window.run_panel.train_button.isEnabled()
    summary = window.model_view.summary()  # the Model tab: print(model), the table, the total
    assert (
        summary.startswith("Net(") and "Total number of trainable model parameters: 3658" in summary
    )

    window.document.update_train(device="cpu")
    with qtbot.waitSignal(window.session.run_ended, timeout=120_000) as ended:
        window.start_training()
    result = ended.args[0]
    assert result.succeeded, result.message
    assert result.summary["parameters"] == 3_658 and len(result.history) == 1
    assert window.model_status.text() == "Model: run 1"

    weights = tmp_path / "net.pth"
    assert window.save_weights_file(weights)
    by_hand = reference_model(tmp_path / "project", MODELS["cnn"])
    by_hand.load_state_dict(torch.load(weights, weights_only=True))  # the class's own keys
    assert [name for name, _ in by_hand.named_parameters()][:2] == ["conv1.weight", "conv1.bias"]

    lab = window.quantization_panel
    lab.measure = FAST
    lab.output.setText(str(tmp_path / "quantized"))
    with qtbot.waitSignal(lab.report_shown, timeout=180_000) as shown:
        lab.run_button.click()
    assert shown.args[0].float_model.accuracy == pytest.approx(result.history[-1].val_accuracy)
    qtbot.waitUntil(lambda: not lab.controller.is_running, timeout=30_000)
    insight = window.insight_panel
    qtbot.waitUntil(lambda: insight.predict.model is not None, timeout=60_000)
    assert len(insight.predict.class_names) == 10
    assert asked == [code]  # training, quantizing and predicting asked nothing more


def test_the_window_asks_before_importing_the_first_time_not_the_second(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closing asks to save the edited project: discard, as the `window` fixture does.
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Discard)
    marker = tmp_path / "imported.txt"
    experiment, code = cnn_project(tmp_path / "project", marking_source(marker))
    window = open_window(qtbot, tmp_path)
    asked = asking(window, False)
    assert window.open_project(experiment)
    panel = window.module_panel
    assert asked == [code]
    assert not marker.exists()  # declining imports nothing
    assert panel.pages.currentIndex() == MESSAGE_PAGE
    assert panel.total.text() == "Not imported"
    assert str(code) in panel.message.toPlainText()
    assert "not agreed" in panel.message.toPlainText()
    assert not window.run_panel.train_button.isEnabled()
    window.document.update_train(epochs=2)  # other edits do not ask again
    assert asked == [code] and not marker.exists()

    asked = asking(window, True)
    panel.reload()  # Reload asks again
    assert asked == [code] and marker.exists()
    assert panel.total.text() == "Total parameters: 3,658"
    assert window.run_panel.train_button.isEnabled()
    close_window(window)
    window.code_trust.uninstall()

    # A second window with the same settings: the unchanged file is not asked about.
    marker.unlink()
    again = open_window(qtbot, tmp_path)
    asked = asking(again, False)
    assert again.open_project(experiment)
    assert asked == []
    assert again.module_panel.total.text() == "Total parameters: 3,658"
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert file_digest(code) in str(settings.value(TRUST_KEY))
    # ... and a changed file is asked about again.
    code.write_text(marking_source(marker, CNN.replace("nn.Linear(32,", "nn.Linear(32, ")))
    assert again.open_project(experiment)
    assert asked == [code] and not marker.exists()
    close_window(again)


def test_editing_the_file_on_disk_rebuilds_the_tree_and_a_syntax_error_shows_its_line(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    asked = asking(window, True)
    experiment, code = cnn_project(tmp_path / "project")
    assert window.open_project(experiment)
    panel = window.module_panel
    assert panel.total.text() == "Total parameters: 3,658"

    wider = CNN.replace("nn.Linear(64, 32)", "nn.Linear(64, 48)").replace(
        "Linear(32,", "Linear(48,"
    )
    code.write_text(wider, encoding="utf-8")
    qtbot.waitUntil(lambda: panel.total.text() == "Total parameters: 4,858", timeout=30_000)
    assert asked == [code, code]  # the new content was asked about

    broken = wider.replace("class Net(nn.Module):", "class Net(nn.Module)")
    code.write_text(broken, encoding="utf-8")
    qtbot.waitUntil(lambda: panel.pages.currentIndex() == MESSAGE_PAGE, timeout=30_000)
    line = broken.splitlines().index("class Net(nn.Module)") + 1
    message = panel.message.toPlainText()
    assert f"{code}, line {line}: SyntaxError" in message
    assert "class Net(nn.Module)" in message
    assert panel.total.text() == "Your model code fails"
    assert not window.run_panel.train_button.isEnabled()
    assert window.train_problems() == [panel.problem]

    opened: list[QUrl] = []
    window_open = QDesktopServices.openUrl
    try:
        QDesktopServices.openUrl = lambda url: opened.append(url) or True  # type: ignore[assignment,method-assign]
        assert panel.open_in_editor()
    finally:
        QDesktopServices.openUrl = window_open  # type: ignore[method-assign]
    assert opened == [QUrl.fromLocalFile(str(code))]

    code.write_text(CNN, encoding="utf-8")  # fixed again
    qtbot.waitUntil(lambda: panel.total.text() == "Total parameters: 3,658", timeout=30_000)
    assert len(asked) == 4  # each new content is asked about: one agreement per file


def test_open_model_code_makes_an_unsaved_project_with_the_chosen_class(
    qtbot: QtBot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = asking(window, True)
    code = tmp_path / "two.py"
    code.write_text(CNN + "\n\ndef make_small():\n    return Net(num_classes=10)\n")
    offered: list[list[str]] = []

    def get_item(*args: object) -> tuple[str, bool]:
        offered.append(list(args[3]))  # type: ignore[call-overload]
        return "make_small", True

    monkeypatch.setattr("workbench.ui.window_code.QInputDialog.getItem", get_item)
    data = window.document.experiment.data
    assert window.open_model_code_file(code)
    assert offered == [["Net", "main", "make_small"]]
    experiment = window.document.experiment
    assert experiment.model.module == f"{code}:make_small"
    assert experiment.data == data and window.document.path is None
    assert window.document.is_dirty
    assert asked == [code]
    assert window.module_panel.title.text() == "make_small from two.py"
    assert window.module_panel.tree_model.paths() == CNN_MODULES


def test_the_trust_prompt_shows_the_path_and_agrees_only_on_trust_and_run(
    qtbot: QtBot, tmp_path: Path
) -> None:
    path = tmp_path / "models" / "net.py"
    for button, agreed in (("trust_button", True), ("cancel_button", False)):
        prompt = TrustPrompt(path)
        qtbot.addWidget(prompt)
        assert str(path) in prompt.text() and prompt.trust_button.text() == TRUST_BUTTON
        QTimer.singleShot(0, getattr(prompt, button).click)
        prompt.exec()
        assert prompt.agreed() is agreed


def test_the_mnist_net_of_the_docs_shows_its_tree_and_on_8x8_digits_the_line_that_fails(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    asked = asking(window, True)
    code = tmp_path / "net.py"
    code.write_text(MNIST_NET, encoding="utf-8")
    assert window.open_model_code_file(code)  # one class: nothing to choose
    panel = window.module_panel
    message = panel.message.toPlainText()  # digits are 8x8: fc1 cannot take what conv2 gives
    assert panel.pages.currentIndex() == MESSAGE_PAGE
    line = MNIST_NET.splitlines().index("        x = F.relu(self.fc1(x))") + 1
    assert f"{code}, line {line}, in forward: RuntimeError: mat1 and mat2 shapes" in message
    assert "x = F.relu(self.fc1(x))" in message

    project = tmp_path / "mnist-net.toml"  # the docs' experiment, with MNIST's input shape
    project.write_text(
        '[model]\nmodule = "net.py:Net"\ninput_shape = [1, 28, 28]\n[data]\nname = "digits"\n'
        '[train]\nloss = "nll"\n',
        encoding="utf-8",
    )
    assert window.open_project(project)
    assert asked == [code]  # the same content: agreed to already
    assert panel.total.text() == "Total parameters: 1,199,882"
    fc1 = [panel.tree_model.item(4, column).text() for column in range(4)]
    assert fc1 == ["fc1", "Linear", "[128]", "1,179,776"]


def test_dropping_a_python_file_opens_it_as_model_code(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    asked = asking(window, True)
    code = tmp_path / "net.py"
    code.write_text(MNIST_NET, encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(code))])
    window.dropEvent(
        QDropEvent(
            QPointF(5, 5),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
    )
    assert window.document.experiment.model.module == f"{code}:Net"
    assert asked == [code] and window.module_panel.title.text() == "Net from net.py"
