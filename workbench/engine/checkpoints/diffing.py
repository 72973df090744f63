"""Compare two state_dicts key by key: added/removed keys, shape/dtype changes, value changes."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from workbench.engine.checkpoints.inspection import dtype_name
from workbench.engine.checkpoints.tensor_data import (
    CHUNK,
    iter_chunks,
    plain_values,
    unreadable_reason,
)

_CHUNK = CHUNK  # elements per step (tests shrink it to check the chunked merge)


@dataclass(frozen=True)
class TensorChange:
    """How one tensor present in both files with the same shape differs."""

    key: str
    identical: bool  # bit for bit (same dtype and bytes)
    max_abs_diff: float
    relative_norm: float  # ||a - b|| / ||a||; inf when a is all zeros and b is not
    dtype_a: str
    dtype_b: str
    note: str = ""  # why no numbers were computed (a sparse or meta tensor), else ""


@dataclass(frozen=True)
class CheckpointDiff:
    only_in_a: list[str]
    only_in_b: list[str]
    shape_changed: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    dtype_changed: list[tuple[str, str, str]]  # same shape, different dtype (also in `changes`)
    changes: list[TensorChange]  # every key in both with the same shape, in A's order

    @property
    def changed(self) -> list[TensorChange]:
        return [c for c in self.changes if not c.identical]

    @property
    def identical(self) -> bool:
        return not (self.only_in_a or self.only_in_b or self.shape_changed or self.changed)


def diff_state_dicts(
    a: Mapping[str, torch.Tensor],
    b: Mapping[str, torch.Tensor],
    stop: threading.Event | None = None,
) -> CheckpointDiff:
    """Key-by-key comparison; `stop`: set it from another thread to end the work between
    chunks (AnalysisCancelled)."""
    only_in_a = [key for key in a if key not in b]
    only_in_b = [key for key in b if key not in a]
    shape_changed, dtype_changed, changes = [], [], []
    for key, left in a.items():
        right = b.get(key)
        if right is None:
            continue
        if left.shape != right.shape:
            shape_changed.append((key, tuple(left.shape), tuple(right.shape)))
            continue
        if left.dtype != right.dtype:
            dtype_changed.append((key, dtype_name(left.dtype), dtype_name(right.dtype)))
        changes.append(compare_tensors(key, left, right, stop))
    return CheckpointDiff(only_in_a, only_in_b, shape_changed, dtype_changed, changes)


def compare_tensors(
    key: str, a: torch.Tensor, b: torch.Tensor, stop: threading.Event | None = None
) -> TensorChange:
    """Max |a-b| and ||a-b||/||a|| in float64, chunk by chunk so big tensors stay cheap.

    Tensors whose values cannot be read (sparse, meta, bits8...) are compared by what can be
    known: `note` says why no numbers were computed.
    """
    dtypes = dtype_name(a.dtype), dtype_name(b.dtype)
    reason = unreadable_reason(a) or unreadable_reason(b)
    if reason is not None:
        alike = _same_unreadable(a, b)
        side = "A" if unreadable_reason(a) else "B"
        note = "" if alike else f"values not compared: {side} is {reason}"
        return TensorChange(key, alike, math.nan, math.nan, *dtypes, note=note)
    left_values = plain_values(key, a, "comparison")
    right_values = plain_values(key, b, "comparison")
    identical = a.dtype == b.dtype and _same_bits(left_values, right_values, stop)
    max_abs, diff_sq, base_sq = 0.0, 0.0, 0.0
    if not identical:
        pieces = zip(
            iter_chunks(left_values, _CHUNK, stop), iter_chunks(right_values, _CHUNK), strict=True
        )
        for left_piece, right_piece in pieces:
            left, right = _as_float64(left_piece, right_piece)
            delta = (left - right).abs()
            # NaN where both are NaN (or equal infinities) is no change.
            same = (left == right) | (torch.isnan(left) & torch.isnan(right))
            delta = torch.where(same, torch.zeros_like(delta), delta.nan_to_num(nan=math.inf))
            if delta.numel():
                max_abs = max(max_abs, float(delta.max()))
            diff_sq += float((delta * delta).sum())
            base_sq += float((left.nan_to_num(nan=0.0) ** 2).sum())
    relative = _relative(diff_sq, base_sq)
    return TensorChange(key, identical, max_abs, relative, *dtypes)


def _as_float64(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both chunks in float64; when either is complex, both as (real, imaginary) pairs."""
    if left.is_complex() or right.is_complex():
        return tuple(  # type: ignore[return-value]
            torch.view_as_real(side.to(torch.complex128)).reshape(-1) for side in (left, right)
        )
    return left.to(torch.float64), right.to(torch.float64)


def _same_unreadable(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Meta tensors of one shape and dtype hold nothing that could differ; sparse tensors are
    the same when their stored parts are; other unreadable dtypes when their bytes are."""
    if a.dtype != b.dtype or a.layout != b.layout or a.device.type != b.device.type:
        return False
    if a.device.type == "meta":
        return True
    try:
        parts_a, parts_b = _stored_parts(a), _stored_parts(b)
        return all(
            x.shape == y.shape and x.dtype == y.dtype and _same_bits(x, y, None)
            for x, y in zip(parts_a, parts_b, strict=True)
        )
    except (RuntimeError, NotImplementedError, TypeError):
        return False


def _stored_parts(tensor: torch.Tensor) -> list[torch.Tensor]:
    """What a tensor stores: itself when dense, its index and value tensors when sparse."""
    layout = tensor.layout
    if layout == torch.strided:
        return [tensor]
    if layout == torch.sparse_coo:
        return [tensor._indices(), tensor._values()]
    if layout in (torch.sparse_csr, torch.sparse_bsr):
        return [tensor.crow_indices(), tensor.col_indices(), tensor.values()]
    return [tensor.ccol_indices(), tensor.row_indices(), tensor.values()]


def _relative(diff_sq: float, base_sq: float) -> float:
    if diff_sq == 0:
        return 0.0
    if base_sq == 0:
        return math.inf
    return math.sqrt(diff_sq) / math.sqrt(base_sq)


def _same_bits(a: torch.Tensor, b: torch.Tensor, stop: threading.Event | None) -> bool:
    if a.numel() == 0:
        return True
    if a.dtype == torch.bool:
        a, b = a.to(torch.uint8), b.to(torch.uint8)
    for left, right in zip(iter_chunks(a, _CHUNK, stop), iter_chunks(b, _CHUNK), strict=True):
        if not torch.equal(left.view(torch.uint8), right.view(torch.uint8)):
            return False
    return True
