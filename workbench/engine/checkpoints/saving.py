"""Write a state_dict as .pth or .safetensors, atomically, with tied (shared) tensors handled."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import safetensors.torch
import torch
from safetensors.torch import save_file

from workbench.engine.atomic import atomic_path, atomic_write
from workbench.engine.checkpoints.budget import MIN_VIEW_ALLOWANCE, format_bytes, memory_budget
from workbench.engine.checkpoints.detection import shown
from workbench.engine.checkpoints.tensor_data import (
    expansion_bytes,
    has_storage,
    unreadable_reason,
)
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def save_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    path: str | Path,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save to `path`; the suffix picks the format (.safetensors, else torch.save of a plain dict).

    `metadata` (string to string) goes into the safetensors header; .pth files hold tensors only.
    """
    path = Path(path)
    _check_tensors(state_dict, path)
    if path.suffix == ".safetensors":
        save_safetensors(state_dict, path, metadata)
    elif path.suffix in PICKLE_SUFFIXES:
        plain = {key: tensor for key, tensor in state_dict.items()}
        atomic_write(path, lambda handle: torch.save(plain, handle))
    else:
        raise CheckpointError(
            f"{path}: unknown output suffix {path.suffix!r}; use .pth, .pt, .bin, .ckpt or "
            ".safetensors."
        )
    return path


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    for key, tensor in state_dict.items():
        problem = _safetensors_problem(tensor)
        if problem is not None:
            raise CheckpointError(
                f"{shown(path)}: cannot write {key!r} to .safetensors: it is {problem}. Save to "
                f".pth instead (it keeps any tensor), or drop the key (--drop {safe_text(key)})."
            )
    _check_expansion(state_dict, path)
    tensors = unshare_tensors(state_dict)
    with atomic_path(path) as temp:
        header = {"format": "pt", **(metadata or {})}  # "format" is what transformers expects
        save_file(tensors, str(temp), metadata=header)


def unshare_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, no two sharing memory (safetensors refuses shared storage).

    Tied weights (e.g. an embedding and an output layer using one matrix) arrive as two keys on
    one storage; the second gets its own copy, so every key keeps its exact bits.
    """
    seen_storages: set[int] = set()
    result: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().cpu()
        storage = tensor.untyped_storage()
        owner = storage.data_ptr()
        partial = storage.nbytes() != tensor.numel() * tensor.element_size()
        if tensor.numel() > 0 and (owner in seen_storages or partial):
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        elif not tensor.is_contiguous():
            tensor = tensor.contiguous()
        if tensor.numel() > 0:
            seen_storages.add(owner)
        result[key] = tensor
    return result


def _check_tensors(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    if not state_dict:
        raise CheckpointError(f"{path}: nothing to save; every key was deleted.")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: cannot save key {key!r}: it is a {type(value).__name__}, not a tensor."
            )


def _safetensors_problem(tensor: torch.Tensor) -> str | None:
    """Why safetensors cannot store `tensor` (a dense array of a dtype it knows), or None."""
    if tensor.device.type == "meta" or tensor.layout != torch.strided:
        return unreadable_reason(tensor)
    if tensor.is_quantized:
        return "a quantized tensor (its scale and zero point have no place in safetensors)"
    writable = getattr(safetensors.torch, "_SIZE", None)
    if isinstance(writable, dict) and tensor.dtype not in writable:
        return f"of dtype {str(tensor.dtype).removeprefix('torch.')}, which safetensors lacks"
    return None if has_storage(tensor) else unreadable_reason(tensor)


def _check_expansion(state_dict: Mapping[str, torch.Tensor], path: Path) -> None:
    """.safetensors holds no views: an expanded view is written out in full. Refuse when that
    would take far more than the tensors store (864 bytes of stride-0 views becoming 4 GB)."""
    extra = {key: expansion_bytes(tensor) for key, tensor in state_dict.items()}
    total = sum(extra.values())
    stored = sum(t.numel() * t.element_size() for k, t in state_dict.items() if not extra[k])
    allowed = min(memory_budget(), max(MIN_VIEW_ALLOWANCE, stored))
    if total <= allowed:
        return
    key = max(extra, key=lambda name: extra[name])
    raise CheckpointError(
        f"{shown(path)}: not written: {key!r} and other keys are views that repeat their stored "
        f"values (stride 0 or overlapping strides); .safetensors cannot hold views, so writing "
        f"them out in full would add {format_bytes(total)}, over the {format_bytes(allowed)} "
        "allowed. Save to .pth instead: it keeps the views as they are."
    )
