"""Find the state_dict inside the usual checkpoint wrappers and summarise the rest as JSON."""

from __future__ import annotations

import itertools
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from workbench.engine.safe_text import safe_text

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
_MAX_NODES = 2000
_MAX_CHILDREN = 200  # of one container searched for nested state_dicts


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
    """Locate the weights in what torch.load returned; None when there are none, or several
    candidates that cannot be told apart (see state_dict_candidates)."""
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
        return _found_at(loaded, *found)
    loose = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if loose:
        rest = {k: v for k, v in loaded.items() if k not in loose}
        return FoundStateDict(loose, None, "tensors mixed with other values", summarise(rest))
    # Any other key (`model_state`, `generator`, `ema`): taken when it is the only candidate.
    candidates = state_dict_candidates(loaded)
    return _found_at(loaded, *candidates[0]) if len(candidates) == 1 else None


def _found_at(
    loaded: Mapping[Any, Any], path: str, weights: Mapping[str, torch.Tensor]
) -> FoundStateDict:
    rest = _without_path(loaded, path)
    return FoundStateDict(dict(weights), path, _layout_name(loaded, path), summarise(rest))


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


def state_dict_candidates(
    loaded: Mapping[Any, Any],
) -> list[tuple[str, Mapping[str, torch.Tensor]]]:
    """Every mapping of tensors nested anywhere in `loaded` (a state_dict under `model_state`,
    `generator`, ...), with its dotted key path; optimizer states are not weights, skipped.
    Each container is visited once, at most _MAX_NODES of them (pickles can be cyclic)."""
    found: list[tuple[str, Mapping[str, torch.Tensor]]] = []
    pending: list[tuple[str, Any, int]] = [("", loaded, 0)]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_NODES and len(found) <= _MAX_ITEMS:
        prefix, value, depth = pending.pop()
        if id(value) in seen or depth > _MAX_DEPTH or _is_optimizer_state(value):
            continue
        seen.add(id(value))
        if depth and is_state_dict(value):
            found.append((prefix, value))
            continue
        if isinstance(value, Mapping):
            items = itertools.islice(value.items(), _MAX_CHILDREN)
            children = [(str(k), v) for k, v in items if isinstance(k, str | int)]
        elif isinstance(value, list | tuple):
            children = [(str(i), v) for i, v in enumerate(value[:_MAX_CHILDREN])]
        else:
            continue
        for name, child in reversed(children):
            if isinstance(child, Mapping | list | tuple):
                pending.append((f"{prefix}.{name}" if prefix else name, child, depth + 1))
    return found


def iter_tensors(value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a loaded object (nested dicts, lists, tuples, sets), each object once
    however often it is referenced; iterative, so a deeply nested pickle cannot recurse."""
    seen: set[int] = set()
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            yield path, item
        elif isinstance(item, Mapping):
            pending.extend((f"{path}.{k}" if path else str(k), v) for k, v in item.items())
        elif isinstance(item, list | tuple | set | frozenset):
            pending.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item))


def _without_path(mapping: Mapping[Any, Any], path: str) -> dict[Any, Any]:
    head, _, tail = path.partition(".")
    rest: dict[Any, Any] = {}
    for key, value in mapping.items():
        if str(key) != head:
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


def summarise(value: Any) -> Any:
    """A JSON-able picture of any loaded value: scalars as-is, tensors described, long lists
    cut, at most _MAX_NODES values in all (a pickle can reference one dict from itself)."""
    return _Summary().of(value, 0)


class _Summary:
    def __init__(self) -> None:
        self.left = _MAX_NODES

    def of(self, value: Any, depth: int) -> Any:
        self.left -= 1
        if isinstance(value, torch.Tensor):
            return _describe_tensor(value)
        if value is None or isinstance(value, bool | int | str):
            return value if not isinstance(value, str) else _cut(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if depth >= _MAX_DEPTH or self.left <= 0:
            return _short_type(value)
        if _is_optimizer_state(value):
            return self.optimizer(value, depth)
        if isinstance(value, Mapping):
            items = list(value.items())
            summary = {_cut(str(k)): self.of(v, depth + 1) for k, v in items[:_MAX_ITEMS]}
            if len(items) > _MAX_ITEMS:
                summary["..."] = f"{len(items) - _MAX_ITEMS} more entries"
            return summary
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            listed = [self.of(v, depth + 1) for v in items[:_MAX_ITEMS]]
            if len(items) > _MAX_ITEMS:
                listed.append(f"... {len(items) - _MAX_ITEMS} more items")
            return listed
        if isinstance(value, torch.dtype | torch.device | torch.Size):
            return str(value)
        return _short_type(value)

    def optimizer(self, value: Mapping[str, Any], depth: int) -> dict[str, Any]:
        """Optimizer state_dicts hold a tensor per parameter: name their kinds, not each tensor."""
        state = value["state"]
        kinds: dict[str, None] = {}
        if isinstance(state, Mapping):
            for entry in list(state.values())[:_MAX_NODES]:
                if isinstance(entry, Mapping):
                    kinds.update(dict.fromkeys(_cut(str(k)) for k in list(entry)[:_MAX_ITEMS]))
        groups = []
        param_groups = value["param_groups"]
        for group in param_groups[:_MAX_ITEMS] if isinstance(param_groups, list) else []:
            if isinstance(group, Mapping):
                summary = {
                    _cut(str(k)): self.of(v, depth + 2) for k, v in group.items() if k != "params"
                }
                params = group.get("params", [])
                summary["params"] = len(params) if isinstance(params, list | tuple) else 0
                groups.append(summary)
        count = len(state) if isinstance(state, Mapping) else 0
        return {
            "state": f"{count} parameters with {', '.join(list(kinds)[:_MAX_ITEMS]) or 'no state'}",
            "param_groups": groups,
        }


def _is_optimizer_state(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"state", "param_groups"}


def _describe_tensor(tensor: torch.Tensor) -> str:
    dtype = _dtype_name(tensor.dtype)
    readable = tensor.layout == torch.strided and tensor.device.type != "meta"
    if readable and tensor.dim() == 0 and tensor.numel() == 1 and not tensor.is_quantized:
        try:
            return f"tensor({tensor.item()!r}, {dtype})"
        except (RuntimeError, NotImplementedError, TypeError):
            pass  # a dtype without Python scalars (bits8, float4): described by shape
    layout = (
        "" if tensor.layout == torch.strided else f" {str(tensor.layout).removeprefix('torch.')}"
    )
    device = " meta" if tensor.device.type == "meta" else ""
    return f"tensor{list(tensor.shape)} {dtype}{layout}{device}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _short_type(value: object) -> str:
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def _cut(text: str) -> str:
    """Text for display: control and bidi characters escaped (see safe_text), long text cut."""
    text = safe_text(text[: _MAX_TEXT * 2])
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."
