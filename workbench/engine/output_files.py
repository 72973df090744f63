"""Check a file the user asked us to write before the work starts, not after it."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.engine.errors import WorkbenchError


def check_writable(
    path: Path, error: type[WorkbenchError], *, flag: str = "-o", force: bool = True
) -> Path:
    """`path` if a file can be written there; else `error` naming the path and what to do."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise error(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'model.onnx'}")
    if path.exists() and not force:
        raise error(f"{flag} {path}: exists; pass --force to replace it (written atomically)")
    folder = path.parent
    if not folder.is_dir():
        raise error(f"{flag} {path}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"{flag} {path}: cannot write to the folder {folder} (permission denied)")
    return path
