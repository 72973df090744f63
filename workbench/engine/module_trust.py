"""Agreeing to run a project's model code: a content hash per file, kept in a settings mapping.

Importing a Python file runs it. The command line imports what the user names (they asked);
the window asks first, once per file content, and keeps the answer in its settings. This
module is that memory without Qt: `ModuleTrust` works over any mutable mapping (the window
backs it with QSettings; tests with a dict), and `ModuleTrust.allows` fits
`user_code.set_import_gate`, so that nothing imports a file the user has not agreed to.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from workbench.engine.errors import ModelCodeError

TRUST_KEY = "modelCode/trusted"  # one settings value: JSON {absolute path: sha256 of content}
CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """The sha256 of the file's content, as hex: what the user agrees to run."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ModelCodeError(
            f"{path}: cannot read the model file ({exc.strerror or exc})"
        ) from None
    return digest.hexdigest()


def trust_key_path(path: str | Path) -> str:
    """The path as the store keeps it: absolute, symbolic links resolved."""
    return os.path.normcase(str(Path(path).expanduser().resolve()))


class ModuleTrust:
    """Which model files (path and content) the user agreed to run.

    `settings` is any mutable mapping; only `settings[key]` is read and written, as a JSON
    string, so a QSettings adapter needs nothing but `__getitem__`/`__setitem__`/`get`.
    """

    def __init__(self, settings: MutableMapping[str, Any], key: str = TRUST_KEY) -> None:
        self.settings = settings
        self.key = key

    def agreed(self) -> dict[str, str]:
        """Every agreement: absolute path -> the content hash agreed to."""
        raw = self.settings.get(self.key)
        if not raw:
            return {}
        try:
            values = json.loads(str(raw))
        except ValueError:
            return {}
        if not isinstance(values, dict):
            return {}
        return {str(path): str(digest) for path, digest in values.items()}

    def is_trusted(self, path: str | Path, digest: str | None = None) -> bool:
        """Whether the user agreed to run this file with this content (now on disk, by default)."""
        wanted = self.agreed().get(trust_key_path(path))
        if wanted is None:
            return False
        try:
            current = digest if digest is not None else file_digest(path)
        except ModelCodeError:
            return False
        return current == wanted

    def trust(self, path: str | Path, digest: str | None = None) -> str:
        """Record that the user agreed to run the file's content (now on disk, by default);
        returns the hash recorded. A later change to the file needs a new agreement."""
        recorded = digest if digest is not None else file_digest(path)
        values = self.agreed()
        values[trust_key_path(path)] = recorded
        self.settings[self.key] = json.dumps(values, sort_keys=True)
        return recorded

    def forget(self, path: str | Path) -> None:
        values = self.agreed()
        if values.pop(trust_key_path(path), None) is not None:
            self.settings[self.key] = json.dumps(values, sort_keys=True)

    def allows(self, path: Path, digest: str) -> bool:
        """The import gate: `user_code.set_import_gate(ModuleTrust(settings).allows)`."""
        return self.is_trusted(path, digest)
