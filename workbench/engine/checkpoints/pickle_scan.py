"""Read the imports (globals) a pickle would perform, without running it, to refuse unsafe files."""

from __future__ import annotations

import io
import pickletools
import re
import typing
from collections.abc import Iterable
from typing import IO

from torch import _weights_only_unpickler

_STRING_OPS = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
# Allowed by torch's weights-only unpickler, but never written by torch.save for tensors, and
# able to ask for any amount of memory while the file is read: `bytearray(10**10)` is a
# 20-byte pickle; the legacy tensor constructors (`torch.FloatTensor(n)`) and the device
# rebuilders (`.to(device)` of a stride-0 view) allocate before anything can be checked.
_ALLOCATING_GLOBALS = re.compile(
    r"(__builtin__|builtins)\.bytearray"
    r"|torch\.(cuda\.|sparse\.)?[A-Za-z0-9]+Tensor"
    r"|torch\._utils\._rebuild_device_tensor_from_(cpu_tensor|numpy)"
)


class PickleScanError(Exception):
    """The pickle stream is cut short (`truncated`) or malformed (it cannot be followed)."""

    def __init__(self, message: str, *, truncated: bool) -> None:
        super().__init__(message)
        self.truncated = truncated


class BoundedReader(io.RawIOBase):
    """A read-only view of a stream that never asks for more than the bytes that are left, so
    a pickle declaring a 2**62-byte string cannot make the reader allocate that much."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        super().__init__()
        self._stream = stream
        self._left = size
        self._read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = self._left if size is None or size < 0 else min(size, self._left)
        return self._count(self._stream.read(wanted))

    def readline(self, size: int | None = -1) -> bytes:
        limit = self._left if size is None or size < 0 else min(size, self._left)
        return self._count(self._stream.readline(limit))

    def tell(self) -> int:
        return self._read

    def _count(self, data: bytes) -> bytes:
        self._left -= len(data)
        self._read += len(data)
        return data

    @property
    def exhausted(self) -> bool:
        return self._left <= 0


def allowed_globals() -> set[str]:
    """Everything torch's weights_only unpickler accepts, including user-registered globals."""
    default = set(_weights_only_unpickler._get_allowed_globals().keys())
    user = set(_weights_only_unpickler._get_user_allowed_globals().keys())  # type: ignore[no-untyped-call]
    return default | user


def globals_in_pickle(stream: IO[bytes], size: int | None = None) -> list[str]:
    """The `module.name` of every global one pickle (up to its STOP) imports, in order of use.

    Walks the opcodes with pickletools, which never executes anything. For protocol-4
    STACK_GLOBAL the names come from the two strings pushed before it (as fickling and
    picklescan do); an undecidable one is reported as `<unknown STACK_GLOBAL>` so that it
    still counts as unsafe. `size`: the bytes left in `stream` (default: up to its end).
    Raises PickleScanError, with `truncated` set when the stream ends before the STOP.
    """
    if size is None:
        here = stream.tell()
        size = stream.seek(0, io.SEEK_END) - here
        stream.seek(here)
    # Bytes in memory answer a read of 2**62 with what is left; a file would allocate first.
    reader = stream if isinstance(stream, io.BytesIO) else BoundedReader(stream, size)
    start = reader.tell()
    found: list[str] = []
    strings: list[str] = []
    memo: dict[object, str] = {}
    try:
        for opcode, arg, _ in pickletools.genops(typing.cast(IO[bytes], reader)):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", ".", 1))
            elif name == "STACK_GLOBAL":
                found.append(
                    f"{strings[-2]}.{strings[-1]}"
                    if len(strings) >= 2
                    else "<unknown STACK_GLOBAL>"
                )
            elif name in _STRING_OPS:
                text = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
                strings.append(text)
            elif name in _PUT_OPS and strings:
                memo[arg] = strings[-1]
            elif name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif name in _GET_OPS and arg in memo:
                strings.append(memo[arg])
    except (ValueError, EOFError, IndexError, OverflowError, MemoryError) as exc:
        # genops reports both a cut-off stream and a bad opcode as ValueError; only the first
        # leaves nothing unread.
        reason = str(exc) or "the pickle ends early"
        raise PickleScanError(reason, truncated=reader.tell() - start >= size) from exc
    return found


def unsafe_globals(names: Iterable[str]) -> list[str]:
    """Those names the weights_only unpickler would refuse, each once, in order of appearance."""
    allowed = allowed_globals()
    seen: dict[str, None] = {}
    for name in names:
        if name not in allowed:
            seen.setdefault(name, None)
    return list(seen)


def allocating_globals(names: Iterable[str]) -> list[str]:
    """Those allowed names that could allocate unbounded memory while the pickle is read."""
    return list(dict.fromkeys(n for n in names if _ALLOCATING_GLOBALS.fullmatch(n)))


def unsafe_globals_in_zip_pickle(data_pkl: bytes) -> list[str]:
    return unsafe_globals(globals_in_pickle(io.BytesIO(data_pkl)))


def globals_in_legacy_file(stream: IO[bytes], size: int | None = None) -> list[str]:
    """A legacy torch.save file is four pickles in a row (magic, protocol, sys info, object)."""
    if size is None:
        here = stream.tell()
        size = stream.seek(0, io.SEEK_END) - here
        stream.seek(here)
    start = stream.tell()
    names: list[str] = []
    for _ in range(4):
        names.extend(globals_in_pickle(stream, size - (stream.tell() - start)))
    return names


def unsafe_globals_in_legacy_file(stream: IO[bytes]) -> list[str]:
    return unsafe_globals(globals_in_legacy_file(stream))
