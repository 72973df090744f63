"""The files a run leaves behind: model.pth, checkpoint.pt, metrics.csv, summary.json, experiment.toml."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.engine.atomic import atomic_write, atomic_write_text
from workbench.engine.errors import CheckpointError
from workbench.engine.experiment import Experiment, dump_experiment

CHECKPOINT_FORMAT = "workbench-checkpoint/1"
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "samples_per_second",
    "elapsed_seconds",
    "skipped_steps",
    "train_perplexity",
    "val_perplexity",
    "val_bits_per_char",
    "tokens_per_second",
)


def save_tensors(obj: Any, path: Path) -> None:
    """torch.save, atomically."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {key: "" if row.get(key) is None else row.get(key) for key in METRIC_COLUMNS}
        )
    atomic_write_text(path, buffer.getvalue())


def write_json(path: Path, values: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def write_experiment_copy(path: Path, experiment: Experiment) -> None:
    atomic_write_text(path, dump_experiment(experiment))


def capture_rng_state() -> dict[str, Any]:
    """RNG states of torch, CUDA, numpy and Python, in a form `weights_only` loading accepts."""
    kind, keys, position, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys).astype(np.int64)),
            position,
            has_gauss,
            cached,
        ],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_run_checkpoint(path: str | Path) -> dict[str, Any]:
    """Open a checkpoint.pt for resuming, safely (weights_only) and with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such checkpoint; pass the checkpoint.pt of an earlier run"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: cannot be resumed from: it is not a safe Torch Workbench checkpoint "
            f"({first_line})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a Torch Workbench checkpoint.pt (no '{CHECKPOINT_FORMAT}' marker); "
            "to load plain weights, open it in the checkpoint editor instead"
        )
    return state
