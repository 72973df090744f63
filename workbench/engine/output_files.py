"""Check a file the user asked us to write before the work starts, not after it."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.engine.errors import WorkbenchError


def check_writable(
    path: Path, error: type[WorkbenchError], *, flag: str = "-o", force: bool = True
) -> Path:
    """`path` if a file can be written there (missing folders are made when it is written);
    else `error` naming the path and what to do."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise error(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'model.onnx'}")
    if path.exists() and not force:
        raise error(f"{flag} {path}: exists; pass --force to replace it (written atomically)")
    folder = path.parent
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not existing.is_dir():
        raise error(f"{flag} {path}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise error(f"{flag} {path}: cannot write in {existing} (permission denied)")
    return path
