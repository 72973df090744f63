"""Atomic file writes: a temp file in the same folder, fsync, then os.replace; never half a file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, cast


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


class _RecordingWriter:
    """A binary file that remembers why a write failed: torch.save reports a failed write only
    as "unexpected pos ... vs ...", so the OSError (disk full, ...) would be lost."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.handle, name)


def atomic_write(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(handle)` on a temp file, then move it over `target`.

    A failed write raises its OSError (e.g. ENOSPC), also when the writer wrapped it.
    """
    with atomic_path(target) as temp, open(temp, "wb") as handle:
        recording = _RecordingWriter(handle)
        try:
            write(cast(IO[bytes], recording))
        except Exception:
            if recording.error is not None:
                raise recording.error from None
            raise


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write(target, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_bytes(target: Path, data: bytes) -> None:
    atomic_write(target, lambda handle: handle.write(data))
