"""Sweep overhead per trial: one `workbench sweep` against a `workbench train` process per trial.

The same four digits-mlp trials (two learning rates x two batch sizes, two epochs each) run both
ways, one after the other. Overhead per trial = (wall time of the whole thing - the trials' own
training time, summary.json's wall_seconds) / trials: interpreter start, imports, data loading
and model building, which a sweep pays once for the process and separate runs pay every time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.bench

GRID = ("--grid", "train.lr=0.01,0.003", "--grid", "data.batch_size=64,128", "--epochs", "2")


def _run(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return time.perf_counter() - started


def _training_seconds(folders: list[Path]) -> float:
    return sum(json.loads((f / "summary.json").read_text())["wall_seconds"] for f in folders)


def test_sweep_overhead_per_trial_against_separate_processes(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    sweep_wall = _run("sweep", "digits-mlp", *GRID, "--out", str(sweep_dir))
    trials = sorted(sweep_dir.glob("trial-*"))
    assert len(trials) == 4

    separate = [tmp_path / f"separate-{trial.name}" for trial in trials]
    separate_wall = 0.0
    for trial, out in zip(trials, separate, strict=True):
        separate_wall += _run("train", str(trial / "experiment.toml"), "--out", str(out))

    n = len(trials)
    in_sweep = (sweep_wall - _training_seconds(trials)) / n
    alone = (separate_wall - _training_seconds(separate)) / n
    print(
        f"\nsweep overhead per trial ({n} digits-mlp trials, 2 epochs each): "
        f"one sweep process {in_sweep:.2f} s (total {sweep_wall:.1f} s) | "
        f"a train process per trial {alone:.2f} s (total {separate_wall:.1f} s) | "
        f"{alone / max(in_sweep, 1e-9):.1f}x less overhead per trial in the sweep"
    )
