"""Benchmark: a built residual net trains as fast as the same net written by hand.

Side by side in one run: the `cifar10-resnet` preset as the builder makes it (an nn.Sequential
holding BasicBlock graph modules with a generated forward) against the equivalent hand-written
nn.Module (torchvision-style `BasicBlock` class with `out + identity`), with the same weights
(the hand-written model loads the built one's state_dict strictly: the keys are the same).

Training throughput: forward, cross-entropy, backward and an SGD step on batches made before
the clock starts, channels_last as the trainer uses it for 2-D convolutions, one torch thread.
Rounds alternate which model goes first; the figure is the median of the per-round ratios
(built / hand-written samples per second). Two inputs: CIFAR-10-shaped images, and 8x8 digits,
where the per-call overhead of a forward weighs most. Target: ratio >= 0.97.
Run with `make bench` or `pytest -s -m bench tests/benchmarks/test_bench_graph_model.py`.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch import nn
from torch.nn import functional

from tests.conftest import PRESETS
from workbench.engine.experiment import load_experiment
from workbench.engine.model_builder import build_model

BATCH = 32
STEPS = 20
ROUNDS = 15


class BasicBlock(nn.Module):
    """torchvision's BasicBlock without downsampling, as a tutorial writes it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)


class HandWrittenResNet(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(16), BasicBlock(16))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def train_rate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    for x, y in batches[:3]:
        step(x, y)
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return len(batches) * BATCH / (time.perf_counter() - start)


def side_by_side(shape: tuple[int, ...]) -> tuple[float, float, list[float]]:
    experiment = load_experiment(PRESETS / "cifar10-resnet.toml")
    torch.manual_seed(0)
    built = build_model(experiment.model, shape).module.to(memory_format=torch.channels_last)
    by_hand = HandWrittenResNet(shape[0]).to(memory_format=torch.channels_last)
    by_hand.load_state_dict(built.state_dict(), strict=True)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(BATCH, *shape, generator=generator).contiguous(
                memory_format=torch.channels_last
            ),
            torch.randint(0, 10, (BATCH,), generator=generator),
        )
        for _ in range(STEPS)
    ]
    rates: dict[str, list[float]] = {"built": [], "hand": []}
    ratios = []
    for round_ in range(ROUNDS):
        order = [("built", built), ("hand", by_hand)]
        for name, model in order if round_ % 2 == 0 else order[::-1]:
            rates[name].append(train_rate(model, batches))
        ratios.append(rates["built"][-1] / rates["hand"][-1])
    return statistics.median(rates["built"]), statistics.median(rates["hand"]), ratios


@pytest.mark.bench
def test_a_built_residual_net_trains_as_fast_as_a_hand_written_one() -> None:
    torch.set_num_threads(1)
    print(
        f"\n[graph model] cifar10-resnet built vs hand-written, training, batch {BATCH}, "
        f"{STEPS} steps, CPU, 1 torch thread, {ROUNDS} interleaved rounds"
    )
    for label, shape in (("CIFAR-10 [3, 32, 32]", (3, 32, 32)), ("digits [1, 8, 8]", (1, 8, 8))):
        built, hand, ratios = side_by_side(shape)
        median = statistics.median(ratios)
        print(
            f"  {label:20} built {built:9,.0f} samples/s | hand-written {hand:9,.0f} samples/s | "
            f"built / hand-written = {median:.3f} (median of paired ratios, "
            f"range {min(ratios):.3f}-{max(ratios):.3f}; target >= 0.97)"
        )
        assert all(ratio > 0 for ratio in ratios)
