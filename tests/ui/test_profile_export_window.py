"""The window's Profile tab and File > Export Model…: what a user sees after each, and failures."""

from __future__ import annotations

from pathlib import Path

import onnxruntime
import pytest
import torch
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.profiling import WhatIf
from workbench.engine.profiling.report import MEASURED, SKIPPED
from workbench.engine.quantization import MeasureSettings, QuantizationOptions, quantize_experiment
from workbench.ui.export_dialog import ExportDialog
from workbench.ui.main_window import PRESETS_DIR, MainWindow
from workbench.ui.profile_panel import COMPILE_SKIPPED, ProfilePanel
from workbench.ui.profile_table import HOTTEST_ROLE, SHARE_COLUMN, SHARE_ROLE

JOB_TIMEOUT_MS = 240_000  # a profile or an export on a busy shared machine


@pytest.fixture
def mnist_window(window: MainWindow, tmp_path: Path) -> MainWindow:
    """mnist-cnn with its data root an empty folder (random MNIST-shaped batches), batch 16."""
    window.open_preset(PRESETS_DIR / "mnist-cnn.toml")
    window.document.update_data(root=str(tmp_path / "data"), batch_size=16)
    return window


def profile(qtbot: QtBot, window: MainWindow, steps: int = 3) -> ProfilePanel:
    panel = window.profile_panel
    panel.steps.setValue(steps)
    with qtbot.waitSignal(panel.report_shown, timeout=JOB_TIMEOUT_MS):
        window.profile_action.trigger()
    qtbot.waitUntil(lambda: not panel.job.is_busy)
    return panel


def test_profile_shows_the_chart_and_marks_conv2_as_the_hottest_layer(
    qtbot: QtBot, mnist_window: MainWindow, tmp_path: Path
) -> None:
    window = mnist_window
    assert window.profile_action.shortcut().toString() == "Ctrl+Shift+P"
    panel = profile(qtbot, window)

    assert window.tabs.currentWidget() is panel
    assert panel.heading.text() == "Profile of fresh initialisation"
    model = panel.table_model
    names = [model.index(row, 0).data() for row in range(model.rowCount())]
    assert names[:5] == ["conv1", "relu1", "conv2", "relu2", "pool"]
    hottest = model.hottest_row
    assert hottest is not None and names[hottest] == "conv2"
    assert model.index(hottest, 1).data() == "Conv2d"
    assert model.index(hottest, SHARE_COLUMN).data(HOTTEST_ROLE) is True
    assert model.index(hottest, 0).data(Qt.ItemDataRole.FontRole).bold()
    shares = [model.index(row, SHARE_COLUMN).data(SHARE_ROLE) for row in range(model.rowCount())]
    assert max(shares) == shares[hottest] and 0 < shares[hottest] < 1
    assert panel.table.selectionModel().selectedRows()[0].row() == hottest
    assert "Hottest layer: conv2 (Conv2d)" in panel.status.text()
    assert "batch 16, 3 steps" in panel.status.text()
    # the hottest layer's row of the layer stack is selected
    stack_row = window.layer_panel.current_row()
    assert stack_row is not None
    assert window.layer_panel.model.layer(stack_row).type == "Conv2d"
    assert window.layer_panel.model.plan.rows[stack_row].name == "conv2"
    # the step split and peak memory
    split = panel.step_label.text()
    assert split.startswith("Step ") and all(
        phase in split for phase in ("data", "forward", "backward", "optimizer")
    )
    assert panel.memory_label.text().startswith("Peak memory ")
    assert "MiB held" in panel.memory_label.text()
    # the Chrome trace can be saved
    assert panel.trace_button.isEnabled() and panel.what_if_button.isEnabled()
    saved = tmp_path / "trace.json"
    assert panel.save_trace(saved)
    assert '"traceEvents"' in saved.read_text() and "conv2" in saved.read_text()
    assert "Saved the Chrome trace" in panel.status.text()


def test_what_ifs_are_measured_on_demand_and_shown_as_speed_ratios(
    qtbot: QtBot, mnist_window: MainWindow
) -> None:
    panel = profile(qtbot, mnist_window, steps=1)
    assert panel.what_if_table.rowCount() == 0  # nothing measured before the button
    with qtbot.waitSignal(panel.what_ifs_shown, timeout=JOB_TIMEOUT_MS) as shown:
        panel.what_if_button.click()
    qtbot.waitUntil(lambda: not panel.job.is_busy)
    what_ifs: tuple[WhatIf, ...] = shown.args[0]
    table = panel.what_if_table
    rows = {table.item(row, 0).text(): row for row in range(table.rowCount())}
    # mnist-cnn trains channels-last: the what-if is the other memory layout
    assert set(rows) == {"contiguous (NCHW)", "bf16-mixed", "torch.compile", "batch 32"}
    for what_if in what_ifs:
        speed = table.item(rows[what_if.name], 1).text()
        if what_if.status == MEASURED:
            assert speed.endswith(("× faster", "× slower")), speed
        else:
            assert speed == "—"
    compiled = next(what_if for what_if in what_ifs if what_if.name == "torch.compile")
    assert compiled.status == SKIPPED  # not ticked
    assert table.item(rows["torch.compile"], 2).text() == COMPILE_SKIPPED
    assert table.item(rows["batch 32"], 1).text() != "—"


def test_a_profile_can_be_cancelled_and_shows_nothing(
    qtbot: QtBot, mnist_window: MainWindow
) -> None:
    panel = mnist_window.profile_panel
    panel.steps.setValue(200)
    progress: list[float] = []  # `progressed` comes from the worker thread: only append there
    panel.job.progressed.connect(lambda _text, fraction: progress.append(fraction))
    assert mnist_window.profile_current_model()
    qtbot.waitUntil(lambda: bool(progress), timeout=JOB_TIMEOUT_MS)
    assert panel.cancel_button.isEnabled() and not panel.profile_button.isEnabled()
    with qtbot.waitSignal(panel.job.cancelled, timeout=JOB_TIMEOUT_MS):
        panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.job.is_busy)
    assert panel.status.text() == "Cancelled: nothing measured."
    assert panel.table_model.rowCount() == 0 and panel.report is None
    assert panel.profile_button.isEnabled() and not panel.what_if_button.isEnabled()


def test_profile_is_refused_while_a_run_trains(
    mnist_window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(type(mnist_window.session), "is_running", property(lambda _self: True))
    assert not mnist_window.profile_current_model()
    assert mnist_window.profile_panel.status.text().startswith("Stop the run first")
    assert not mnist_window.profile_panel.job.is_busy


def export(qtbot: QtBot, dialog: ExportDialog, fmt: str, output: Path) -> object:
    dialog.set_format(fmt)
    dialog.output.setText(str(output))
    with qtbot.waitSignal(dialog.exported, timeout=JOB_TIMEOUT_MS) as done:
        assert dialog.start_export()
    qtbot.waitUntil(lambda: not dialog.job.is_busy)
    return done.args[0]


def test_export_to_onnx_writes_the_file_and_shows_the_check(
    qtbot: QtBot, mnist_window: MainWindow, tmp_path: Path
) -> None:
    window = mnist_window
    assert window.export_model_action.text() == "Export &Model…"
    output = tmp_path / "out" / "mnist.onnx"
    dialog = window.show_export_dialog()
    assert window.export_dialog is dialog and dialog.isVisible()
    export(qtbot, dialog, "onnx", output)
    assert dialog.current_radio.text() == "Current model: fresh initialisation"
    assert output.is_file()
    assert dialog.verdict.text() == "Check passed: within the tolerance 0.0001"
    difference = dialog.difference.text()
    assert difference.startswith("Largest absolute difference from PyTorch: ")
    assert float(difference.split(": ")[1].split(" ")[0]) < 1e-4
    assert "batch 8: " in difference and "batch 1: " in difference and "onnxruntime" in difference
    assert dialog.file_label.text().startswith(f"Wrote {output} (")
    assert "KiB" in dialog.file_label.text() or "MiB" in dialog.file_label.text()
    assert dialog.message.text() == ""
    # the file is a model onnxruntime runs with any batch size
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(None, {"input": torch.zeros(3, 1, 28, 28).numpy()})
    assert outputs.shape == (3, 10)


@pytest.mark.parametrize(("fmt", "name"), [("pt2", "model.pt2"), ("torchscript", "model.pt")])
def test_each_format_writes_a_file_within_the_tolerance(
    qtbot: QtBot, mnist_window: MainWindow, tmp_path: Path, fmt: str, name: str
) -> None:
    dialog = mnist_window.show_export_dialog()
    assert Path(dialog.output.text()).suffix == ".onnx"
    dialog.set_format(fmt)
    assert Path(dialog.output.text()).name == name  # the usual suffix follows the format
    result = export(qtbot, dialog, fmt, tmp_path / name)
    assert (tmp_path / name).is_file()
    assert getattr(result, "format", None) == fmt and getattr(result, "passed", False)
    assert dialog.verdict.text().startswith("Check passed")


def test_an_export_failure_is_one_message_without_a_traceback(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    window.open_preset(PRESETS_DIR / "digits-mlp.toml")
    experiment = window.document.experiment
    torch.manual_seed(0)
    state = build_experiment_model(experiment).module.state_dict()
    quantized = quantize_experiment(
        experiment,
        state,
        QuantizationOptions(method="dynamic", path="eager", calibration_samples=32),
        tmp_path / "q",
        measure=MeasureSettings(repeats=1, warmup=0, threads=1, inference_options=False),
    ).model_path
    dialog = window.show_export_dialog()
    dialog.quantized_path.setText(str(quantized))
    dialog.quantized_radio.setChecked(True)
    dialog.set_format("onnx")
    dialog.output.setText(str(tmp_path / "int8.onnx"))
    with qtbot.waitSignal(dialog.export_failed, timeout=JOB_TIMEOUT_MS) as failed:
        assert dialog.start_export()
    qtbot.waitUntil(lambda: not dialog.job.is_busy)
    message = failed.args[0]
    assert dialog.message.text() == message
    assert "cannot be exported to onnx" in message and "it exports to torchscript" in message
    assert "Traceback" not in message and "\n" not in message
    assert dialog.verdict.text() == "Not exported"
    assert not (tmp_path / "int8.onnx").exists()


def test_the_dialog_follows_the_current_model_and_a_profile_the_stack(
    qtbot: QtBot, mnist_window: MainWindow, tmp_path: Path
) -> None:
    window = mnist_window
    dialog = window.show_export_dialog()
    experiment = window.document.experiment
    state = build_experiment_model(experiment).module.state_dict()
    weights = tmp_path / "trained.pth"
    torch.save(state, weights)
    assert window.load_weights_file(weights)
    assert dialog.current_radio.text() == "Current model: trained.pth (loaded file)"
    assert dialog.weights.keys() == state.keys()
    panel = profile(qtbot, window, steps=1)
    assert panel.heading.text() == "Profile of trained.pth (loaded file)"
    window.layer_panel.add_layer("ReLU")  # the profile no longer describes the stack
    assert panel.table_model.rowCount() == 0 and panel.report is None
    assert panel.heading.text() == "The layer stack has changed: profile it again."
    assert not panel.trace_button.isEnabled()
    source = window.profile_source()  # the loaded weights no longer fit: the stack, fresh
    assert source.description == (
        "the layer stack, freshly initialised (trained.pth (loaded file) no longer fits it)"
    )
    assert source.experiment == window.document.experiment
    assert len(source.experiment.model.layers) == 13


def test_bad_choices_in_the_export_dialog_are_named(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    dialog = window.show_export_dialog()
    dialog.quantized_radio.setChecked(True)
    dialog.quantized_path.setText(str(tmp_path / "missing.pt"))
    assert not dialog.start_export()
    assert dialog.message.text().endswith("missing.pt: no such file; choose one")
    dialog.current_radio.setChecked(True)
    dialog.output.setText(str(tmp_path))  # a folder
    with qtbot.waitSignal(dialog.export_failed, timeout=JOB_TIMEOUT_MS):
        assert dialog.start_export()
    qtbot.waitUntil(lambda: not dialog.job.is_busy)
    assert dialog.message.text().startswith(f"Output file {tmp_path}: is a folder")
