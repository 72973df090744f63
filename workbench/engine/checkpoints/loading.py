"""Open checkpoints safely: weights_only + mmap; unsafe files refused or, if trusted, read apart."""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from workbench.engine.checkpoints.pickle_scan import (
    PickleScanError,
    unsafe_globals_in_legacy_file,
    unsafe_globals_in_zip_pickle,
)
from workbench.engine.checkpoints.wrappers import find_state_dict
from workbench.engine.errors import CheckpointError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
FORMAT_ZIP, FORMAT_LEGACY, FORMAT_SAFETENSORS = "zip", "legacy", "safetensors"
FORMAT_DESCRIPTIONS = {
    FORMAT_ZIP: "PyTorch zip archive (torch.save)",
    FORMAT_LEGACY: "PyTorch legacy pickle (torch.save before 1.6, or without the zip format)",
    FORMAT_SAFETENSORS: "safetensors",
}
# Metadata keys the trusted child process uses to hand back what it found besides the tensors.
HANDOFF_LOCATION, HANDOFF_LAYOUT, HANDOFF_METADATA, HANDOFF_ORDER = (
    "workbench.location",
    "workbench.layout",
    "workbench.metadata",
    "workbench.key_order",
)
_READ_ME = (
    "Make sure the file is a PyTorch checkpoint (.pth/.pt/.bin/.ckpt) or a .safetensors file."
)
_DAMAGED = (
    "It was probably cut off while saving, downloading or copying; "
    "copy or download it again (compare its size with the original)."
)


@dataclass(frozen=True)
class Checkpoint:
    """An opened checkpoint: its weights (read-only by convention; edits return new dicts) and
    a JSON-able summary of everything else the file held."""

    path: Path
    format: str  # FORMAT_ZIP | FORMAT_LEGACY | FORMAT_SAFETENSORS
    state_dict: dict[str, torch.Tensor]
    location: str | None = None  # key path of the weights inside the file; None: top level
    layout: str = "plain state_dict"
    metadata: dict[str, Any] = field(default_factory=dict)
    saved_devices: dict[str, str] = field(default_factory=dict)  # key -> device when saved
    loaded_in_subprocess: bool = False

    @property
    def format_description(self) -> str:
        return FORMAT_DESCRIPTIONS[self.format]


class UnsafeCheckpointError(CheckpointError):
    """The file would import code when unpickled; `unsafe_globals` lists what it names."""

    def __init__(self, message: str, path: Path, unsafe_globals: tuple[str, ...]) -> None:
        super().__init__(message)
        self.path = path
        self.unsafe_globals = unsafe_globals


def open_checkpoint(path: str | Path, *, trust_file: str | Path | None = None) -> Checkpoint:
    """Open `path` without running any code from it.

    Pickle-based files load with `torch.load(weights_only=True, map_location="cpu")`, zip
    archives memory-mapped so that a multi-GB file opens without being read; `.safetensors`
    opens lazily. A file that needs unsafe globals raises UnsafeCheckpointError, unless
    `trust_file` names this very file: then a separate Python process unpickles it and hands
    back plain tensors, so this process never runs the file's code.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == FORMAT_SAFETENSORS:
        return _open_safetensors(path)
    unsafe = find_unsafe_globals(path, kind)
    if unsafe:
        if _is_trusted(path, trust_file):
            return _open_in_subprocess(path, kind)
        raise _refusal(path, unsafe, trust_file)
    return _open_weights_only(path, kind, trust_file)


def find_unsafe_globals(path: str | Path, kind: str | None = None) -> list[str]:
    """The globals (`module.name`) a pickled checkpoint needs beyond what weights_only allows."""
    path = Path(path)
    kind = kind or detect_format(path)
    if kind == FORMAT_SAFETENSORS:
        return []
    try:
        if kind == FORMAT_ZIP:
            return unsafe_globals_in_zip_pickle(_zip_data_pickle(path))
        with open(path, "rb") as stream:
            return unsafe_globals_in_legacy_file(stream)
    except PickleScanError as exc:
        raise CheckpointError(
            f"{path}: the file is truncated or damaged ({exc}). {_DAMAGED}"
        ) from exc


def detect_format(path: Path) -> str:
    """Tell the format from the bytes, not the suffix; explain anything that is not a checkpoint."""
    if not path.exists():
        hint = _similar_files_hint(path)
        raise CheckpointError(f"{path}: no such file.{hint}")
    if path.is_dir():
        raise CheckpointError(
            f"{path}: is a folder, not a checkpoint file. Pass the file inside it."
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes). {_DAMAGED}")
    with open(path, "rb") as stream:
        head = stream.read(512)
    if head.startswith(b"PK\x03\x04"):
        _check_torch_zip(path)
        return FORMAT_ZIP
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        _check_legacy_magic(path)
        return FORMAT_LEGACY
    if _looks_like_safetensors(path, head, size):
        return FORMAT_SAFETENSORS
    raise CheckpointError(f"{path}: {_what_else_it_is(head)} {_READ_ME}")


def _looks_like_safetensors(path: Path, head: bytes, size: int) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    (header_size,) = struct.unpack("<Q", head[:8])
    if header_size > size - 8:
        raise CheckpointError(
            f"{path}: a safetensors file whose header says {header_size + 8} bytes or more, "
            f"but the file has only {size}. {_DAMAGED}"
        )
    return True


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
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "the file is HTML or XML (a web page saved instead of the download?), not weights."
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        return f"the file is text (it starts with {first!r}), not a PyTorch checkpoint."
    return (
        "the contents are not a PyTorch checkpoint or safetensors file "
        f"(unrecognised first bytes {head[:8].hex(' ')})."
    )


def _check_torch_zip(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: the zip archive is truncated or damaged (its directory at the end is "
            f"missing). {_DAMAGED}"
        )
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        raise CheckpointError(
            f"{path}: a TorchScript archive (torch.jit.save), not a state_dict checkpoint. "
            "Load it with torch.jit.load in a script you trust and torch.save(model.state_dict())."
        )
    if not any(name.endswith("data.pkl") for name in names):
        listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise CheckpointError(
            f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl inside; it holds "
            f"{listed}). {_READ_ME}"
        )


def _zip_data_pickle(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        try:
            return archive.read(name)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(
                f"{path}: the zip archive is damaged ({exc}). {_DAMAGED}"
            ) from exc


def _check_legacy_magic(path: Path) -> None:
    """A legacy torch.save file starts with a pickled magic number; a plain pickle does not."""
    try:
        with open(path, "rb") as stream:
            values = [arg for _, arg, _ in pickletools.genops(stream) if isinstance(arg, int)]
    except (ValueError, EOFError):
        values = []
    if torch.serialization.MAGIC_NUMBER not in values:
        raise CheckpointError(
            f"{path}: a Python pickle, but not one written by torch.save (no PyTorch magic "
            "number). "
            "Re-save the weights with torch.save(model.state_dict(), path) or safetensors."
        )


def _is_trusted(path: Path, trust_file: str | Path | None) -> bool:
    return trust_file is not None and Path(trust_file).resolve() == path.resolve()


def _refusal(path: Path, unsafe: list[str], trust_file: str | Path | None) -> UnsafeCheckpointError:
    listed = "\n".join(f"  - {name}" for name in unsafe)
    mismatch = (
        f"\n(trust was given for {trust_file}, which is not this file.)"
        if trust_file is not None
        else ""
    )
    message = (
        f"{path}: refused to open. Loading it would import and run these Python objects, which "
        f"a weights-only load does not allow:\n{listed}\n"
        "A pickled checkpoint can run any code it names while it is read; plain weights never "
        "need these. If you made this file yourself or trust whoever did, open it anyway with "
        "--trust-this-file (in Python: open_checkpoint(path, trust_file=path)); it is then read "
        "in a separate process and only its tensors are kept. Better: re-save it as a plain "
        "state_dict (torch.save(model.state_dict(), ...)) or as .safetensors." + mismatch
    )
    return UnsafeCheckpointError(message, path, tuple(unsafe))


def _open_weights_only(path: Path, kind: str, trust_file: str | Path | None) -> Checkpoint:
    locations: dict[int, str] = {}

    def remember_location(storage: Any, location: str) -> Any:
        locations[storage.data_ptr()] = location
        return storage

    try:
        loaded = torch.load(
            path, map_location=remember_location, weights_only=True, mmap=kind == FORMAT_ZIP
        )
    except pickle.UnpicklingError as exc:
        reason = _weights_only_reason(str(exc))
        if reason is None:
            raise CheckpointError(f"{path}: the file is damaged ({exc}). {_DAMAGED}") from exc
        raise _refusal(path, [reason], trust_file) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the file is truncated or damaged ({_first_line(exc)}). {_DAMAGED}"
        ) from exc
    found = find_state_dict(loaded)
    if found is None:
        raise _no_tensors(path, loaded)
    saved_devices = {
        key: locations.get(tensor.untyped_storage().data_ptr(), "cpu")
        for key, tensor in found.state_dict.items()
    }
    return Checkpoint(
        path, kind, found.state_dict, found.location, found.layout, found.metadata, saved_devices
    )


def _weights_only_reason(message: str) -> str | None:
    """The global named in torch's weights_only refusal, or None when the refusal is damage."""
    for marker in ("Unsupported global: GLOBAL ", "unsupported GLOBAL "):
        if marker in message:
            name = message.split(marker, 1)[1].split()[0]
            if name not in (".", ""):
                return name
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _no_tensors(path: Path, loaded: object) -> CheckpointError:
    return CheckpointError(
        f"{path}: holds a {type(loaded).__name__} with no tensors in it, so there are no weights "
        "to show. Expected a state_dict (a dict of tensors) or a dict holding one under "
        "'state_dict', 'model' or 'model_state_dict'."
    )


def _open_safetensors(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            # safetensors keeps no key order; numbers in natural order put layer10 after layer9.
            keys = sorted(handle.keys(), key=natural_key)
            state_dict = {key: handle.get_tensor(key) for key in keys}
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: the safetensors file is damaged ({_first_line(exc)}). {_DAMAGED}"
        ) from exc
    if not state_dict:
        raise CheckpointError(f"{path}: the safetensors file holds no tensors.")
    metadata: dict[str, Any] = {"safetensors_metadata": dict(header)} if header else {}
    return Checkpoint(
        path,
        FORMAT_SAFETENSORS,
        state_dict,
        None,
        "safetensors",
        metadata,
        dict.fromkeys(state_dict, "cpu"),
    )


def _open_in_subprocess(path: Path, kind: str) -> Checkpoint:
    """Unpickle a trusted file in a child process; only plain tensors come back."""
    with tempfile.TemporaryDirectory(prefix="workbench-trusted-") as folder:
        handoff = Path(folder) / "weights.safetensors"
        command = [
            sys.executable,
            "-m",
            "workbench.engine.checkpoints.trusted_loader",
            str(path.resolve()),
            str(handoff),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, env=_child_environment(), check=False
        )
        if result.returncode != 0 or not handoff.exists():
            detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
            raise CheckpointError(
                f"{path}: loading the trusted file in a separate process failed: {detail}"
            )
        with safe_open(str(handoff), framework="pt") as handle:
            header = handle.metadata() or {}
        # Copies, so the temporary hand-off file can go away (mmap'd tensors would pin it).
        tensors = load_file(handoff)
        order = json.loads(header.get(HANDOFF_ORDER, "[]")) or sorted(tensors, key=natural_key)
        state_dict = {key: tensors.pop(key).clone() for key in order}
    return Checkpoint(
        path,
        kind,
        state_dict,
        header.get(HANDOFF_LOCATION) or None,
        header.get(HANDOFF_LAYOUT, "plain state_dict"),
        json.loads(header.get(HANDOFF_METADATA, "{}")),
        dict.fromkeys(state_dict, "cpu"),
        loaded_in_subprocess=True,
    )


def _child_environment() -> dict[str, str]:
    """The child must import this same workbench package, installed or not."""
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def natural_key(key: str) -> list[tuple[int, int | str]]:
    """Sort key that orders `layer2` before `layer10`."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", key)]


def _similar_files_hint(path: Path) -> str:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f" The folder {folder} does not exist either."
    nearby = sorted(p.name for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)[:5]
    if nearby:
        return f" Checkpoints in {folder}: {', '.join(nearby)}."
    return " Check the path."
