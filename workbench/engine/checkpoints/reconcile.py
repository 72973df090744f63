"""Compare a checkpoint with a model: matches, missing and extra keys, and renames that fix it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from workbench.engine.checkpoints.editing import rename_keys
from workbench.engine.checkpoints.tensor_data import unreadable_reason
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ShapeMismatch:
    key: str
    file_shape: Shape
    model_shape: Shape


@dataclass(frozen=True)
class Reconciliation:
    """How a state_dict lines up with a model's own state_dict (keys in model/file order)."""

    matched: list[str]
    missing: list[str]  # the model has it, the file does not
    unexpected: list[str]  # the file has it, the model does not
    wrong_shape: list[ShapeMismatch]
    suggested_renames: dict[str, str] = field(default_factory=dict)  # file key -> model key
    fits_after_renames: bool = False

    @property
    def fits(self) -> bool:
        """A strict load_state_dict would pass as the file stands."""
        return not (self.missing or self.unexpected or self.wrong_shape)

    @property
    def module_renames(self) -> dict[str, str]:
        """The suggested renames as whole modules (`0` -> `conv1`) where every key agrees."""
        pairs: dict[str, set[str]] = {}
        for source, target in self.suggested_renames.items():
            old, _, leaf = source.rpartition(".")
            new, _, new_leaf = target.rpartition(".")
            pairs.setdefault(old, set()).add(new if leaf == new_leaf else "")
        return {
            old: next(iter(new)) for old, new in pairs.items() if len(new) == 1 and "" not in new
        }


def expected_state_dict(model: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(model.state_dict()) if isinstance(model, nn.Module) else dict(model)


def reconcile(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module | Mapping[str, torch.Tensor]
) -> Reconciliation:
    """Line `state_dict` up with `model`; suggest renames pairing leftovers by order and shape."""
    expected = expected_state_dict(model)
    plain = _compare(state_dict, expected)
    renames = suggest_renames(state_dict, expected, _renamed_positions(model))
    fits_after = bool(renames) and _compare(rename_keys(state_dict, renames), expected).fits
    return Reconciliation(
        plain.matched,
        plain.missing,
        plain.unexpected,
        plain.wrong_shape,
        renames,
        fits_after or plain.fits,
    )


def _compare(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> Reconciliation:
    matched, wrong = [], []
    for key, want in expected.items():
        have = state_dict.get(key)
        if have is None:
            continue
        if tuple(have.shape) == tuple(want.shape):
            matched.append(key)
        else:
            wrong.append(ShapeMismatch(key, tuple(have.shape), tuple(want.shape)))
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    return Reconciliation(matched, missing, unexpected, wrong)


def _renamed_positions(model: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Position -> name for a model's named layers: what `0.weight` is called now."""
    if not isinstance(model, nn.Module):
        return {}
    children = [name for name, _ in model.named_children()]
    return {str(index): name for index, name in enumerate(children) if name != str(index)}


def suggest_renames(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    positions: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Pair file-only keys with model-only keys (file key -> model key).

    0. A layer saved by position, now named (`0.weight` -> `conv1.weight`), same shape;
       `positions` maps the model's positions to its layer names.
    1. Same key up to a leading prefix (`module.fc.weight` -> `fc.weight`), same shape.
    2. Whole modules in order: the n-th unmatched file module goes to the first unmatched model
       module with the same tensor names and shapes (`conv1.*` -> `embed_1.*`).
    3. Single keys in order with the same last name and shape.
    """
    file_shapes = {k: tuple(t.shape) for k, t in state_dict.items() if k not in expected}
    model_shapes = {k: tuple(t.shape) for k, t in expected.items() if k not in state_dict}
    renames: dict[str, str] = {}
    _pair_by_position(file_shapes, model_shapes, renames, positions or {})
    _pair_by_suffix(file_shapes, model_shapes, renames)
    _pair_modules_in_order(file_shapes, model_shapes, renames)
    _pair_keys_in_order(file_shapes, model_shapes, renames)
    return renames


def _pair_by_position(
    file_shapes: dict[str, Shape],
    model_shapes: dict[str, Shape],
    renames: dict[str, str],
    positions: Mapping[str, str],
) -> None:
    for source, shape in list(file_shapes.items()):
        head, _, rest = source.partition(".")
        target = f"{positions[head]}.{rest}" if head in positions and rest else None
        if target is not None and model_shapes.get(target) == shape:
            _pair(source, target, file_shapes, model_shapes, renames)


def _pair_by_suffix(
    file_shapes: dict[str, Shape], model_shapes: dict[str, Shape], renames: dict[str, str]
) -> None:
    for source, shape in list(file_shapes.items()):
        candidates = [
            target
            for target, want in model_shapes.items()
            if want == shape and (source.endswith("." + target) or target.endswith("." + source))
        ]
        if len(candidates) == 1:
            _pair(source, candidates[0], file_shapes, model_shapes, renames)


def _pair_modules_in_order(
    file_shapes: dict[str, Shape], model_shapes: dict[str, Shape], renames: dict[str, str]
) -> None:
    file_modules = _modules(file_shapes)
    model_modules = _modules(model_shapes)
    used: set[str] = set()
    for source_module, signature in file_modules.items():
        target_module = next(
            (m for m, sig in model_modules.items() if m not in used and sig == signature), None
        )
        if target_module is None:
            continue
        used.add(target_module)
        for leaf in signature:
            _pair(
                _join(source_module, leaf),
                _join(target_module, leaf),
                file_shapes,
                model_shapes,
                renames,
            )


def _pair_keys_in_order(
    file_shapes: dict[str, Shape], model_shapes: dict[str, Shape], renames: dict[str, str]
) -> None:
    for source, shape in list(file_shapes.items()):
        leaf = source.rsplit(".", 1)[-1]
        target = next(
            (
                t
                for t, want in model_shapes.items()
                if want == shape and t.rsplit(".", 1)[-1] == leaf
            ),
            None,
        )
        if target is not None:
            _pair(source, target, file_shapes, model_shapes, renames)


def _modules(shapes: Mapping[str, Shape]) -> dict[str, dict[str, Shape]]:
    """Module path -> {leaf name: shape}, modules in order of first key."""
    modules: dict[str, dict[str, Shape]] = {}
    for key, shape in shapes.items():
        module, _, leaf = key.rpartition(".")
        modules.setdefault(module, {})[leaf] = shape
    return modules


def _join(module: str, leaf: str) -> str:
    return f"{module}.{leaf}" if module else leaf


def _pair(
    source: str,
    target: str,
    file_shapes: dict[str, Shape],
    model_shapes: dict[str, Shape],
    renames: dict[str, str],
) -> None:
    renames[source] = target
    del file_shapes[source]
    del model_shapes[target]


def apply_renames(
    state_dict: Mapping[str, torch.Tensor], reconciliation: Reconciliation
) -> dict[str, torch.Tensor]:
    """The state_dict with the suggested renames applied (a new dict)."""
    return rename_keys(state_dict, reconciliation.suggested_renames)


def load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """`model.load_state_dict(state_dict, strict=True)`, failing with a readable CheckpointError."""
    result = reconcile(state_dict, model)
    if not result.fits:
        raise CheckpointError(f"the checkpoint does not fit the model: {describe_misfit(result)}")
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        problems = [
            f"{key!r} is {reason}"
            for key, tensor in state_dict.items()
            if (reason := unreadable_reason(tensor)) is not None
        ]
        detail = "; ".join(problems[:3]) or safe_text(str(exc).strip().splitlines()[0])
        raise CheckpointError(
            f"the checkpoint's keys and shapes fit the model, but its values cannot be copied "
            f"in: {detail}. Re-save those tensors as dense floating-point ones from the source."
        ) from exc


def describe_misfit(result: Reconciliation, limit: int = 5) -> str:
    parts = []
    for label, keys in (("missing", result.missing), ("unexpected", result.unexpected)):
        if keys:
            shown = ", ".join(safe_text(k) for k in keys[:limit]) + (
                " ..." if len(keys) > limit else ""
            )
            parts.append(f"{len(keys)} {label} ({shown})")
    if result.wrong_shape:
        shown = ", ".join(
            f"{safe_text(m.key)} file {list(m.file_shape)} vs model {list(m.model_shape)}"
            for m in result.wrong_shape[:limit]
        )
        parts.append(f"{len(result.wrong_shape)} with the wrong shape ({shown})")
    return "; ".join(parts) or "it fits"
