"""Read the imports (globals) a pickle would perform, without running it, to refuse unsafe files."""

from __future__ import annotations

import io
import pickletools
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


class PickleScanError(Exception):
    """The pickle stream is cut short or malformed."""


def allowed_globals() -> set[str]:
    """Everything torch's weights_only unpickler accepts, including user-registered globals."""
    default = set(_weights_only_unpickler._get_allowed_globals().keys())
    user = set(_weights_only_unpickler._get_user_allowed_globals().keys())  # type: ignore[no-untyped-call]
    return default | user


def globals_in_pickle(stream: IO[bytes]) -> list[str]:
    """The `module.name` of every global one pickle (up to its STOP) imports, in order of use.

    Walks the opcodes with pickletools, which never executes anything. For protocol-4
    STACK_GLOBAL the names come from the two strings pushed before it (as fickling and
    picklescan do); an undecidable one is reported as `<unknown STACK_GLOBAL>` so that it
    still counts as unsafe.
    """
    found: list[str] = []
    strings: list[str] = []
    memo: dict[object, str] = {}
    try:
        for opcode, arg, _ in pickletools.genops(stream):
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
    except (ValueError, EOFError, IndexError) as exc:  # genops reports truncation as ValueError
        raise PickleScanError(str(exc) or "the pickle ends early") from exc
    return found


def unsafe_globals(names: Iterable[str]) -> list[str]:
    """Those names the weights_only unpickler would refuse, each once, in order of appearance."""
    allowed = allowed_globals()
    seen: dict[str, None] = {}
    for name in names:
        if name not in allowed:
            seen.setdefault(name, None)
    return list(seen)


def unsafe_globals_in_zip_pickle(data_pkl: bytes) -> list[str]:
    return unsafe_globals(globals_in_pickle(io.BytesIO(data_pkl)))


def unsafe_globals_in_legacy_file(stream: IO[bytes]) -> list[str]:
    """A legacy torch.save file is four pickles in a row (magic, protocol, sys info, object)."""
    names: list[str] = []
    for _ in range(4):
        names.extend(globals_in_pickle(stream))
    return unsafe_globals(names)
