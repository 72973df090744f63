"""Benchmark: the in-memory fast path against the per-sample DataLoader path on MNIST-shaped data.

What is measured, side by side in one run, on the same 10,000 random 28x28 uint8 images written
as MNIST IDX files and read by torchvision's own MNIST class:

* DataLoader path (`in_memory = false`): torchvision MNIST `__getitem__` per sample (uint8 ->
  PIL image -> `ToTensor()` -> `Normalize((0.1307,), (0.3081,))`, as in the classic example),
  default collate, `num_workers = 0`.
* Fast path (`in_memory = true`): the same numbers computed once for all images; each batch is
  one `x[idx]` gather.

Both draw the same shuffled batch order (same seed and epoch), and train the model the way the
engine does (channels_last memory for the convolutional model). Figures: loader-only samples/s
over one epoch, then samples/s training the mnist-cnn model (Adadelta lr 1.0, nll, batch 64) for
a fixed number of batches, and a small MLP where data handling weighs more. Run with
`pytest -s -m bench tests/benchmarks/test_bench_data_fast_path.py`.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.engine.datasets import BatchSource, make_loaders
from workbench.engine.experiment import DataSpec
from workbench.engine.trainer import uses_channels_last

SAMPLES = 10_000
BATCH = 64
WARMUP_BATCHES = 3
TIMED_BATCHES = 60
ROUNDS = 4


def _write_mnist_shaped(root: Path) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", SAMPLES), ("t10k", 100)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8).tobytes()
        labels = rng.integers(0, 10, size=count, dtype=np.uint8).tobytes()
        header = struct.pack(">IIII", 0x0803, count, 28, 28)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + images)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 0x0801, count) + labels
        )


def mnist_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(9216, 64),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(64, 10),
        nn.LogSoftmax(dim=1),
    )


def small_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10), nn.LogSoftmax(dim=1)
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(source: BatchSource) -> float:
    source.set_epoch(0)
    start = time.perf_counter()
    count = sum(len(y) for _, y in source)
    return count / (time.perf_counter() - start)


def training_rate(
    source: BatchSource, build: Callable[[], nn.Module], device: torch.device, epoch: int
) -> float:
    """Samples/s over TIMED_BATCHES training steps after WARMUP_BATCHES untimed ones."""
    torch.manual_seed(1)
    model = build().to(device)
    channels_last = uses_channels_last("auto", model)  # as the engine trains it
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    loss_fn = nn.NLLLoss()
    source.set_epoch(epoch)
    batches = iter(source)
    samples, start = 0, 0.0
    for step in range(WARMUP_BATCHES + TIMED_BATCHES):
        if step == WARMUP_BATCHES:
            _sync(device)
            start = time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if step >= WARMUP_BATCHES:
            samples += len(y)
    _sync(device)
    return samples / (time.perf_counter() - start)


@pytest.mark.bench
def test_fast_path_against_dataloader_path(tmp_path: Path) -> None:
    _write_mnist_shaped(tmp_path)
    spec = DataSpec(name="mnist", root=str(tmp_path), batch_size=BATCH, in_memory=True)
    fast = make_loaders(spec, seed=1).train
    slow = make_loaders(replace(spec, in_memory=False), seed=1).train
    assert fast.sample_order(0) == slow.sample_order(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"\n[data fast path] {SAMPLES} MNIST-shaped samples, batch {BATCH}, device {device}, "
        f"torch threads {torch.get_num_threads()}; shared machine, so figures are noisy"
    )
    slow_rate, fast_rate = loader_rate(slow), loader_rate(fast)
    print(
        f"  loader only, 1 epoch : DataLoader {slow_rate:>10,.0f} samples/s | "
        f"fast path {fast_rate:>10,.0f} samples/s | ratio {fast_rate / slow_rate:.2f}x"
    )
    for label, build in (("mnist-cnn", mnist_cnn), ("small MLP", small_mlp)):
        slow_rates, fast_rates = [], []
        for round_index in range(ROUNDS):
            slow_rates.append(training_rate(slow, build, device, epoch=round_index))
            fast_rates.append(training_rate(fast, build, device, epoch=round_index))
        paired = sorted(f / s for f, s in zip(fast_rates, slow_rates, strict=True))
        print(
            f"  train {label:<9}: DataLoader {max(slow_rates):>8,.0f} samples/s | fast path "
            f"{max(fast_rates):>8,.0f} samples/s (best of {ROUNDS} x {TIMED_BATCHES} batches) | "
            f"ratio {max(fast_rates) / max(slow_rates):.2f}x; paired ratios "
            f"{', '.join(f'{r:.2f}' for r in paired)}"
        )
