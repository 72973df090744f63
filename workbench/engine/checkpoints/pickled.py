"""The one safe reader of torch.save files: scan, budget, then a weights-only torch.load.

Every pickled checkpoint the workbench reads (the editor, `inspect`, `diff`, `edit`,
`reconcile`, `train --resume`) goes through `scan_pickled` and `load_scanned`: the zip
directory is checked against the limits in `budget`, the pickle's imports are listed without
running it, and only then does torch.load(weights_only=True) run, with every failure turned
into a CheckpointError that says what is wrong with the file.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.engine.checkpoints import budget
from workbench.engine.checkpoints.detection import (
    DAMAGED,
    FORMAT_SAFETENSORS,
    FORMAT_ZIP,
    detect_format,
    shown,
)
from workbench.engine.checkpoints.pickle_scan import (
    PickleScanError,
    allocating_globals,
    globals_in_legacy_file,
    globals_in_pickle,
    unsafe_globals,
)
from workbench.engine.checkpoints.wrappers import iter_tensors
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

_TRUNCATION_MARKERS = (
    "unexpected eof",
    "failed finding central directory",
    "failed reading",
    "file might be corrupted",
    "ran out of input",
    "truncated",
)
# How zipfile reports a member it cannot read: bad CRC or headers, broken deflate data,
# encryption or an unknown compression method.
_ZIP_DAMAGE = (
    OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError
)  # fmt: skip
_MISMATCH_MARKERS = ("resize storage that is not resizable", "record size", "wrong byte size")
_ALLOCATION_MARKERS = ("can't allocate memory", "out of memory", "cannot allocate memory")


class UnsafeCheckpointError(CheckpointError):
    """The file would import code when unpickled; `unsafe_globals` lists what it names."""

    def __init__(self, message: str, path: Path, unsafe_globals: tuple[str, ...]) -> None:
        super().__init__(message)
        self.path = path
        self.unsafe_globals = unsafe_globals


@dataclass(frozen=True)
class ScannedPickle:
    """A torch.save file whose structure passed the checks, and what its pickle imports."""

    path: Path
    kind: str  # FORMAT_ZIP | FORMAT_LEGACY
    data_bytes: int  # tensor data the file can provide (see budget.check_tensors)
    can_mmap: bool
    unsafe: tuple[str, ...]  # globals a weights-only load refuses (shown escaped)
    allocating: tuple[str, ...]  # allowed globals that can allocate without limit

    @property
    def refused(self) -> tuple[str, ...]:
        return self.unsafe + self.allocating


def scan_pickled(path: Path, kind: str) -> ScannedPickle:
    """Check the zip directory's declared sizes and list the pickle's imports; runs nothing."""
    size = path.stat().st_size
    try:
        if kind == FORMAT_ZIP:
            plan = budget.plan_zip(path, size)
            names = globals_in_pickle_bytes(plan.data_pickle)
            data_bytes, can_mmap = plan.data_bytes, not plan.compressed
        else:
            with open(path, "rb") as stream:
                names = globals_in_legacy_file(stream, size)
            data_bytes, can_mmap = size, False
    except PickleScanError as exc:
        raise _scan_failure(path, exc) from exc
    except _ZIP_DAMAGE as exc:  # a member that cannot be read back as its directory says
        raise CheckpointError(
            f"{shown(path)}: the file is truncated or damaged ({safe_text(_first_line(exc))}). "
            f"{DAMAGED}"
        ) from exc
    unsafe = unsafe_globals(names)
    allocating = [name for name in allocating_globals(names) if name not in unsafe]
    return ScannedPickle(
        path,
        kind,
        data_bytes,
        can_mmap,
        tuple(safe_text(name) for name in unsafe),
        tuple(safe_text(name) for name in allocating),
    )


def globals_in_pickle_bytes(data: bytes) -> list[str]:
    return globals_in_pickle(io.BytesIO(data), len(data))


def _scan_failure(path: Path, exc: PickleScanError) -> CheckpointError:
    if exc.truncated:
        return CheckpointError(
            f"{shown(path)}: the file is truncated or damaged: its pickle ends before its end mark "
            f"({safe_text(exc)}). {DAMAGED}"
        )
    return CheckpointError(
        f"{shown(path)}: the pickle inside cannot be followed ({safe_text(exc)}): it is not "
        "what torch.save writes, so the file is damaged or was made by another tool. Nothing "
        "in it was run. Get the original file, or re-save the weights from the source."
    )


def refusal(
    scanned: ScannedPickle,
    trust_file: str | Path | None,
    *,
    trust_hint: bool = True,
    verdict: str = "refused to open.",
) -> UnsafeCheckpointError:
    path = scanned.path
    parts = [f"{shown(path)}: {verdict}"]
    if scanned.unsafe:
        listed = "\n".join(f"  - {name}" for name in scanned.unsafe)
        parts.append(
            "Loading it would import and run these Python objects, which a weights-only load "
            f"does not allow:\n{listed}\nA pickled checkpoint can run any code it names while "
            "it is read; plain weights never need these."
        )
    if scanned.allocating:
        listed = "\n".join(f"  - {name}" for name in scanned.allocating)
        parts.append(
            "Its pickle calls these constructors, which can ask for any amount of memory while "
            f"the file is read and which torch.save never writes for tensors:\n{listed}\n"
        )
    if trust_hint:
        parts.append(
            "If you made this file yourself or trust whoever did, open it anyway with "
            "--trust-this-file (in Python: open_checkpoint(path, trust_file=path)); it is then "
            "read in a separate process and only its tensors are kept."
        )
    parts.append(
        "Better: re-save it as a plain state_dict (torch.save(model.state_dict(), ...)) or as "
        ".safetensors."
    )
    if trust_file is not None:
        parts.append(f"(trust was given for {shown(trust_file)}, which is not this file.)")
    message = ""
    for part in parts:  # a space between sentences, none after a list's last line
        message += part if not message or message.endswith("\n") else " " + part
    return UnsafeCheckpointError(message, path, scanned.refused)


def load_scanned(scanned: ScannedPickle, *, mmap: bool) -> tuple[Any, dict[int, str]]:
    """torch.load(weights_only=True) of a scanned file; also where each storage was saved
    (`cuda:0`), keyed by storage data pointer. Memory-mapped when asked and possible."""
    locations: dict[int, str] = {}

    def remember_location(storage: Any, location: str) -> Any:
        locations[storage.data_ptr()] = location
        return storage

    try:
        loaded = torch.load(
            scanned.path,
            map_location=remember_location,
            weights_only=True,
            mmap=mmap and scanned.can_mmap,
        )
    except Exception as exc:  # whatever the unpickler trips on is the file's fault
        raise load_failure(scanned.path, exc) from exc
    return loaded, locations


def load_failure(path: Path, exc: BaseException) -> CheckpointError:
    """A readable CheckpointError for an exception torch.load raised on `path`."""
    detail = safe_text(_torch_reason(exc))
    lowered = detail.lower()
    if isinstance(exc, EOFError) or any(marker in lowered for marker in _TRUNCATION_MARKERS):
        return CheckpointError(
            f"{shown(path)}: the file is truncated or damaged ({detail}). {DAMAGED}"
        )
    if isinstance(exc, MemoryError) or any(marker in lowered for marker in _ALLOCATION_MARKERS):
        return CheckpointError(
            f"{shown(path)}: the file asks for more memory than this machine has ({detail}); "
            "a checkpoint that fits on disk never needs this, so it is crafted or damaged. "
            "Nothing was kept."
        )
    if any(marker in lowered for marker in _MISMATCH_MARKERS):
        return CheckpointError(
            f"{shown(path)}: a tensor in it needs more data than the file stores for it "
            f"({detail}). The file is damaged or crafted; get the original."
        )
    return CheckpointError(
        f"{shown(path)}: the pickle inside does something a weights-only load cannot follow "
        f"({type(exc).__name__}: {detail}). torch.save of a model's weights never writes "
        "this; the file is damaged or crafted. Nothing in it was run. Get the original file, "
        "or re-save the weights from the source."
    )


def _torch_reason(exc: BaseException) -> str:
    """The useful line of a torch.load error, without torch's advice to retry unsafely."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    text = text.replace(torch.serialization.UNSAFE_MESSAGE, "")
    text = re.sub(r"\s*Check the documentation of torch\.load.*", "", text, flags=re.DOTALL)
    text = re.sub(r"^\s*Weights only load failed\.\s*", "", text)
    return _first_line(text) if text.strip() else type(exc).__name__


def _first_line(exc: object) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def read_weights_only(path: str | Path) -> Any:
    """Everything a torch.save file holds (not only its weights), read as safely as the editor
    reads checkpoints: structure and budgets checked first, weights-only, never memory-mapped
    (the file may be replaced while its contents are used). For resuming training."""
    path = Path(path)
    kind = detect_format(path)
    if kind == FORMAT_SAFETENSORS:
        raise CheckpointError(
            f"{shown(path)}: a .safetensors file holds weights only; resuming needs the "
            "checkpoint.pt an earlier run wrote. To start from these weights, open them in the "
            "checkpoint editor instead."
        )
    scanned = scan_pickled(path, kind)
    if scanned.refused:
        verdict = "cannot be resumed from: it is not a safe Torch Workbench checkpoint."
        raise refusal(scanned, None, trust_hint=False, verdict=verdict)
    loaded, _ = load_scanned(scanned, mmap=False)
    budget.check_tensors(path, iter_tensors(loaded), scanned.data_bytes)
    return loaded
