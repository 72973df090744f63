"""The files a run leaves behind: model.pth, checkpoint.pt, metrics.csv, summary.json, experiment.toml, run.json."""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import json
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.engine.atomic import atomic_write, atomic_write_text
from workbench.engine.checkpoints.pickled import read_weights_only
from workbench.engine.errors import CheckpointError, OutputError
from workbench.engine.experiment import Experiment, dump_experiment

CHECKPOINT_FORMAT = "workbench-checkpoint/1"
RUN_FILES = (
    "model.pth",
    "checkpoint.pt",
    "metrics.csv",
    "summary.json",
    "experiment.toml",
    "run.json",
)
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
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


# --------------------------------------------------------------------------- the run folder


def prepare_run_folder(out: Path) -> list[Path]:
    """Before training: make sure `out` takes the run's files; clear a killed save's temp files.

    Raises an OutputError naming the folder when it is a file, under a file, not writable, or
    holds a folder where a run file goes. Returns the temp files it removed.
    """
    missing = [out, *out.parents]
    missing = missing[: next(i for i, path in enumerate(missing) if path.exists())]
    existing = out.parents[len(missing) - 1] if missing else out
    if not existing.is_dir():
        where = "is a file" if existing == out else f"is under {existing}, which is a file"
        raise OutputError(f"{out}: {where}; give --out a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".workbench-probe-", suffix=".tmp", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot write in this folder ({exc.strerror or exc}); choose a folder you "
            "can write to"
        ) from None
    finally:  # the folders the probe made go again: the first save makes them for real
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
    for name in RUN_FILES:
        if (out / name).is_dir():
            raise OutputError(
                f"{out / name}: is a folder, where the run writes its {name}; remove it or "
                "choose another folder"
            )
    return remove_stale_temp_files(out)


def remove_stale_temp_files(out: Path) -> list[Path]:
    """Delete the `.model.pth.*.tmp`-style files an interrupted save left in a run folder."""
    stale = [temp for name in RUN_FILES for temp in sorted(out.glob(f".{name}.*.tmp"))]
    for temp in stale:
        temp.unlink(missing_ok=True)
    return stale


def earlier_run_files(out: Path) -> list[str]:
    """The run files already in `out` (another run's, unless this one resumes it)."""
    return [name for name in RUN_FILES if (out / name).is_file()]


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed write into an OutputError that names the file and what to do."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        advice = (
            "free some disk space, or choose a folder on another disk"
            if exc.errno in _FULL
            else "check the folder's permissions, or choose another folder"
        )
        raise OutputError(f"{path}: cannot write it ({reason}); {advice}") from None


# --------------------------------------------------------------------------- the files


def save_tensors(obj: Any, path: Path) -> None:
    """torch.save, atomically."""
    with _writing(path):
        atomic_write(path, lambda handle: torch.save(obj, handle))


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {key: "" if row.get(key) is None else row.get(key) for key in METRIC_COLUMNS}
        )
    with _writing(path):
        atomic_write_text(path, buffer.getvalue())


def write_json(path: Path, values: dict[str, Any]) -> None:
    with _writing(path):
        atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def write_experiment_copy(path: Path, experiment: Experiment) -> None:
    with _writing(path):
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
    """Open a checkpoint.pt for resuming through the checkpoint reader: structure and size
    budgets checked first, weights-only, every failure a CheckpointError naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: no such checkpoint; pass the checkpoint.pt of an earlier run"
        )
    state = read_weights_only(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a Torch Workbench checkpoint.pt (no '{CHECKPOINT_FORMAT}' marker); "
            "to load plain weights, open it in the checkpoint editor instead"
        )
    return state


def claim_run_folder(runs_dir: Path, stem: str, when: datetime.datetime | None = None) -> Path:
    """Create and return runs_dir/<stem>-<YYYYmmdd-HHMMSS>[-N], a folder no other run has.

    The folder is made here (mkdir fails if it exists), so two runs started in the same second,
    in one window or in two, never share one.
    """
    stamp = (when or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    runs_dir.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        folder = runs_dir / f"{stem}-{stamp}{suffix}"
        try:
            folder.mkdir()
        except FileExistsError:
            number += 1
            continue
        return folder
