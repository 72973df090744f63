"""The editor's safety: unsafe files are refused with their globals, broken files get a message,
and tensors it cannot summarise (float8, sparse, meta, quantized, odd dtypes) get one line in
the panel: never a traceback or an error dialog."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox

from workbench.controllers.checkpoint_loader import CheckpointLoader
from workbench.engine.checkpoints.inspection import tensor_info
from workbench.ui.checkpoint_editor import CheckpointEditor
from workbench.ui.checkpoint_editor import tensor_panel as tensor_panel_module
from workbench.ui.checkpoint_editor.dialogs import TRUST_BUTTON_TEXT
from workbench.ui.checkpoint_editor.tensor_panel import TensorPanel

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


class TouchesMarker:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (Path(self.marker),))


@pytest.fixture
def editor(qtbot) -> Iterator[CheckpointEditor]:  # type: ignore[no-untyped-def]
    made = CheckpointEditor()
    qtbot.addWidget(made)
    yield made
    assert made.shutdown(20_000)
    assert not CheckpointLoader.running_threads()


@pytest.fixture
def evil_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.ones(2, 2), "payload": TouchesMarker(marker)}, path)
    return path, marker


def open_and_wait_for_failure(qtbot, editor: CheckpointEditor, path: Path) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(editor.document.loader.failed, timeout=10_000):
        editor.open_file(path)


def answer_trust_dialog(button_name: str, seen: list[QMessageBox]) -> None:
    """Click a button of the modal trust dialog once it is up (it blocks in exec())."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(10, click)
            return
        seen.append(box)
        next(b for b in box.buttons() if b.objectName() == button_name).click()

    QTimer.singleShot(0, click)


def test_an_unsafe_file_is_refused_with_its_globals_and_no_code_runs(
    qtbot, editor: CheckpointEditor, evil_file
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    open_and_wait_for_failure(qtbot, editor, path)
    banner = editor.unsafe_banner
    assert banner.isVisibleTo(editor)
    assert "Refused to open evil.pth" in banner.text
    assert "<code>pathlib.Path</code>" in banner.text
    assert "a weights-only load does not allow" in banner.text
    assert editor.trust_button.isVisibleTo(editor)
    assert editor.document.checkpoint is None and editor.state_dict == {}
    assert not marker.exists()


def test_cancelling_the_trust_dialog_keeps_the_file_closed(
    qtbot, editor: CheckpointEditor, evil_file
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    open_and_wait_for_failure(qtbot, editor, path)
    messages: list[str] = []
    editor.status_message.connect(messages.append)
    seen: list[QMessageBox] = []
    answer_trust_dialog("trustCancel", seen)
    editor.trust_button.click()
    box = seen[0]
    assert box.text() == "Loading evil.pth runs Python code stored in the file."
    assert str(path) in box.informativeText() and "pathlib.Path" in box.informativeText()
    assert box.defaultButton().objectName() == "trustCancel"
    assert any(b.text() == TRUST_BUTTON_TEXT for b in box.buttons())
    assert messages == ["evil.pth was not opened."]
    assert not editor.document.loader.is_busy and editor.document.checkpoint is None
    assert not marker.exists()


def test_load_anyway_reads_the_file_in_a_separate_process(
    qtbot, editor: CheckpointEditor, evil_file
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    open_and_wait_for_failure(qtbot, editor, path)
    seen: list[QMessageBox] = []
    answer_trust_dialog("trustLoadAnyway", seen)
    with qtbot.waitSignal(editor.title_changed, timeout=60_000):
        editor.trust_button.click()
    checkpoint = editor.document.checkpoint
    assert checkpoint is not None and checkpoint.loaded_in_subprocess
    assert list(editor.state_dict) == ["fc.weight"]
    assert not editor.unsafe_banner.isVisibleTo(editor)
    assert marker.exists()  # the user chose to run it: it ran, in the child process


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("truncated", "the zip archive is truncated or damaged"),
        ("random", "not a PyTorch checkpoint or safetensors file"),
        ("empty", "the file is empty (0 bytes)"),
        ("html", "HTML or XML (a web page saved instead of the download?)"),
    ],
)
def test_broken_files_show_their_message_inline_never_a_traceback(
    qtbot, editor: CheckpointEditor, tmp_path: Path, content: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{content}.pth"
    torch.save({"w": torch.randn(64, 64)}, path)
    data = {
        "truncated": path.read_bytes()[: path.stat().st_size // 2],
        "random": bytes(range(7, 256)) * 8,
        "empty": b"",
        "html": b"<!DOCTYPE html><html><body>Sign in</body></html>",
    }[content]
    path.write_bytes(data)
    open_and_wait_for_failure(qtbot, editor, path)
    banner = editor.error_banner
    assert banner.isVisibleTo(editor)
    assert banner.text.startswith(f"{path}: ") and expected in banner.text
    assert "Traceback" not in banner.text
    assert not editor.unsafe_banner.isVisibleTo(editor)
    assert not editor.header.busy_row.isVisibleTo(editor)


def test_a_failed_open_keeps_the_file_already_open(
    qtbot, editor: CheckpointEditor, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(good)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"")
    open_and_wait_for_failure(qtbot, editor, bad)
    assert editor.title == "good.pth" and list(editor.state_dict) == ["w"]
    assert "bad.pth: the file is empty" in editor.error_banner.text


def test_comparing_with_an_unsafe_file_is_refused_too(
    qtbot, editor: CheckpointEditor, evil_file, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    path, marker = evil_file
    good = tmp_path / "good.pth"
    torch.save({"fc.weight": torch.ones(2, 2)}, good)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(good)
    with qtbot.waitSignal(editor.document.loader.failed, timeout=10_000):
        editor.document.compare_with(path)
    view = editor.diff_view
    assert f"{path}: refused to open" in view.summary.text()
    assert view.trust_button.isVisibleTo(editor)
    assert view.table.rowCount() == 0
    assert not marker.exists()


def test_saving_to_an_unknown_suffix_shows_the_reason(
    qtbot, editor: CheckpointEditor, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    with qtbot.waitSignal(editor.title_changed, timeout=10_000):
        editor.open_file(good)
    editor.document.strip_prefix("w")  # refused: stripping would leave an empty key
    assert "would get an empty key" in editor.error_banner.text
    with qtbot.waitSignal(editor.document.loader.failed, timeout=10_000):
        editor.document.save_as(tmp_path / "weights.txt")
    assert "unknown output suffix '.txt'" in editor.error_banner.text
    assert not (tmp_path / "weights.txt").exists()


def quantized() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its quantized tensors deprecated
        return torch.quantize_per_tensor(torch.linspace(-1, 1, 9), 0.1, 0, torch.qint8)


EXOTIC: dict[str, Callable[[], torch.Tensor]] = {
    "float8": lambda: torch.linspace(-2, 2, 9).to(torch.float8_e4m3fn),
    "sparse": lambda: torch.eye(3).to_sparse(),
    "meta": lambda: torch.empty(3, 3, device="meta"),
    "quantized": quantized,
}


def error_dialogs() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox)]


def stats_note(panel: TensorPanel) -> str:
    note = panel.findChild(QLabel, "statsNote")
    return note.text() if isinstance(note, QLabel) else ""


def assert_one_readable_line(text: str) -> None:
    assert text and "\n" not in text and "Traceback" not in text and 'File "' not in text


def open_or_refuse(qtbot, editor: CheckpointEditor, path: Path) -> bool:  # type: ignore[no-untyped-def]
    """Open `path`: True when it opened; False when the engine refused it in one line."""
    document = editor.document
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loading quantized or sparse tensors warns in torch
        editor.open_file(path)
        qtbot.waitUntil(
            lambda: document.is_open or editor.error_banner.isVisibleTo(editor), timeout=10_000
        )
    if document.is_open:
        return True
    assert_one_readable_line(editor.error_banner.text)
    return False


@pytest.mark.parametrize("kind", sorted(EXOTIC))
def test_selecting_an_exotic_tensor_shows_a_line_not_a_traceback(
    qtbot, editor: CheckpointEditor, tmp_path: Path, kind: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{kind}.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"fc.weight": torch.ones(2, 2), "odd.weight": EXOTIC[kind]()}, path)
    if not open_or_refuse(qtbot, editor, path):
        assert editor.document.checkpoint is None
        return
    panel = editor.tensor_panel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert editor.key_tree.select_path("odd.weight")
    assert panel.current_key == "odd.weight"
    shown = panel.stats_text()
    if "Mean" not in shown:
        assert_one_readable_line(stats_note(panel))
        assert stats_note(panel).startswith("No statistics")
    assert not error_dialogs()
    assert editor.key_tree.select_path("fc.weight")  # the editor still works
    assert panel.stats_text()["Mean"] == "1"


def test_float8_values_and_statistics_are_shown(qtbot, editor, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "float8.pth"
    torch.save({"w": torch.tensor([-1.0, 0.5, 2.0]).to(torch.float8_e4m3fn)}, path)
    if not open_or_refuse(qtbot, editor, path):
        pytest.skip("the engine refuses float8 files")  # its own tests cover the refusal
    editor.key_tree.select_path("w")
    panel = editor.tensor_panel
    assert panel.stats_text()["Max"] == "2"
    assert panel.values.toPlainText() == "[-1. ,  0.5,  2. ]"


def test_a_meta_tensor_says_it_has_no_values(qtbot) -> None:  # type: ignore[no-untyped-def]
    loader = CheckpointLoader()
    panel = TensorPanel(loader)
    qtbot.addWidget(panel)
    tensor = torch.empty(4, 4, device="meta")
    panel.show_tensor(tensor_info("w", tensor), tensor)
    assert stats_note(panel) == (
        "No statistics: it is a meta tensor: the file holds its shape and dtype but no values."
    )
    assert not panel.values_box.isVisibleTo(panel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch calls its CSR support beta
        sparse = torch.eye(2).to_sparse_csr()
    panel.show_tensor(tensor_info("s", sparse), sparse)
    assert stats_note(panel) == (
        "No statistics: it is a sparse tensor (sparse_csr); its values are not laid out as a "
        "dense array."
    )
    assert loader.shutdown(10_000)


def every_dtype() -> list[torch.dtype]:
    found = {value for value in vars(torch).values() if isinstance(value, torch.dtype)}
    return sorted(found, key=str)


@pytest.mark.parametrize("dtype", every_dtype(), ids=str)
def test_every_dtype_gets_statistics_or_one_line(qtbot, dtype: torch.dtype) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental dtypes warn when made
        try:
            tensor = torch.zeros(3, 2, dtype=dtype)
        except (RuntimeError, TypeError, NotImplementedError):
            tensor = torch.empty(3, 2, dtype=dtype)
        loader = CheckpointLoader()
        panel = TensorPanel(loader)
        qtbot.addWidget(panel)
        panel.show_tensor(tensor_info("w", tensor), tensor)
    if "Mean" not in panel.stats_text():
        assert_one_readable_line(stats_note(panel))
        dtype_name = str(dtype).removeprefix("torch.")
        assert stats_note(panel).startswith("No statistics: ") and dtype_name in stats_note(panel)
    assert loader.shutdown(10_000)


def explode(_tensor: torch.Tensor, *_stop: object) -> object:
    raise RuntimeError('boom\nTraceback (most recent call last):\n  File "x.py", line 1')


@pytest.mark.parametrize("on_worker", [False, True])
def test_whatever_the_statistics_raise_the_panel_shows_one_line(
    qtbot, editor, tmp_path, monkeypatch, on_worker: bool
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "plain.pth"
    torch.save({"w": torch.ones(64)}, path)
    with qtbot.waitSignal(editor.document.opened, timeout=10_000):
        editor.open_file(path)
    monkeypatch.setattr(tensor_panel_module, "analyse", explode)
    monkeypatch.setattr(tensor_panel_module, "values_text", explode)
    if on_worker:
        monkeypatch.setattr(tensor_panel_module, "SYNC_LIMIT", 16)
    editor.key_tree.select_path("w")
    panel = editor.tensor_panel
    expected = "No statistics: torch cannot summarise this float32 tensor (RuntimeError: boom)."
    qtbot.waitUntil(lambda: stats_note(panel) == expected, timeout=10_000)
    assert not panel.values_box.isVisibleTo(panel)
    assert not error_dialogs()


def test_a_file_whose_tensors_have_no_shape_is_refused_in_one_line(qtbot, editor, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    with qtbot.waitSignal(editor.document.opened, timeout=10_000):
        editor.open_file(good)
    nested = tmp_path / "nested.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch calls strided nested tensors a prototype
        torch.save({"w": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])}, nested)
        editor.open_file(nested)
    qtbot.waitUntil(lambda: editor.error_banner.isVisibleTo(editor), timeout=10_000)
    assert_one_readable_line(editor.error_banner.text)
    assert editor.error_banner.text.startswith(str(nested))
    assert editor.title == "good.pth" and list(editor.state_dict) == ["w"]
    assert not error_dialogs()
