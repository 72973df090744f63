"""Benchmark: the engine's training throughput against a tutorial loop and a bare compute loop.

Side by side in one run, on the same MNIST-shaped data (random 28x28 images written as MNIST
IDX files, read by torchvision's MNIST class), the mnist-cnn model, Adadelta lr 1.0, nll, batch 64:

* plain loop: the classic example as written: `datasets.MNIST(transform=Compose([ToTensor(),
  Normalize(...)]))`, `DataLoader(batch_size=64, shuffle=True)`, then forward/loss/backward/step;
* engine: `Trainer` on the `mnist-cnn` preset (in-memory fast path; samples/s of its epoch report,
  which counts training time only);
* bare compute: forward/backward/step on batches made before the clock starts (an upper bound),
  in the memory format the engine picks for this model (channels_last, as `memory_format =
  "auto"` does for 2-D convolutions), so the ratio shows the engine's own overhead.

Each is measured ROUNDS times, alternating, and the best round is kept (the machine is shared).
Run with `make bench` or `pytest -s -m bench tests/benchmarks/test_bench_training.py`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from tests.benchmarks.test_bench_data_fast_path import _write_mnist_shaped
from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.trainer import Trainer

BATCH = 64
ROUNDS = 2
BATCHES = 100  # 6,400 samples per measurement


class Net(nn.Module):
    """The classic MNIST example's model, written as the tutorial writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = functional.relu(self.conv1(x))
        x = functional.relu(self.conv2(x))
        x = self.dropout1(functional.max_pool2d(x, 2))
        x = functional.relu(self.fc1(torch.flatten(x, 1)))
        return functional.log_softmax(self.fc2(self.dropout2(x)), dim=1)


def plain_loop_rate(root: Path) -> float:
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )
    dataset = datasets.MNIST(str(root), train=True, download=False, transform=transform)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)
    torch.manual_seed(1)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    model.train()
    start, samples = time.perf_counter(), 0
    for batch_idx, (data, target) in enumerate(loader):
        if batch_idx == BATCHES:
            break
        optimizer.zero_grad()
        loss = functional.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        samples += len(target)
    return samples / (time.perf_counter() - start)


def bare_compute_rate(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    torch.manual_seed(1)
    model = Net().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    model.train()
    batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in batches]
    start = time.perf_counter()
    for data, target in batches:
        optimizer.zero_grad()
        functional.nll_loss(model(data), target).backward()
        optimizer.step()
    return BATCHES * BATCH / (time.perf_counter() - start)


def engine_rate(root: Path) -> float:
    experiment = load_experiment(PRESETS / "mnist-cnn.toml")
    data = dataclasses.replace(
        experiment.data,
        root=str(root),
        options={"train_samples": BATCHES * BATCH, "val_samples": 100},
    )
    train = dataclasses.replace(experiment.train, epochs=1, device="cpu")
    trainer = Trainer(dataclasses.replace(experiment, data=data, train=train))
    trainer.fit()
    return float(trainer.history[-1]["samples_per_second"])


@pytest.mark.bench
def test_engine_throughput_against_plain_and_bare_loops(tmp_path: Path) -> None:
    _write_mnist_shaped(tmp_path)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(BATCH, 1, 28, 28, generator=generator),
            torch.randint(0, 10, (BATCH,), generator=generator),
        )
        for _ in range(BATCHES)
    ]
    best = {"plain": 0.0, "engine": 0.0, "bare": 0.0}
    for _ in range(ROUNDS):
        best["plain"] = max(best["plain"], plain_loop_rate(tmp_path))
        best["engine"] = max(best["engine"], engine_rate(tmp_path))
        best["bare"] = max(best["bare"], bare_compute_rate(batches))
    print(
        f"\n[training throughput] mnist-cnn, batch {BATCH}, {BATCHES} batches, CPU, "
        f"{torch.get_num_threads()} torch threads, best of {ROUNDS}"
    )
    print(
        f"  plain tutorial loop {best['plain']:8,.0f} samples/s | engine {best['engine']:8,.0f} "
        f"samples/s | bare compute {best['bare']:8,.0f} samples/s"
    )
    print(
        f"  engine / plain loop = {best['engine'] / best['plain']:.2f}x (target >= 1.25x) | "
        f"engine / bare compute = {best['engine'] / best['bare']:.2f} (target >= 0.95)"
    )
