"""A tensor's values as analyses read them: storage extents, bounded chunks, values torch lacks."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import torch

from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

CHUNK = 1 << 22  # elements per step, so analysing a multi-GB tensor stays within ~32 MB


class AnalysisCancelled(CheckpointError):
    """The caller set the `stop` event while a statistic or comparison was being computed."""


def check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise AnalysisCancelled("cancelled")


def stored_elements(tensor: torch.Tensor) -> int:
    """How many storage elements a strided tensor reaches, from its first to its last."""
    if tensor.numel() == 0:
        return 0
    return 1 + sum(
        (size - 1) * stride for size, stride in zip(tensor.shape, tensor.stride(), strict=True)
    )


def expansion_bytes(tensor: torch.Tensor) -> int:
    """Bytes a view would need beyond the storage it reads (stride 0 or overlapping strides):
    `torch.ones(1).expand(10**9)` stores 4 bytes and expands to 4 GB."""
    if tensor.layout != torch.strided or tensor.device.type == "meta":
        return 0
    extra = tensor.numel() - stored_elements(tensor)
    return max(extra, 0) * tensor.element_size()


def iter_chunks(
    tensor: torch.Tensor, chunk: int = CHUNK, stop: threading.Event | None = None
) -> Iterator[torch.Tensor]:
    """The values in row-major order as 1-D pieces of at most `chunk` elements; a strided or
    expanded view is copied one piece at a time, never as a whole. The pieces depend on the
    shape alone, so two tensors of one shape can be walked side by side."""
    check_stop(stop)
    if tensor.dim() == 0 or tensor.numel() <= chunk:
        yield tensor.reshape(-1)
        return
    row = tensor.numel() // tensor.shape[0]
    rows = chunk // row
    if rows == 0:
        for index in range(tensor.shape[0]):
            yield from iter_chunks(tensor[index], chunk, stop)
        return
    for start in range(0, tensor.shape[0], rows):
        check_stop(stop)
        yield tensor[start : start + rows].reshape(-1)


def unreadable_reason(tensor: torch.Tensor) -> str | None:
    """Why the values of `tensor` cannot be read as plain numbers here; None when they can."""
    if tensor.device.type == "meta":
        return "a meta tensor: the file holds its shape and dtype but no values"
    if tensor.layout != torch.strided:
        layout = str(tensor.layout).removeprefix("torch.")
        return f"a sparse tensor ({layout}); its values are not laid out as a dense array"
    if tensor.is_quantized:
        return None
    if not has_storage(tensor):
        return "a tensor without data (a tensor subclass that keeps its values elsewhere)"
    if not numeric_dtype(tensor.dtype):
        name = str(tensor.dtype).removeprefix("torch.")
        return f"of dtype {name}, which PyTorch has no arithmetic for on the CPU"
    return None


def plain_values(key: str, tensor: torch.Tensor, what: str) -> torch.Tensor:
    """`tensor` ready for chunked arithmetic (detached, quantized ones dequantized), or a
    CheckpointError naming the key and what to do instead of `what` (e.g. "statistics")."""
    reason = unreadable_reason(tensor)
    if reason is not None:
        raise CheckpointError(
            f"{safe_text(key)}: no {what}: it is {reason}. Drop the key (--drop) or convert "
            "the tensor to a dense floating-point one in the script that made the file."
        )
    tensor = tensor.detach()
    if tensor.is_quantized:
        tensor = tensor.dequantize()
    if tensor.dtype == torch.bool:
        tensor = tensor.to(torch.uint8)
    return tensor


def as_float64(chunk: torch.Tensor) -> torch.Tensor:
    """A chunk in float64 for statistics: complex numbers by their magnitude."""
    if chunk.is_complex():
        chunk = chunk.to(torch.complex128).abs()
    return chunk.to(torch.float64)


@functools.cache
def numeric_dtype(dtype: torch.dtype) -> bool:
    """Whether the conversions the analyses use exist for `dtype` (not for bits8, float4...)."""
    try:
        probe = torch.zeros(2, dtype=dtype)
        as_float64(probe)
        if probe.is_complex():
            torch.view_as_real(probe.to(torch.complex128))
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return True


def has_storage(tensor: torch.Tensor) -> bool:
    try:
        tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return False
    return True


def cast_view(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`tensor.to(dtype)`, but an expanded view is cast through the storage it reads, so a
    stride-0 view of 4 bytes stays 4 bytes instead of becoming the full expanded array."""
    if expansion_bytes(tensor) == 0:
        return tensor.to(dtype)
    stored = tensor.as_strided((stored_elements(tensor),), (1,))
    return stored.to(dtype).as_strided(tuple(tensor.shape), tuple(tensor.stride()), 0)
