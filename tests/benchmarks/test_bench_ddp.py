"""Benchmark: what two DDP processes cost and give on the CPU, against one process.

The same experiment file (digits, an MLP with 256 hidden units, batch 32 per process, 3 epochs)
runs through the command line twice, side by side: `workbench train` and `workbench train
--nproc 2` (torchrun, gloo). Printed per run: start-up (from launching the command to rank 0's
first batch_end event), total wall time of the command, and training throughput in samples/s
over all ranks (summary.json's samples_per_second: the mean over epochs of each epoch's
training samples divided by its training time). The 2-process run has twice the effective
batch, so it takes half the optimizer steps. Threads (OMP_NUM_THREADS, per process): the single
process runs once with 1 thread and once with all cores; each DDP rank gets cores / 2. Run with
`pytest -s -m bench tests/benchmarks/test_bench_ddp.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = """
[model]
layers = [
  { type = "Flatten" },
  { type = "Linear", out_features = 256 },
  { type = "ReLU" },
  { type = "Linear", out_features = 256 },
  { type = "ReLU" },
  { type = "Linear", out_features = 10 },
]
[data]
name = "digits"
batch_size = 32
val_batch_size = 512
[train]
epochs = 3
optimizer = "sgd"
lr = 0.05
device = "cpu"
seed = 1
"""


def timed_run(experiment: Path, threads: int, *extra: str) -> dict[str, float]:
    """Run `workbench train` with events on stdout; time its start-up and its whole run."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = str(threads)  # per process
    started = time.perf_counter()
    first_batch = None
    summary: dict[str, float] = {}
    with subprocess.Popen(
        [sys.executable, "-m", "workbench", "train", str(experiment), "--events", "-", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "batch_end" and first_batch is None:
                first_batch = time.perf_counter() - started
            elif event["event"] == "finished":
                summary = event["summary"]
        assert process.wait() == 0
    assert first_batch is not None
    return {
        "first_batch": first_batch,
        "wall": time.perf_counter() - started,
        "samples_per_second": float(summary["samples_per_second"]),
        "train_seconds": float(summary["wall_seconds"]),
        "val_accuracy": float(summary["val_accuracy"]),
    }


@pytest.mark.bench
def test_two_process_cpu_run_against_one_process(tmp_path: Path) -> None:
    experiment = tmp_path / "digits.toml"
    experiment.write_text(EXPERIMENT, encoding="utf-8")
    cores = os.cpu_count() or 1
    runs = {
        "1 proc x 1 thread": timed_run(experiment, 1),
        f"1 proc x {cores} thr": timed_run(experiment, cores),
        f"2 procs x {max(cores // 2, 1)} thr": timed_run(
            experiment, max(cores // 2, 1), "--nproc", "2"
        ),
    }

    print(f"\nDDP on the CPU: digits MLP, batch 32 per process, 3 epochs, {cores} cores")
    print(f"{'':30}" + "".join(f"{name:>20}" for name in runs))
    rows = (
        ("start-up to first batch (s)", "first_batch"),
        ("whole command (s)", "wall"),
        ("fit() time (s)", "train_seconds"),
        ("training samples/s", "samples_per_second"),
        ("val accuracy", "val_accuracy"),
    )
    for label, key in rows:
        print(f"{label:30}" + "".join(f"{run[key]:20.3f}" for run in runs.values()))
