"""The checkpoint editor window part: a tree of the state_dict, edits with undo, reconcile, diff."""

from __future__ import annotations

from workbench.ui.checkpoint_document import ModelProvider
from workbench.ui.checkpoint_editor.editor import CheckpointEditor

__all__ = ["CheckpointEditor", "ModelProvider"]
