"""Plain-text and JSON reports of inspections, diffs and reconciliations (CLI and copy-paste)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch

from workbench.engine.checkpoints.budget import format_bytes as format_bytes
from workbench.engine.checkpoints.detection import shown
from workbench.engine.checkpoints.diffing import CheckpointDiff
from workbench.engine.checkpoints.inspection import (
    ModuleNode,
    TensorInfo,
    TensorStats,
    build_module_tree,
    tensor_infos,
    tensor_stats,
)
from workbench.engine.checkpoints.loading import Checkpoint
from workbench.engine.checkpoints.reconcile import Reconciliation
from workbench.engine.checkpoints.tensor_data import unreadable_reason
from workbench.engine.safe_text import safe_text

_LIST_LIMIT = 20


def format_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def format_number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns padded to the widest cell; columns listed in `right` are right-aligned."""
    rows = [[safe_text(cell) for cell in row] for row in rows]  # keys come from files
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = []
    for row in [headers, *rows]:
        cells = [
            str(cell).rjust(width) if index in right else str(cell).ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


# --- inspect --------------------------------------------------------------------------------


def inspection_text(checkpoint: Checkpoint, with_stats: bool = False) -> str:
    infos = tensor_infos(checkpoint.state_dict, checkpoint.saved_devices)
    tree = build_module_tree(checkpoint.state_dict, checkpoint.saved_devices)
    sections = [
        _header(checkpoint, tree),
        _tensor_table(checkpoint, infos, with_stats),
        "Modules\n" + _module_table(tree),
    ]
    if checkpoint.metadata:
        sections.append("Metadata\n" + metadata_text(checkpoint.metadata))
    return "\n\n".join(sections)


def _header(checkpoint: Checkpoint, tree: ModuleNode) -> str:
    where = f" (weights under '{checkpoint.location}')" if checkpoint.location else ""
    lines = [
        f"File:    {shown(checkpoint.path)}  ({format_bytes(checkpoint.path.stat().st_size)})",
        f"Format:  {checkpoint.format_description}",
        f"Layout:  {safe_text(checkpoint.layout + where)}",
        f"Tensors: {len(checkpoint.state_dict)} keys, {tree.parameters:,} parameters"
        + (f" ({tree.numel:,} values with buffers)" if tree.numel != tree.parameters else "")
        + f", {format_bytes(tree.nbytes)}",
    ]
    if checkpoint.loaded_in_subprocess:
        lines.append("Loaded:  in a separate process (trusted file; only its tensors were kept)")
    return "\n".join(lines)


def _tensor_table(checkpoint: Checkpoint, infos: list[TensorInfo], with_stats: bool) -> str:
    show_saved = any(info.saved_device != "cpu" for info in infos)
    headers = ["key", "shape", "dtype", "numel", "size"]
    headers += ["saved on"] if show_saved else []
    stats_headers = ["min", "max", "mean", "std", "zeros", "nan", "inf"]
    headers += stats_headers if with_stats else []
    rows, skipped = [], []
    for info in infos:
        row = [info.key, format_shape(info.shape), info.dtype, f"{info.numel:,}"]
        row += [format_bytes(info.nbytes)] + ([info.saved_device] if show_saved else [])
        if with_stats:
            stats = stats_or_reason(info.key, checkpoint.state_dict[info.key])
            if isinstance(stats, str):
                skipped.append(f"  {safe_text(info.key)}: {stats}")
            row += _stats_cells(stats)
        rows.append(row)
    numeric = {3, 4} | (set(range(len(headers) - 7, len(headers))) if with_stats else set())
    text = table(headers, rows, right=sorted(numeric))
    if skipped:
        text += "\n\nNo statistics (-) for:\n" + "\n".join(skipped)
    return text


def stats_or_reason(key: str, tensor: torch.Tensor) -> TensorStats | str:
    """tensor_stats, or the reason there are none (a sparse, meta or bits8 tensor)."""
    reason = unreadable_reason(tensor)
    return tensor_stats(tensor, key) if reason is None else f"it is {reason}"


def _stats_cells(stats: TensorStats | str) -> list[str]:
    if isinstance(stats, str):
        return ["-"] * 7
    return [
        format_number(stats.min),
        format_number(stats.max),
        format_number(stats.mean),
        format_number(stats.std),
        f"{stats.zero_fraction:.1%}",
        str(stats.nan_count),
        str(stats.inf_count),
    ]


def _module_table(tree: ModuleNode) -> str:
    rows = []
    for node in tree.walk():
        if node is tree:
            continue
        depth = node.path.count(".")
        rows.append(
            [
                "  " * depth + node.name,
                node.layer_type or "",
                f"{node.parameters:,}",
                format_bytes(node.nbytes),
            ]
        )
    rows.append(["(total)", "", f"{tree.parameters:,}", format_bytes(tree.nbytes)])
    return table(["module", "guessed type", "params", "size"], rows, right=[2, 3])


def metadata_text(metadata: Mapping[str, Any], indent: int = 2) -> str:
    lines = []
    for key, value in metadata.items():
        pad = " " * indent
        if isinstance(value, Mapping) and value:
            lines.append(f"{pad}{safe_text(key)}:")
            lines.append(metadata_text(value, indent + 2))
        elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            lines.append(f"{pad}{safe_text(key)}:")
            lines.append(metadata_text({f"[{i}]": v for i, v in enumerate(value)}, indent + 2))
        else:
            text = json.dumps(value, default=str)
            text = text if len(text) <= 100 else text[:97] + "..."
            lines.append(f"{pad}{safe_text(key)}: {safe_text(text)}")
    return "\n".join(lines)


def inspection_json(checkpoint: Checkpoint, with_stats: bool = False) -> dict[str, Any]:
    """Everything `inspect --json` prints: a stable, script-friendly picture of the file."""
    tree = build_module_tree(checkpoint.state_dict, checkpoint.saved_devices)
    tensors = []
    for info in tensor_infos(checkpoint.state_dict, checkpoint.saved_devices):
        entry: dict[str, Any] = {
            "key": info.key,
            "shape": list(info.shape),
            "dtype": info.dtype,
            "numel": info.numel,
            "bytes": info.nbytes,
            "device": info.device,
            "saved_device": info.saved_device,
        }
        if with_stats:
            stats = stats_or_reason(info.key, checkpoint.state_dict[info.key])
            if isinstance(stats, str):
                entry["stats"], entry["stats_unavailable"] = None, stats
            else:
                entry["stats"] = {k: _json_number(v) for k, v in asdict(stats).items()}
        tensors.append(entry)
    modules = [
        {
            "path": node.path,
            "type": node.layer_type,
            "parameters": node.parameters,
            "numel": node.numel,
            "bytes": node.nbytes,
        }
        for node in tree.walk()
        if node is not tree
    ]
    return {
        "file": str(checkpoint.path),
        "format": checkpoint.format,
        "layout": checkpoint.layout,
        "state_dict_location": checkpoint.location,
        "loaded_in_subprocess": checkpoint.loaded_in_subprocess,
        "totals": {
            "keys": len(tensors),
            "parameters": tree.parameters,
            "numel": tree.numel,
            "bytes": tree.nbytes,
        },
        "tensors": tensors,
        "modules": modules,
        "metadata": checkpoint.metadata,
    }


def _json_number(value: float | int) -> float | int | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


# --- diff -----------------------------------------------------------------------------------


def diff_text(name_a: str, name_b: str, diff: CheckpointDiff) -> str:
    sections = [f"A: {shown(name_a)}\nB: {shown(name_b)}"]
    if diff.identical:
        same = len(diff.changes)
        sections.append(f"Identical: the same {same} keys with bit-identical tensors.")
        return "\n\n".join(sections)
    if diff.only_in_a:
        sections.append(_key_list(f"Only in A ({len(diff.only_in_a)})", diff.only_in_a))
    if diff.only_in_b:
        sections.append(_key_list(f"Only in B ({len(diff.only_in_b)})", diff.only_in_b))
    if diff.shape_changed:
        rows = [[k, format_shape(a), format_shape(b)] for k, a, b in diff.shape_changed]
        sections.append(f"Shape changed ({len(rows)})\n" + table(["key", "A", "B"], rows))
    if diff.dtype_changed:
        rows = [[k, a, b] for k, a, b in diff.dtype_changed]
        sections.append(f"Dtype changed ({len(rows)})\n" + table(["key", "A", "B"], rows))
    changed = [change for change in diff.changed if not change.note]
    if changed:
        rows = [
            [c.key, format_number(c.max_abs_diff), format_number(c.relative_norm)] for c in changed
        ]
        title = f"Values changed ({len(changed)} of {len(diff.changes)} shared tensors)"
        sections.append(title + "\n" + table(["key", "max |a-b|", "||a-b||/||a||"], rows, [1, 2]))
    notes = [f"  {safe_text(c.key)}: {c.note}" for c in diff.changes if c.note]
    if notes:
        sections.append(f"Not compared ({len(notes)})\n" + "\n".join(notes))
    same = len(diff.changes) - len(diff.changed)
    sections.append(f"Identical: {same} of {len(diff.changes)} shared tensors.")
    return "\n\n".join(sections)


def diff_json(name_a: str, name_b: str, diff: CheckpointDiff) -> dict[str, Any]:
    return {
        "a": name_a,
        "b": name_b,
        "identical": diff.identical,
        "only_in_a": diff.only_in_a,
        "only_in_b": diff.only_in_b,
        "shape_changed": [{"key": k, "a": list(a), "b": list(b)} for k, a, b in diff.shape_changed],
        "dtype_changed": [{"key": k, "a": a, "b": b} for k, a, b in diff.dtype_changed],
        "changes": [
            {
                "key": c.key,
                "identical": c.identical,
                "max_abs_diff": _json_number(c.max_abs_diff),
                "relative_norm": _json_number(c.relative_norm),
                **({"note": c.note} if c.note else {}),
            }
            for c in diff.changes
        ],
    }


def _key_list(title: str, keys: Sequence[str]) -> str:
    listed = [f"  {safe_text(k)}" for k in keys[:_LIST_LIMIT]]
    if len(keys) > _LIST_LIMIT:
        listed.append(f"  ... {len(keys) - _LIST_LIMIT} more")
    return title + "\n" + "\n".join(listed)


# --- reconcile ------------------------------------------------------------------------------


def reconciliation_text(
    result: Reconciliation,
    file_state: Mapping[str, torch.Tensor],
    model_state: Mapping[str, torch.Tensor],
) -> str:
    def shaped(keys: Sequence[str], source: Mapping[str, torch.Tensor]) -> list[str]:
        return [f"{k} {format_shape(tuple(source[k].shape))}" for k in keys]

    sections = [f"Matched: {len(result.matched)} of {len(model_state)} model keys"]
    if result.missing:
        title = f"Missing from the file ({len(result.missing)})"
        sections.append(_key_list(title, shaped(result.missing, model_state)))
    if result.unexpected:
        title = f"Unexpected in the file ({len(result.unexpected)})"
        sections.append(_key_list(title, shaped(result.unexpected, file_state)))
    if result.wrong_shape:
        rows = [
            [m.key, format_shape(m.file_shape), format_shape(m.model_shape)]
            for m in result.wrong_shape
        ]
        title = f"Wrong shape ({len(rows)})"
        sections.append(title + "\n" + table(["key", "file", "model"], rows))
    if result.suggested_renames:
        rows = [[old, "->", new] for old, new in result.suggested_renames.items()]
        sections.append(f"Suggested renames ({len(rows)})\n" + table(["file", "", "model"], rows))
    if result.fits:
        sections.append("The checkpoint fits the model: a strict load_state_dict passes.")
    elif result.fits_after_renames:
        sections.append("With the suggested renames the checkpoint fits the model (strict load).")
    else:
        sections.append("The checkpoint does not fit the model, even with the suggested renames.")
    return "\n\n".join(sections)
