"""Open checkpoints safely: weights_only + mmap within budgets; unsafe files refused or read apart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from workbench.engine.checkpoints import budget
from workbench.engine.checkpoints.detection import (
    CHECKPOINT_SUFFIXES,
    DAMAGED,
    FORMAT_DESCRIPTIONS,
    FORMAT_LEGACY,
    FORMAT_SAFETENSORS,
    FORMAT_ZIP,
    detect_format,
    shown,
)
from workbench.engine.checkpoints.pickled import (
    UnsafeCheckpointError,
    load_scanned,
    refusal,
    scan_pickled,
)
from workbench.engine.checkpoints.wrappers import find_state_dict, state_dict_candidates
from workbench.engine.errors import CheckpointError
from workbench.engine.safe_text import safe_text

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "FORMAT_LEGACY",
    "FORMAT_SAFETENSORS",
    "FORMAT_ZIP",
    "Checkpoint",
    "UnsafeCheckpointError",
    "detect_format",
    "find_unsafe_globals",
    "natural_key",
    "open_checkpoint",
]

# Metadata keys the trusted child process uses to hand back what it found besides the tensors.
HANDOFF_LOCATION, HANDOFF_LAYOUT, HANDOFF_METADATA, HANDOFF_ORDER = (
    "workbench.location",
    "workbench.layout",
    "workbench.metadata",
    "workbench.key_order",
)


@dataclass(frozen=True)
class Checkpoint:
    """An opened checkpoint: its weights (read-only by convention; edits return new dicts) and
    a JSON-able summary of everything else the file held."""

    path: Path
    format: str  # FORMAT_ZIP | FORMAT_LEGACY | FORMAT_SAFETENSORS
    state_dict: dict[str, torch.Tensor]
    location: str | None = None  # key path of the weights inside the file; None: top level
    layout: str = "plain state_dict"
    metadata: dict[str, Any] = field(default_factory=dict)
    saved_devices: dict[str, str] = field(default_factory=dict)  # key -> device when saved
    loaded_in_subprocess: bool = False

    @property
    def format_description(self) -> str:
        return FORMAT_DESCRIPTIONS[self.format]


def open_checkpoint(path: str | Path, *, trust_file: str | Path | None = None) -> Checkpoint:
    """Open `path` without running any code from it.

    Pickle-based files load with `torch.load(weights_only=True, map_location="cpu")`, zip
    archives memory-mapped so that a multi-GB file opens without being read; `.safetensors`
    opens lazily. A file that needs unsafe globals raises UnsafeCheckpointError, unless
    `trust_file` names this very file: then a separate Python process unpickles it and hands
    back plain tensors, so this process never runs the file's code.
    """
    path = Path(path)
    kind = detect_format(path)
    if kind == FORMAT_SAFETENSORS:
        return _open_safetensors(path)
    scanned = scan_pickled(path, kind)
    if scanned.refused:
        if _is_trusted(path, trust_file):
            return _open_in_subprocess(path, kind)
        raise refusal(scanned, trust_file)
    loaded, locations = load_scanned(scanned, mmap=True)
    found = find_state_dict(loaded)
    if found is None:
        raise _no_tensors(path, loaded)
    budget.check_tensors(path, found.state_dict.items(), scanned.data_bytes)
    saved_devices = {key: _saved_device(t, locations) for key, t in found.state_dict.items()}
    return Checkpoint(
        path, kind, found.state_dict, found.location, found.layout, found.metadata, saved_devices
    )


def find_unsafe_globals(path: str | Path, kind: str | None = None) -> list[str]:
    """What a pickled checkpoint imports beyond what weights_only allows, and the allowed
    constructors that could allocate without limit: both refused unless the file is trusted."""
    path = Path(path)
    kind = kind or detect_format(path)
    if kind == FORMAT_SAFETENSORS:
        return []
    return list(scan_pickled(path, kind).refused)


def _saved_device(tensor: torch.Tensor, locations: dict[int, str]) -> str:
    if tensor.device.type == "meta":
        return "meta"
    if tensor.layout != torch.strided:
        return "cpu"
    try:
        return locations.get(tensor.untyped_storage().data_ptr(), "cpu")
    except (RuntimeError, NotImplementedError):
        return "cpu"


def _is_trusted(path: Path, trust_file: str | Path | None) -> bool:
    return trust_file is not None and Path(trust_file).resolve() == path.resolve()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _no_tensors(path: Path, loaded: object) -> CheckpointError:
    candidates = state_dict_candidates(loaded) if isinstance(loaded, dict) else []
    if len(candidates) > 1:
        listed = ", ".join(
            f"'{safe_text(where)}' ({len(weights)} tensors)" for where, weights in candidates[:6]
        )
        return CheckpointError(
            f"{shown(path)}: holds several sets of weights: {listed}; which one is the model's "
            "cannot be told. Save the one you want on its own, e.g. "
            "torch.save(torch.load(path, weights_only=True)[KEY], 'weights.pth')."
        )
    return CheckpointError(
        f"{shown(path)}: holds a {safe_text(type(loaded).__name__)} with no tensors in it, so "
        "there are no weights to show. Expected a state_dict (a dict of tensors) or a dict "
        "holding one (under 'state_dict', 'model', 'model_state' or any other key)."
    )


def _open_safetensors(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            names = handle.keys()  # a safe_open handle is not itself iterable
            tensors = {key: handle.get_tensor(key) for key in names}
            header = handle.metadata() or {}
    except Exception as exc:  # whatever safetensors trips on is the file's fault
        raise CheckpointError(
            f"{shown(path)}: the safetensors file is damaged ({safe_text(_first_line(exc))}). "
            f"{DAMAGED}"
        ) from exc
    if not tensors:
        raise CheckpointError(f"{shown(path)}: the safetensors file holds no tensors.")
    # safetensors keeps no key order; numbers in natural order put layer10 after layer9.
    state_dict = {key: tensors[key] for key in sorted(tensors, key=natural_key)}
    shown_header = {safe_text(key): safe_text(value) for key, value in header.items()}
    metadata: dict[str, Any] = {"safetensors_metadata": shown_header} if header else {}
    return Checkpoint(
        path,
        FORMAT_SAFETENSORS,
        state_dict,
        None,
        "safetensors",
        metadata,
        dict.fromkeys(state_dict, "cpu"),
    )


def _open_in_subprocess(path: Path, kind: str) -> Checkpoint:
    """Unpickle a trusted file in a child process; only plain tensors come back."""
    with tempfile.TemporaryDirectory(prefix="workbench-trusted-") as folder:
        handoff = Path(folder) / "weights.safetensors"
        command = [
            sys.executable,
            "-m",
            "workbench.engine.checkpoints.trusted_loader",
            str(path.resolve()),
            str(handoff),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, env=_child_environment(), check=False
        )
        if result.returncode != 0 or not handoff.exists():
            detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
            raise CheckpointError(
                f"{shown(path)}: loading the trusted file in a separate process failed: "
                f"{safe_text(detail)}"
            )
        with safe_open(str(handoff), framework="pt") as handle:
            header = handle.metadata() or {}
        # Copies, so the temporary hand-off file can go away (mmap'd tensors would pin it).
        tensors = load_file(handoff)
        order = json.loads(header.get(HANDOFF_ORDER, "[]")) or sorted(tensors, key=natural_key)
        state_dict = {key: tensors.pop(key).clone() for key in order}
    return Checkpoint(
        path,
        kind,
        state_dict,
        header.get(HANDOFF_LOCATION) or None,
        header.get(HANDOFF_LAYOUT, "plain state_dict"),
        json.loads(header.get(HANDOFF_METADATA, "{}")),
        dict.fromkeys(state_dict, "cpu"),
        loaded_in_subprocess=True,
    )


def _child_environment() -> dict[str, str]:
    """The child must import this same workbench package, installed or not."""
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def natural_key(key: str) -> list[tuple[int, int | str]]:
    """Sort key that orders `layer2` before `layer10` (ASCII digits only: `²` is text)."""
    parts = re.split(r"([0-9]+)", key)
    return [(0, int(part)) if index % 2 else (1, part) for index, part in enumerate(parts)]
