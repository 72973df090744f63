"""Checkpoint surgery as pure functions: each returns a NEW state_dict, so undo keeps the old one.

Tensors that an edit does not touch are shared between the old and new dict (never modified in
place), so an edit costs memory only for what it changes.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from workbench.engine.checkpoints.tensor_data import cast_view
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

StateDict = dict[str, torch.Tensor]

# Prefixes added by wrappers around a model: DistributedDataParallel / DataParallel,
# torch.compile, and Lightning-style `self.model = ...` holders.
MODULE_PREFIX, COMPILE_PREFIX, MODEL_PREFIX = "module.", "_orig_mod.", "model."
WRAPPER_PREFIXES = (MODULE_PREFIX, COMPILE_PREFIX, MODEL_PREFIX)
CAST_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


# --- renaming -------------------------------------------------------------------------------


def rename_keys(state_dict: Mapping[str, torch.Tensor], mapping: Mapping[str, str]) -> StateDict:
    """Rename exactly the keys in `mapping` (old -> new), keeping file order; refuse collisions."""
    unknown = [old for old in mapping if old not in state_dict]
    if unknown:
        raise CheckpointError(f"cannot rename: no such key {_listing(unknown)}.")
    changes = [(old, new) for old, new in mapping.items() if old != new]
    _refuse_collisions(state_dict, changes)
    return {mapping.get(key, key): tensor for key, tensor in state_dict.items()}


def preview_substring_rename(
    state_dict: Mapping[str, torch.Tensor], old: str, new: str
) -> list[tuple[str, str]]:
    """(old key, new key) for every key containing `old`, with every occurrence replaced."""
    if not old:
        raise CheckpointError("rename: the text to replace is empty; write OLD=NEW.")
    changes = [(key, key.replace(old, new)) for key in state_dict if old in key]
    if not changes:
        raise CheckpointError(f"rename: no key contains {old!r}.{_close_keys(old, state_dict)}")
    _refuse_collisions(state_dict, changes)
    return changes


def rename_substring(state_dict: Mapping[str, torch.Tensor], old: str, new: str) -> StateDict:
    """Replace `old` by `new` in every key (`conv1` -> `embed_1`; note: also hits `conv10`)."""
    return rename_keys(state_dict, dict(preview_substring_rename(state_dict, old, new)))


def rename_module(
    state_dict: Mapping[str, torch.Tensor], old_path: str, new_path: str
) -> StateDict:
    """Rename one module by its dotted path: `features.0` -> `stem` renames only that subtree."""
    prefix = old_path.rstrip(".") + "."
    mapping = {
        key: new_path.rstrip(".") + "." + key[len(prefix) :]
        for key in state_dict
        if key.startswith(prefix)
    }
    if not mapping:
        raise CheckpointError(f"rename: no module {old_path!r}.{_close_keys(old_path, state_dict)}")
    return rename_keys(state_dict, mapping)


def preview_regex_rename(
    state_dict: Mapping[str, torch.Tensor], pattern: str, replacement: str
) -> list[tuple[str, str]]:
    """(old key, new key) for each key `re.sub(pattern, replacement, key)` changes.

    Raises CheckpointError naming the keys when two keys would end up equal or a new name is
    already taken by a key that stays, and when the pattern is invalid or matches nothing.
    """
    try:
        compiled = re.compile(pattern)
        changes = [(key, compiled.sub(replacement, key)) for key in state_dict]
    except (re.error, IndexError) as exc:
        raise CheckpointError(f"regex rename {pattern!r} -> {replacement!r}: {exc}.") from exc
    changes = [(old, new) for old, new in changes if old != new]
    if not changes:
        raise CheckpointError(
            f"regex rename: {pattern!r} changes no key.{_close_keys(pattern, state_dict)}"
        )
    _refuse_collisions(state_dict, changes)
    return changes


def rename_regex(
    state_dict: Mapping[str, torch.Tensor], pattern: str, replacement: str
) -> StateDict:
    return rename_keys(state_dict, dict(preview_regex_rename(state_dict, pattern, replacement)))


def _refuse_collisions(
    state_dict: Mapping[str, torch.Tensor], changes: Iterable[tuple[str, str]]
) -> None:
    changes = list(changes)
    renamed = {old for old, _ in changes}
    final_names = [new for _, new in changes] + [k for k in state_dict if k not in renamed]
    counts = Counter(final_names)
    for _, new in changes:
        if counts[new] < 2:
            continue
        sources = [old for old, target in changes if target == new]
        staying = [new] if new in state_dict and new not in renamed else []
        if staying:
            raise CheckpointError(
                f"rename refused: {_listing(sources)} would become {new!r}, which already exists "
                "and is not renamed. Delete that key first or choose another name."
            )
        raise CheckpointError(
            f"rename refused: {_listing(sources)} would all become {new!r}. "
            "Make the pattern keep the part that tells them apart."
        )
    if any(not new for _, new in changes):
        emptied = [old for old, new in changes if not new]
        raise CheckpointError(f"rename refused: {_listing(emptied)} would get an empty key.")


# --- prefixes -------------------------------------------------------------------------------


def strip_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Remove `prefix` from the start of every key that has it."""
    if not prefix:
        raise CheckpointError("strip prefix: the prefix is empty.")
    mapping = {key: key[len(prefix) :] for key in state_dict if key.startswith(prefix)}
    if not mapping:
        raise CheckpointError(
            f"strip prefix: no key starts with {prefix!r} "
            f"(first key: {next(iter(state_dict), '')!r})."
        )
    return rename_keys(state_dict, mapping)


def add_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Put `prefix` in front of every key (`model.` to load into a wrapper's attribute)."""
    if not prefix:
        raise CheckpointError("add prefix: the prefix is empty.")
    return {prefix + key: tensor for key, tensor in state_dict.items()}


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Undo DistributedDataParallel / DataParallel's `module.`."""
    return strip_prefix(state_dict, MODULE_PREFIX)


def strip_compile_prefix(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Undo torch.compile's `_orig_mod.`."""
    return strip_prefix(state_dict, COMPILE_PREFIX)


def strip_model_prefix(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Undo a holder's `model.` (Lightning modules keeping the network in `self.model`)."""
    return strip_prefix(state_dict, MODEL_PREFIX)


def detect_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Wrapper prefixes every key carries, outermost first (e.g. ['_orig_mod.', 'module.'])."""
    keys = list(state_dict)
    found: list[str] = []
    while keys:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in keys)), None)
        if prefix is None or any(len(k) == len(prefix) for k in keys):
            break
        found.append(prefix)
        keys = [k[len(prefix) :] for k in keys]
    return found


def strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """The one-click fix: strip every prefix detect_wrapper_prefixes finds (none: a copy)."""
    result = dict(state_dict)
    for prefix in detect_wrapper_prefixes(state_dict):
        result = strip_prefix(result, prefix)
    return result


# --- deleting and casting -------------------------------------------------------------------


def keys_selected(state_dict: Mapping[str, torch.Tensor], selector: str) -> list[str]:
    """A key itself, or every key below a module path (`fc2` selects `fc2.weight`, `fc2.bias`)."""
    prefix = selector.rstrip(".") + "."
    return [key for key in state_dict if key == selector or key.startswith(prefix)]


def delete_keys(state_dict: Mapping[str, torch.Tensor], selectors: Iterable[str]) -> StateDict:
    """Drop keys (or whole modules by path); refuse a selector that matches nothing."""
    doomed: set[str] = set()
    for selector in selectors:
        selected = keys_selected(state_dict, selector)
        if not selected:
            raise CheckpointError(
                f"delete: no key or module {selector!r}.{_close_keys(selector, state_dict)}"
            )
        doomed.update(selected)
    return {key: tensor for key, tensor in state_dict.items() if key not in doomed}


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        if name not in CAST_DTYPES.values():
            raise CheckpointError(f"cast: {name} is not allowed; use float32, float16 or bfloat16.")
        return name
    dtype = CAST_DTYPES.get(name.lower().removeprefix("torch."))
    if dtype is None:
        raise CheckpointError(f"cast: unknown dtype {name!r}; use float32, float16 or bfloat16.")
    return dtype


def cast_floating(state_dict: Mapping[str, torch.Tensor], dtype: str | torch.dtype) -> StateDict:
    """Cast floating-point tensors to `dtype`; integer/bool buffers (num_batches_tracked) stay.

    Expanded views are cast through their storage (they stay views). A floating dtype torch
    cannot convert (float4_e2m1fn_x2) raises CheckpointError naming the key.
    """
    target = parse_dtype(dtype)
    return {
        key: _cast(key, tensor, target) if tensor.is_floating_point() else tensor
        for key, tensor in state_dict.items()
    }


def _cast(key: str, tensor: torch.Tensor, target: torch.dtype) -> torch.Tensor:
    try:
        return cast_view(tensor, target)
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        name = str(tensor.dtype).removeprefix("torch.")
        raise CheckpointError(
            f"cast: {key!r} is {name}, which PyTorch cannot convert to "
            f"{str(target).removeprefix('torch.')} ({safe_text(str(exc).splitlines()[0])}). "
            f"Drop it first (--drop {safe_text(key)}) or leave out --cast."
        ) from exc


def keys_cast_by(state_dict: Mapping[str, torch.Tensor], dtype: str | torch.dtype) -> list[str]:
    target = parse_dtype(dtype)
    return [k for k, t in state_dict.items() if t.is_floating_point() and t.dtype != target]


# --- an edit as a value (command line order, GUI history) -----------------------------------

EDIT_KINDS = ("rename", "regex", "strip_prefix", "add_prefix", "strip_wrappers", "drop", "cast")


@dataclass(frozen=True)
class Edit:
    """One edit as the user wrote it: kind plus argument (`OLD=NEW` for the two renames)."""

    kind: str
    argument: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EDIT_KINDS:
            raise CheckpointError(f"unknown edit {self.kind!r}; one of {', '.join(EDIT_KINDS)}.")
        if self.kind in ("rename", "regex") and "=" not in self.argument:
            flag = "--rename OLD=NEW" if self.kind == "rename" else "--regex PATTERN=REPLACEMENT"
            raise CheckpointError(f"{self.kind} {self.argument!r}: write it as {flag}.")

    @property
    def pair(self) -> tuple[str, str]:
        """OLD, NEW split at the last '=' (keys never hold '=', a regex lookahead may)."""
        old, _, new = self.argument.rpartition("=")
        return old, new

    def describe(self) -> str:
        if self.kind in ("rename", "regex"):
            old, new = self.pair
            return f"{self.kind} {old!r} -> {new!r}"
        if self.kind == "strip_wrappers":
            return "strip wrapper prefixes"
        return f"{self.kind.replace('_', ' ')} {self.argument!r}"

    def apply(self, state_dict: Mapping[str, torch.Tensor]) -> EditOutcome:
        before = dict(state_dict)
        renamed: list[tuple[str, str]] = []
        dropped: list[str] = []
        cast: list[str] = []
        if self.kind == "rename":
            renamed = preview_substring_rename(before, *self.pair)
            after = rename_keys(before, dict(renamed))
        elif self.kind == "regex":
            renamed = preview_regex_rename(before, *self.pair)
            after = rename_keys(before, dict(renamed))
        elif self.kind == "strip_prefix":
            after = strip_prefix(before, self.argument)
            renamed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
        elif self.kind == "strip_wrappers":
            found = detect_wrapper_prefixes(before)
            if not found:
                first = next(iter(before), "")
                raise CheckpointError(
                    f"strip wrappers: no key carries {', '.join(WRAPPER_PREFIXES)} "
                    f"(first key: {first!r}); nothing to strip."
                )
            after = strip_wrapper_prefixes(before)
            renamed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
        elif self.kind == "add_prefix":
            after = add_prefix(before, self.argument)
            renamed = list(zip(before, after, strict=True))
        elif self.kind == "drop":
            after = delete_keys(before, [self.argument])
            dropped = [key for key in before if key not in after]
        else:
            cast = keys_cast_by(before, self.argument)
            after = cast_floating(before, self.argument)
        return EditOutcome(self, after, renamed, dropped, cast)


@dataclass(frozen=True)
class EditOutcome:
    edit: Edit
    state_dict: StateDict
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    cast: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.edit.kind == "drop":
            return f"{self.edit.describe()}: {len(self.dropped)} key(s) deleted"
        if self.edit.kind == "cast":
            return f"{self.edit.describe()}: {len(self.cast)} tensor(s) cast"
        return f"{self.edit.describe()}: {len(self.renamed)} key(s) renamed"


def apply_edits(
    state_dict: Mapping[str, torch.Tensor], edits: Iterable[Edit]
) -> tuple[StateDict, list[EditOutcome]]:
    """Apply edits in order; the first one that fails raises and nothing is returned."""
    current = dict(state_dict)
    outcomes = []
    for edit in edits:
        outcome = edit.apply(current)
        outcomes.append(outcome)
        current = outcome.state_dict
    return current, outcomes


# --- messages -------------------------------------------------------------------------------


def _listing(keys: Iterable[str], limit: int = 6) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _close_keys(text: str, state_dict: Mapping[str, torch.Tensor]) -> str:
    names = set(state_dict)
    for key in state_dict:
        parts = key.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts)))
    close = difflib.get_close_matches(text, sorted(names), n=3, cutoff=0.6)
    return f" Did you mean {_listing(close)}?" if close else ""
