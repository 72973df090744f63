"""Limits checked before anything is materialised: zip members, storages and views vs file size.

A checkpoint can declare far more than it holds: a 6 MB zip whose `data.pkl` inflates to
6 GiB, a pickle that builds a tensor on a storage it resizes, 864 bytes of stride-0 views
that expand to 4 GB. Each declared size is compared with what the file can really provide
(its size, or the uncompressed sizes its zip directory declares) and with the free memory,
and refused with a CheckpointError that names the file, before torch allocates any of it.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.engine.checkpoints.tensor_data import expansion_bytes, has_storage
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

MiB = 1 << 20
# Anything up to these sizes is always allowed: small files may hold small expanded views
# (`torch.zeros(1).expand(64)`) or be deflated far below their real size.
MIN_VIEW_ALLOWANCE = 64 * MiB
MIN_INFLATED_ALLOWANCE = 256 * MiB
INFLATION_FACTOR = 8  # a deflated checkpoint may unpack to this many times its file size
_SLACK = MiB  # zero-sized or rounding differences between records and storages
_FALLBACK_AVAILABLE = 4 << 30


def available_memory() -> int:
    """Bytes of memory the system can still give (MemAvailable), or a cautious 4 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_AVAILABLE


def memory_budget() -> int:
    """What one checkpoint operation may use: half the memory still available."""
    return available_memory() // 2


def format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ZipPlan:
    """What the zip directory of a torch.save archive declares, checked against the limits."""

    data_pickle: bytes  # the pickle (`archive/data.pkl`), read once its size was checked
    data_bytes: int  # bytes of tensor data the archive can provide (uncompressed records)
    compressed: bool  # some record is deflated: its tensors cannot be memory-mapped


def plan_zip(path: Path, file_size: int) -> ZipPlan:
    """Check every member's declared size before a byte of it is inflated; then read the
    pickle (at most its declared size)."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        _check_members(path, infos, file_size)
        pickle_info = next(info for info in infos if info.filename.endswith("data.pkl"))
        with archive.open(pickle_info) as member:
            data_pickle = member.read()
    deflated_records = any(
        "/data/" in i.filename and i.compress_type != zipfile.ZIP_STORED for i in infos
    )
    return ZipPlan(data_pickle, sum(i.file_size for i in infos), deflated_records)


def _check_members(path: Path, infos: list[zipfile.ZipInfo], file_size: int) -> None:
    inflated = sum(i.file_size for i in infos if i.compress_type != zipfile.ZIP_STORED)
    allowed = min(memory_budget(), max(MIN_INFLATED_ALLOWANCE, INFLATION_FACTOR * file_size))
    if inflated > allowed:
        biggest = max(infos, key=lambda i: i.file_size if i.compress_type else 0)
        raise CheckpointError(
            f"{safe_text(path)}: a {format_bytes(file_size)} zip archive whose members declare "
            f"{format_bytes(inflated)} once unpacked ({safe_text(biggest.filename)}: "
            f"{format_bytes(biggest.file_size)}), more than the {format_bytes(allowed)} allowed "
            "for it. A checkpoint written by torch.save is never compressed like this: the "
            "file is a zip bomb or badly re-packed. Nothing was unpacked; get the original file."
        )
    for info in infos:
        if info.compress_type == zipfile.ZIP_STORED and (
            info.file_size != info.compress_size
            or info.header_offset + info.compress_size > file_size
        ):
            raise CheckpointError(
                f"{safe_text(path)}: the zip member {safe_text(info.filename)} declares "
                f"{format_bytes(info.file_size)} but the archive cannot hold it (truncated or "
                "damaged). Copy or download the file again."
            )


def check_tensors(path: Path, tensors: Iterable[tuple[str, torch.Tensor]], data_bytes: int) -> None:
    """Refuse storages larger than the file can provide and views expanding past the limit.

    `data_bytes`: the tensor data the file really holds (its size, or what its zip records
    unpack to). Storages are counted once however many keys share them (tied weights).
    """
    storages: dict[int, int] = {}  # data pointer -> bytes
    expanded: list[tuple[str, torch.Tensor, int]] = []
    for key, tensor in tensors:
        if tensor.layout is not torch.strided or tensor.is_meta or not has_storage(tensor):
            continue  # sparse parts are tensors of their own; meta and subclasses hold nothing
        storage = tensor.untyped_storage()
        nbytes = storage.nbytes()
        if nbytes:
            storages[storage.data_ptr()] = max(nbytes, storages.get(storage.data_ptr(), 0))
        if not tensor.is_contiguous():  # a contiguous tensor never reads an element twice
            extra = expansion_bytes(tensor)
            if extra:
                expanded.append((key, tensor, extra))
    stored = sum(storages.values())
    if stored > data_bytes + _SLACK:
        raise CheckpointError(
            f"{safe_text(path)}: its tensors declare {format_bytes(stored)} of storage, but the file holds "
            f"only {format_bytes(data_bytes)} of data: the pickle builds or resizes storages "
            "beyond what it stores (a crafted or corrupted file). It was not opened; get the "
            "original file or re-save the weights from the source."
        )
    _check_views(path, expanded, stored)


def _check_views(path: Path, expanded: list[tuple[str, torch.Tensor, int]], stored: int) -> None:
    extra = sum(size for _, _, size in expanded)
    allowed = min(memory_budget(), max(MIN_VIEW_ALLOWANCE, stored))
    if extra <= allowed:
        return
    key, tensor, _ = max(expanded, key=lambda item: item[2])
    raise CheckpointError(
        f"{safe_text(path)}: its tensors are views that repeat {format_bytes(stored)} of stored values as "
        f"{format_bytes(stored + extra)} (e.g. {safe_text(key)!r}: shape {list(tensor.shape)}, "
        f"strides {list(tensor.stride())}); statistics, casts or a .safetensors copy would "
        f"need {format_bytes(extra)} more than the file, over the {format_bytes(allowed)} "
        "allowed. Checkpoints saved from a model never do this: the file is crafted or broken. "
        "If you made it, save each tensor with .clone() before torch.save."
    )
