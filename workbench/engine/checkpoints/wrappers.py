"""Find the state_dict inside the usual checkpoint wrappers and summarise the rest as JSON."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

# Keys under which training scripts and libraries keep the model weights, most specific first.
STATE_DICT_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "weights",
)
LIGHTNING_MARKERS = (
    "pytorch-lightning_version",
    "hyper_parameters",
    "optimizer_states",
    "global_step",
    "epoch",
    "loops",
)
_MAX_DEPTH = 5
_MAX_ITEMS = 20
_MAX_TEXT = 200


@dataclass(frozen=True)
class FoundStateDict:
    """Where the weights were in a loaded object and what else the file carried."""

    state_dict: dict[str, torch.Tensor]
    location: str | None  # dotted key path inside the file; None when the file IS the state_dict
    layout: str  # human words: "plain state_dict", "Lightning checkpoint", ...
    metadata: dict[str, Any]  # JSON-able summary of everything that is not the state_dict


def is_state_dict(value: object) -> bool:
    """A non-empty mapping from string keys to tensors."""
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def find_state_dict(loaded: object) -> FoundStateDict | None:
    """Locate the weights in what torch.load returned; None when there are no tensors at all."""
    if is_state_dict(loaded):
        assert isinstance(loaded, Mapping)
        return FoundStateDict(dict(loaded), None, "plain state_dict", {})
    if isinstance(loaded, torch.Tensor):
        return FoundStateDict(
            {"tensor": loaded}, None, "single tensor", {"note": "the file holds one bare tensor"}
        )
    if not isinstance(loaded, Mapping):
        return None
    found = _search_wrapper(loaded, prefix="", depth=0)
    if found is not None:
        path, weights = found
        rest = _without_path(loaded, path)
        layout = _layout_name(loaded, path)
        return FoundStateDict(dict(weights), path, layout, summarise(rest))
    loose = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if loose:
        rest = {k: v for k, v in loaded.items() if k not in loose}
        return FoundStateDict(loose, None, "tensors mixed with other values", summarise(rest))
    return None


def _search_wrapper(
    mapping: Mapping[Any, Any], prefix: str, depth: int
) -> tuple[str, Mapping[str, torch.Tensor]] | None:
    for key in STATE_DICT_KEYS:
        value = mapping.get(key)
        if is_state_dict(value):
            return prefix + key, typing.cast(Mapping[str, torch.Tensor], value)
    if depth >= 1:
        return None
    # One level deeper covers {"model": {"state_dict": ...}} and similar nestings.
    for key in STATE_DICT_KEYS:
        value = mapping.get(key)
        if isinstance(value, Mapping):
            found = _search_wrapper(value, f"{prefix}{key}.", depth + 1)
            if found is not None:
                return found
    return None


def _without_path(mapping: Mapping[Any, Any], path: str) -> dict[Any, Any]:
    head, _, tail = path.partition(".")
    rest: dict[Any, Any] = {}
    for key, value in mapping.items():
        if key != head:
            rest[key] = value
        elif tail and isinstance(value, Mapping):
            inner = _without_path(value, tail)
            if inner:
                rest[key] = inner
    return rest


def _layout_name(mapping: Mapping[Any, Any], path: str) -> str:
    if path == "state_dict" and any(marker in mapping for marker in LIGHTNING_MARKERS):
        return "Lightning checkpoint"
    if len(mapping) == 1:
        return f"state_dict wrapped under '{path}'"
    return f"training checkpoint (state_dict under '{path}')"


def summarise(value: Any, depth: int = 0) -> Any:
    """A JSON-able picture of any loaded value: scalars as-is, tensors described, long lists cut."""
    if isinstance(value, torch.Tensor):
        return _describe_tensor(value)
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, str) else _cut(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return _short_type(value)
    if _is_optimizer_state(value):
        return _summarise_optimizer(value, depth)
    if isinstance(value, Mapping):
        items = list(value.items())
        summary = {str(k): summarise(v, depth + 1) for k, v in items[:_MAX_ITEMS]}
        if len(items) > _MAX_ITEMS:
            summary["..."] = f"{len(items) - _MAX_ITEMS} more entries"
        return summary
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        listed = [summarise(v, depth + 1) for v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            listed.append(f"... {len(items) - _MAX_ITEMS} more items")
        return listed
    if isinstance(value, torch.dtype | torch.device | torch.Size):
        return str(value)
    return _short_type(value)


def _is_optimizer_state(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"state", "param_groups"}


def _summarise_optimizer(value: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """Optimizer state_dicts hold a tensor per parameter: name their kinds, not every tensor."""
    state = value["state"]
    kinds: dict[str, None] = {}
    if isinstance(state, Mapping):
        for entry in state.values():
            if isinstance(entry, Mapping):
                kinds.update(dict.fromkeys(str(k) for k in entry))
    groups = []
    for group in value["param_groups"] if isinstance(value["param_groups"], list) else []:
        if isinstance(group, Mapping):
            summary = {k: summarise(v, depth + 2) for k, v in group.items() if k != "params"}
            summary["params"] = len(group.get("params", []))
            groups.append(summary)
    count = len(state) if isinstance(state, Mapping) else 0
    return {
        "state": f"{count} parameters with {', '.join(kinds) or 'no state'}",
        "param_groups": groups,
    }


def _describe_tensor(tensor: torch.Tensor) -> str:
    if tensor.dim() == 0 and tensor.numel() == 1:
        return f"tensor({tensor.item()!r}, {_dtype_name(tensor.dtype)})"
    return f"tensor{list(tensor.shape)} {_dtype_name(tensor.dtype)}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _short_type(value: object) -> str:
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
