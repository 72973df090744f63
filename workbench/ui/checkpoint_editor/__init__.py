"""The checkpoint editor window part: a tree of the state_dict, edits with undo, reconcile, diff."""

from __future__ import annotations

from workbench.ui.checkpoint_editor.editor import CheckpointEditor, ModelProvider

__all__ = ["CheckpointEditor", "ModelProvider"]
