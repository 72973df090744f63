"""Compare two state_dicts key by key: added/removed keys, shape/dtype changes, value changes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from workbench.engine.checkpoints.inspection import dtype_name

_CHUNK = 1 << 22


@dataclass(frozen=True)
class TensorChange:
    """How one tensor present in both files with the same shape differs."""

    key: str
    identical: bool  # bit for bit (same dtype and bytes)
    max_abs_diff: float
    relative_norm: float  # ||a - b|| / ||a||; inf when a is all zeros and b is not
    dtype_a: str
    dtype_b: str


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
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]
) -> CheckpointDiff:
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
        changes.append(compare_tensors(key, left, right))
    return CheckpointDiff(only_in_a, only_in_b, shape_changed, dtype_changed, changes)


def compare_tensors(key: str, a: torch.Tensor, b: torch.Tensor) -> TensorChange:
    """Max |a-b| and ||a-b||/||a|| in float64, chunk by chunk so big tensors stay cheap."""
    flat_a, flat_b = _flat(a), _flat(b)
    identical = a.dtype == b.dtype and _same_bits(flat_a, flat_b)
    max_abs, diff_sq, base_sq = 0.0, 0.0, 0.0
    if not identical:
        for start in range(0, flat_a.numel(), _CHUNK):
            left = flat_a[start : start + _CHUNK].to(torch.float64)
            right = flat_b[start : start + _CHUNK].to(torch.float64)
            delta = (left - right).abs()
            # NaN where both are NaN (or equal infinities) is no change.
            same = (left == right) | (torch.isnan(left) & torch.isnan(right))
            delta = torch.where(same, torch.zeros_like(delta), delta.nan_to_num(nan=math.inf))
            if delta.numel():
                max_abs = max(max_abs, float(delta.max()))
            diff_sq += float((delta * delta).sum())
            base_sq += float((left.nan_to_num(nan=0.0) ** 2).sum())
    relative = _relative(diff_sq, base_sq)
    return TensorChange(key, identical, max_abs, relative, dtype_name(a.dtype), dtype_name(b.dtype))


def _relative(diff_sq: float, base_sq: float) -> float:
    if diff_sq == 0:
        return 0.0
    if base_sq == 0:
        return math.inf
    return math.sqrt(diff_sq) / math.sqrt(base_sq)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() == 0:
        return True
    if a.dtype == torch.bool:
        return bool(torch.equal(a, b))
    as_bytes_a = a.contiguous().view(torch.uint8)
    as_bytes_b = b.contiguous().view(torch.uint8)
    return bool(torch.equal(as_bytes_a, as_bytes_b))


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.is_quantized:
        tensor = tensor.dequantize()
    if tensor.is_complex():
        tensor = torch.view_as_real(tensor)
    if tensor.dtype == torch.bool:
        tensor = tensor.to(torch.uint8)
    return tensor.reshape(-1)
