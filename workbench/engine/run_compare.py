"""Compare two run folders (a run and its rerun): final metrics and whether the weights match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from workbench.engine.errors import CheckpointError

METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def free_folder(run_dir: Path) -> Path:
    """DIR-rerun, or DIR-rerun-2, -3, ... the first that does not exist yet."""
    candidate = run_dir.with_name(f"{run_dir.name}-rerun")
    number = 2
    while candidate.exists():
        candidate = run_dir.with_name(f"{run_dir.name}-rerun-{number}")
        number += 1
    return candidate


def _summary(folder: Path) -> dict[str, Any]:
    try:
        value = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _weights(folder: Path) -> dict[str, torch.Tensor] | None:
    path = folder / "model.pth"
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        raise CheckpointError(f"{path}: cannot be read safely ({exc})") from None
    return state if isinstance(state, dict) else None


def weights_difference(first: Path, second: Path) -> str:
    """'bit-identical', or the largest difference and where it is."""
    a, b = _weights(first), _weights(second)
    if a is None or b is None:
        return "not compared (a model.pth is missing)"
    if a.keys() != b.keys():
        return "different keys"
    largest, where = 0.0, ""
    for key in a:
        if a[key].shape != b[key].shape:
            return f"different shapes at {key}"
        if torch.equal(a[key], b[key]):
            continue
        gap = float((a[key].double() - b[key].double()).abs().max())
        if gap >= largest:
            largest, where = gap, key
    return "bit-identical" if not where else f"differ: largest difference {largest:.3g} at {where}"


def compare_runs(original: Path, rerun: Path) -> list[str]:
    """Lines comparing the final metrics and weights of a run and its rerun."""
    before, after = _summary(original), _summary(rerun)
    lines = ["Compared with the original run:"]
    for key in METRICS:
        old, new = before.get(key), after.get(key)
        if old is None and new is None:
            continue
        same = "same" if old == new else "differs"
        lines.append(f"  {key}: {old} then {new} ({same})")
    lines.append(f"  weights: {weights_difference(original, rerun)}")
    return lines
