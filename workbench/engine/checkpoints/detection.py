"""Tell a checkpoint's format from its structure; explain every file that is not a checkpoint.

A `.safetensors` file is recognised by its 8-byte header length and the JSON header it
announces (a 640-byte header starts with 0x80 0x02, like a pickle); a torch.save zip by its
directory; a legacy torch.save pickle by its opcode stream and PyTorch's magic number.
"""

from __future__ import annotations

import itertools
import pickletools
import stat
import struct
import typing
import zipfile
from pathlib import Path
from typing import IO

import torch

from workbench.engine.checkpoints.pickle_scan import BoundedReader
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
FORMAT_ZIP, FORMAT_LEGACY, FORMAT_SAFETENSORS = "zip", "legacy", "safetensors"
FORMAT_DESCRIPTIONS = {
    FORMAT_ZIP: "PyTorch zip archive (torch.save)",
    FORMAT_LEGACY: "PyTorch legacy pickle (torch.save before 1.6, or without the zip format)",
    FORMAT_SAFETENSORS: "safetensors",
}
SAFETENSORS_HEADER_LIMIT = 100_000_000  # the safetensors library refuses bigger headers
READ_ME = "Make sure the file is a PyTorch checkpoint (.pth/.pt/.bin/.ckpt) or a .safetensors file."
DAMAGED = (
    "It was probably cut off while saving, downloading or copying; "
    "copy or download it again (compare its size with the original)."
)
_HEAD = 512


def shown(path: Path | str) -> str:
    """A path as messages print it (control characters in a file name made visible)."""
    return safe_text(path)


def detect_format(path: Path) -> str:
    """Tell the format from the bytes, not the suffix; explain anything that is not a checkpoint."""
    size = _check_regular_file(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEAD)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if is_safetensors(path, head, size):
        return FORMAT_SAFETENSORS
    if head.startswith(b"PK"):
        check_torch_zip(path)
        return FORMAT_ZIP
    announces_header = head[8:9] == b"{"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        try:
            _check_legacy_magic(path, size)
        except CheckpointError:
            if not announces_header:
                raise
        else:
            return FORMAT_LEGACY
    if announces_header:
        raise _damaged_safetensors(path, head, size)
    raise CheckpointError(f"{shown(path)}: {_what_else_it_is(head)} {READ_ME}")


def _check_regular_file(path: Path) -> int:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{shown(path)}: no such file.{_similar_files_hint(path)}") from None
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(
            f"{shown(path)}: is a folder, not a checkpoint file. Pass the file inside it."
        )
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"{shown(path)}: is not a regular file but a device, pipe or socket (like "
            "/dev/zero), which never ends or cannot be read twice. Pass a checkpoint file."
        )
    if info.st_size == 0:
        raise CheckpointError(f"{shown(path)}: the file is empty (0 bytes). {DAMAGED}")
    return info.st_size


def _unreadable(path: Path, exc: OSError) -> CheckpointError:
    if isinstance(exc, PermissionError):
        return CheckpointError(
            f"{shown(path)}: permission denied: this user may not read it. Check the file's "
            "permissions (ls -l) or copy it somewhere readable."
        )
    return CheckpointError(f"{shown(path)}: cannot be read ({exc.strerror or exc}).")


def is_safetensors(path: Path, head: bytes, size: int) -> bool:
    """The structure of a safetensors file: an 8-byte little-endian length N that fits the
    file, then N bytes of JSON object (`{` ... `}`, space-padded). The JSON itself is parsed
    once, by safetensors when the file is opened; a first byte of 0x80 means nothing."""
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (length,) = struct.unpack("<Q", head[:8])
    if length < 2 or length > size - 8 or length > SAFETENSORS_HEADER_LIMIT:
        return False
    with open(path, "rb") as stream:
        stream.seek(8)
        header = stream.read(length)
    return header.rstrip(b" ").endswith(b"}")


def _damaged_safetensors(path: Path, head: bytes, size: int) -> CheckpointError:
    (length,) = struct.unpack("<Q", head[:8]) if len(head) >= 8 else (0,)
    if length > size - 8:
        return CheckpointError(
            f"{shown(path)}: a safetensors file whose header says {length + 8} bytes or more, "
            f"but the file has only {size}. {DAMAGED}"
        )
    return CheckpointError(
        f"{shown(path)}: looks like a safetensors file, but its {length}-byte header is not "
        f"the JSON table of tensors it should be. {DAMAGED}"
    )


def _what_else_it_is(head: bytes) -> str:
    known = {
        b"\x89HDF": "an HDF5 file (Keras .h5?), not a PyTorch checkpoint.",
        b"\x93NUMPY": "a NumPy .npy array, not a PyTorch checkpoint.",
        b"\x1f\x8b": "gzip-compressed; decompress it first (gunzip) and open the result.",
        b"version https://git-lfs": "a Git LFS pointer, not the weights; run `git lfs pull`.",
    }
    for magic, text in known.items():
        if head.startswith(magic):
            return f"the file is {text}"
    if not head.strip(b"\x00"):
        return "the file holds only zero bytes (it was never written or was wiped)."
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "the file is HTML or XML (a web page saved instead of the download?), not weights."
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"the file is text (it starts with {safe_text(first)!r}), not a PyTorch checkpoint."
    return (
        "the contents are not a PyTorch checkpoint or safetensors file "
        f"(unrecognised first bytes {head[:8].hex(' ')})."
    )


def check_torch_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{shown(path)}: the zip archive is truncated or damaged (its directory at the end "
            f"is missing or broken). {DAMAGED}"
        ) from exc
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        raise CheckpointError(
            f"{shown(path)}: a TorchScript archive (torch.jit.save), not a state_dict "
            "checkpoint. Load it with torch.jit.load in a script you trust and "
            "torch.save(model.state_dict())."
        )
    if not any(name.endswith("data.pkl") for name in names):
        listed = ", ".join(safe_text(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{shown(path)}: a zip archive but not a PyTorch checkpoint (no data.pkl inside; it "
            f"holds {listed or 'nothing'}). {READ_ME}"
        )


def _check_legacy_magic(path: Path, size: int) -> None:
    """A legacy torch.save file starts with a pickled magic number; a plain pickle does not."""
    values: list[object] = []
    with open(path, "rb") as stream:
        reader = BoundedReader(stream, size)
        try:
            values = [
                arg
                for _, arg, _ in itertools.islice(
                    pickletools.genops(typing.cast(IO[bytes], reader)), 8
                )
            ]
        except (ValueError, EOFError, OverflowError, MemoryError):
            if reader.exhausted:
                raise CheckpointError(
                    f"{shown(path)}: the file is truncated: it ends inside its first bytes "
                    f"({size} bytes in all). {DAMAGED}"
                ) from None
    if torch.serialization.MAGIC_NUMBER not in values:
        raise CheckpointError(
            f"{shown(path)}: a Python pickle, but not one written by torch.save (no PyTorch "
            "magic number). Re-save the weights with torch.save(model.state_dict(), path) or "
            "as safetensors."
        )


def _similar_files_hint(path: Path) -> str:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f" The folder {shown(folder)} does not exist either."
    try:
        nearby = sorted(p.name for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)[:5]
    except OSError:
        return " Check the path."
    if nearby:
        return f" Checkpoints in {shown(folder)}: {', '.join(safe_text(n) for n in nearby)}."
    return " Check the path."
