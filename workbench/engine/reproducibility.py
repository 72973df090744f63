"""Reproducibility: what a run folder records (run.json), deterministic algorithms and their cost."""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from workbench import __version__
from workbench.engine.devices import DeviceInfo
from workbench.engine.errors import TrainingError
from workbench.engine.experiment import Experiment
from workbench.engine.training_snapshot import TrainingSnapshot, train_step

if TYPE_CHECKING:
    from workbench.engine.trainer import Trainer

RUN_FORMAT = "workbench-run/1"
MIN_ROUND_SECONDS = 0.2  # short steps are timed over more of them
COMPARED = ("workbench", "python", "torch", "torchvision", "cuda", "cudnn", "device")


def environment() -> dict[str, Any]:
    """Versions that decide a run's numbers: Python, torch, torchvision, CUDA, cuDNN, workbench."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[no-untyped-call]
    try:
        torchvision = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        torchvision = None
    return {
        "workbench": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
    }


def run_record(device: DeviceInfo, experiment: Experiment, flags: dict[str, Any]) -> dict[str, Any]:
    """run.json: the environment, the device, the seed and how the run was started."""
    return {
        "format": RUN_FORMAT,
        **environment(),
        "device": device.name,
        "device_description": device.description,
        "seed": experiment.train.seed,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "flags": flags,
    }


def read_run_record(folder: Path) -> dict[str, Any] | None:
    """A run folder's run.json, or None when it has none (runs made before it existed)."""
    try:
        record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def environment_differences(record: dict[str, Any], device: str | None = None) -> list[str]:
    """What differs between a recorded run and this machine, as sentences."""
    now = {**environment(), "device": device or record.get("device")}
    return [
        f"recorded with {key} {record.get(key)}, now {now[key]}"
        for key in COMPARED
        if key in record and record.get(key) != now.get(key)
    ]


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """torch.use_deterministic_algorithms(True), with what cuBLAS and cuDNN need, then as before."""
    # cuBLAS reads this when it starts; without it deterministic mode refuses its GEMMs on CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), cudnn.benchmark, cudnn.deterministic)
    torch.use_deterministic_algorithms(True)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        cudnn.benchmark, cudnn.deterministic = before[1], before[2]


@dataclass(frozen=True)
class DeterminismCost:
    """Seconds per training step with the default and with deterministic algorithms."""

    device: str
    rounds: int
    default_seconds: float
    deterministic_seconds: float

    @property
    def ratio(self) -> float:
        return self.deterministic_seconds / max(self.default_seconds, 1e-12)

    def line(self) -> str:
        return (
            f"Deterministic algorithms on: a training step takes {self.ratio:.2f}x as long "
            f"({'CPU' if self.device == 'cpu' else 'wall'} time, fastest of {self.rounds} rounds "
            f"each way on {self.device}: "
            f"{self.deterministic_seconds * 1000:.1f} ms against {self.default_seconds * 1000:.1f} ms)"
        )


def measure_determinism_cost(trainer: Trainer, steps: int = 3, rounds: int = 3) -> DeterminismCost:
    """Time a few training steps both ways on the prepared model, then put everything back.

    The two ways alternate for a few rounds and each keeps its fastest round. A model that uses an operation without a deterministic version on
    this device fails here, before training, with the operation named.
    """
    accumulate = trainer.experiment.train.accumulate_grad_batches
    trainer.loaders.train.set_epoch(1)
    batches = list(itertools.islice(trainer.loaders.train, (steps + 1) * accumulate))
    snapshot = TrainingSnapshot(trainer.model, trainer.optimizer, trainer.precision)
    seconds = {False: math.inf, True: math.inf}
    # On the CPU, the process's CPU time: other programs on a busy machine do not count in it.
    # On a GPU the wall clock (train_step waits for the GPU when it reads the loss).
    clock = time.process_time if trainer.device.type == "cpu" else time.perf_counter

    def timed_round() -> float:
        """Seconds per step over at least `steps` steps and MIN_ROUND_SECONDS."""
        snapshot.restore()
        source = itertools.cycle(batches)
        step = (trainer.model, trainer.optimizer, trainer.loss_fn, source, trainer.precision)
        train_step(*step, accumulate)  # warm-up: kernels chosen, caches filled
        started, taken = clock(), 0
        while taken < steps or clock() - started < MIN_ROUND_SECONDS:
            train_step(*step, accumulate)
            taken += 1
        return (clock() - started) / taken

    try:
        for _ in range(rounds):
            for deterministic in (False, True):
                torch.use_deterministic_algorithms(deterministic)
                seconds[deterministic] = min(seconds[deterministic], timed_round())
    except RuntimeError as exc:
        if "deterministic" not in str(exc):
            raise
        raise TrainingError(
            f"--deterministic: {str(exc).splitlines()[0]}; train without --deterministic, or "
            "replace the layer that uses this operation"
        ) from None
    finally:
        torch.use_deterministic_algorithms(True)
        snapshot.restore()
    return DeterminismCost(trainer.device_info.name, rounds, seconds[False], seconds[True])
