"""Will it fit: the fake-tensor estimate against measured peaks, its parts, and the verdict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import PRESETS, ROOT
from tests.engine.test_datasets_files import write_idx
from workbench.engine.devices import DeviceInfo
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.memory_estimate import (
    MemoryEstimate,
    estimate_training_memory,
    fit_verdict,
    format_bytes,
)
from workbench.engine.overrides import with_overrides
from workbench.engine.trainer import Trainer

# A fresh process trains mnist-cnn for one epoch (two steps and a validation pass) on fake
# MNIST-shaped IDX files and prints how far its resident memory rose above where it stood
# once the data and model were ready (Linux's VmHWM after resetting it through clear_refs).
RSS_PROBE = """
import gc, sys
import torch
from workbench.engine.experiment import load_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.trainer import Trainer

preset, root, batch, val_batch = sys.argv[1:5]
experiment = with_overrides(
    load_experiment(preset),
    {"data.root": root, "data.batch_size": int(batch), "data.val_batch_size": int(val_batch),
     "train.epochs": 1},
    source="probe",
)

def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key))

trainer = Trainer(experiment)
trainer.prepare()
gc.collect()
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # reset the peak (VmHWM) to the current resident size
trainer.fit()
print(status("VmHWM") - before)
"""


def mnist_shaped(root: Path, train: int, test: int) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", rng.integers(0, 256, (train, 28, 28)), rng.integers(0, 10, train))
    write_idx(raw, "t10k", rng.integers(0, 256, (test, 28, 28)), rng.integers(0, 10, test))


def mnist_cnn(root: Path, batch: int, val_batch: int) -> Experiment:
    return with_overrides(
        load_experiment(PRESETS / "mnist-cnn.toml"),
        {"data.root": str(root), "data.batch_size": batch, "data.val_batch_size": val_batch},
        source="test",
    )


def measured_rss_growth(root: Path, batch: int, val_batch: int) -> int:
    # glibc keeps freed blocks below its (self-raising) mmap threshold on its free lists, so the
    # resident size also counts memory the tensors no longer hold, as CUDA's reserved memory
    # does. A fixed threshold returns freed tensors to the system at once: the resident size then
    # follows the memory tensors hold, the quantity max_memory_allocated measures on CUDA.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"}
    probe = [sys.executable, "-c", RSS_PROBE, str(PRESETS / "mnist-cnn.toml"), str(root)]
    result = subprocess.run(
        [*probe, str(batch), str(val_batch)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize(
    ("batch", "val_batch"),
    [(64, 1000), (256, 256), (1024, 1000)],  # peak in validation; in training; in training
)
def test_the_estimate_is_within_25_percent_of_the_measured_peak_on_the_cpu(
    tmp_path: Path, batch: int, val_batch: int
) -> None:
    mnist_shaped(tmp_path, train=2 * batch, test=val_batch)
    experiment = mnist_cnn(tmp_path, batch, val_batch)
    estimate = estimate_training_memory(experiment)
    assert estimate.device == "cpu" and estimate.batch_size == batch
    growth = measured_rss_growth(tmp_path, batch, val_batch)
    expected = estimate.peak - estimate.weights  # the weights were resident before the run
    assert abs(expected - growth) <= 0.25 * growth, (
        f"estimate {format_bytes(expected)}, measured {format_bytes(growth)}"
    )


@pytest.mark.cuda
@pytest.mark.parametrize(("batch", "val_batch"), [(64, 1000), (512, 512), (2048, 1000)])
def test_the_estimate_is_within_25_percent_of_max_memory_allocated_on_cuda(
    tmp_path: Path, batch: int, val_batch: int
) -> None:
    mnist_shaped(tmp_path, train=2 * batch, test=val_batch)
    experiment = with_overrides(
        mnist_cnn(tmp_path, batch, val_batch), {"train.device": "cuda"}, source="test"
    )
    estimate = estimate_training_memory(experiment)
    trainer = Trainer(experiment)
    trainer.prepare()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    trainer.fit()
    peak = torch.cuda.max_memory_allocated()
    assert abs(estimate.peak - peak) <= 0.25 * peak, (
        f"estimate {format_bytes(estimate.peak)}, measured {format_bytes(peak)}"
    )


def test_the_parts_add_up_for_a_known_model() -> None:
    experiment = load_experiment(PRESETS / "mnist-cnn.toml")
    estimate = estimate_training_memory(experiment)
    parameters = 609_354 * 4
    assert estimate.weights == parameters and estimate.gradients == parameters
    # Adadelta keeps square_avg and acc_delta per parameter, and a step count per tensor.
    assert 2 * parameters <= estimate.optimizer_state <= 2 * parameters + 8 * 8
    sgd = with_overrides(experiment, {"train.optimizer": "sgd"}, source="test")
    assert estimate_training_memory(sgd).optimizer_state == 0
    # The validation pass of 1000 images outweighs a training step of 64: say so.
    assert estimate.eval_peak > estimate.train_peak and estimate.peak == estimate.eval_peak
    assert "the peak: lower data.val_batch_size" in "\n".join(estimate.lines())
    # Activations scale with the batch; the fixed parts do not.
    bigger = estimate_training_memory(experiment, batch_size=128)
    assert bigger.weights == estimate.weights
    assert 1.8 < bigger.activations / estimate.activations < 2.2


def test_half_precision_activations_are_smaller() -> None:
    experiment = load_experiment(PRESETS / "mnist-cnn.toml")
    full = estimate_training_memory(experiment, batch_size=256)
    half = estimate_training_memory(
        with_overrides(experiment, {"train.precision": "bf16-mixed"}, source="test"),
        batch_size=256,
    )
    assert half.activations < 0.75 * full.activations
    assert half.weights == full.weights  # autocast keeps float32 weights


def test_the_verdict_compares_with_free_memory() -> None:
    estimate = MemoryEstimate("cuda:0", 64, 1000, "32-true", "adam", 100, 100, 200, 1000, 500)
    assert fit_verdict(estimate, 2000) == ("fits", "free memory on cuda:0: 2.0 KiB: fits")
    assert fit_verdict(estimate, 1100)[0] == "tight"
    level, text = fit_verdict(estimate, 900)
    assert level == "too_big" and "lower data.batch_size (`workbench fit-batch`" in text
    assert fit_verdict(estimate, None) == ("unknown", "free memory on cuda:0: unknown")


def test_the_estimate_targets_the_experiments_device() -> None:
    cpu = DeviceInfo("cpu", "CPU", None, ("32-true", "bf16-mixed"), ())
    estimate = estimate_training_memory(load_experiment(PRESETS / "digits-mlp.toml"), devices=[cpu])
    assert estimate.device == "cpu" and estimate.batch_size == 32
    assert estimate.lines()[0].startswith(
        "Estimated peak training memory on cpu (batch 32, 32-true, adam): "
    )
