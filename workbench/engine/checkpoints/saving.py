"""Write a state_dict as .pth or .safetensors, atomically, with tied (shared) tensors handled."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from workbench.engine.atomic import atomic_path, atomic_write
from workbench.engine.errors import CheckpointError

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
