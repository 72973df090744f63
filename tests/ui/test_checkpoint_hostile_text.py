"""Keys from a hostile file: control and bidi characters show as escapes, markup stays text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt

from tests.ui.test_checkpoint_cancel import editor_on
from workbench.ui.checkpoint_editor import CheckpointEditor
from workbench.ui.checkpoint_editor.banners import refusal_text
from workbench.ui.checkpoint_editor.shown_text import tooltip

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
MODULE = "evil<b>bold</b>"
LEAF = "w\x1b[31m\u202egpj"
SHOWN_LEAF = "w\\x1b[31m\\u202egpj"


@pytest.fixture
def editor(qtbot, tmp_path: Path) -> Iterator[CheckpointEditor]:  # type: ignore[no-untyped-def]
    path = tmp_path / "hostile.pt"
    torch.save({f"{MODULE}.{LEAF}": torch.ones(2, 2), "fc.bias": torch.zeros(2)}, path)
    yield from editor_on(qtbot, path)


def assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text


def test_the_tree_shows_hostile_keys_escaped(editor: CheckpointEditor) -> None:
    model = editor.key_tree.tree_model
    module = model.index_for_path(MODULE)
    leaf = model.index_for_path(f"{MODULE}.{LEAF}")
    assert module.isValid() and leaf.isValid()
    assert model.data(module) == MODULE  # a plain-text cell: the markup is shown, not applied
    assert model.data(leaf) == SHOWN_LEAF
    tip = model.data(leaf, Qt.ItemDataRole.ToolTipRole)
    assert "evil&lt;b&gt;bold&lt;/b&gt;." + SHOWN_LEAF in tip
    assert "<b>" not in tip
    assert_inert(tip)


def test_the_side_panel_title_escapes_markup_and_controls(editor: CheckpointEditor) -> None:
    assert editor.key_tree.select_path(f"{MODULE}.{LEAF}")
    title = editor.tensor_panel.title.text()
    assert title == f"<b>evil&lt;b&gt;bold&lt;/b&gt;.{SHOWN_LEAF}</b>"
    assert editor.key_tree.select_path(MODULE)
    assert editor.tensor_panel.title.text() == "<b>evil&lt;b&gt;bold&lt;/b&gt;</b>"


def test_refusals_and_tooltips_built_from_file_text_are_escaped() -> None:
    text = refusal_text(Path("x<i>.pth"), ("os.system<b>\x1b[31m",))
    assert "<code>os.system&lt;b&gt;\\x1b[31m</code>" in text
    assert "Refused to open x&lt;i&gt;.pth." in text
    assert_inert(text)
    assert tooltip("a<b>\nb\x1b") == "<p style='white-space:pre'>a&lt;b&gt;<br>b\\x1b</p>"
