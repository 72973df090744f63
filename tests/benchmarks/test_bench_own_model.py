"""Benchmark: the user's own model class trained by the engine against a plain PyTorch loop over
the same class and data.

Side by side in one run, on MNIST-shaped data (random 28x28 images written as MNIST IDX files):

* own model: `Trainer` on an experiment whose `[model] module` names the classic MNIST example's
  `Net`, written to a .py file (`module = "net.py:Net"`); its epoch report's samples/s (training
  time only: forward, loss, backward, step, the per-batch report);
* plain loop: the same class imported from the same file, the same normalised images in memory,
  shuffled batches gathered from the same tensors, Adadelta lr 1.0 and nll, `loss.item()` per
  batch as a loop that reports does, in the memory format the engine picks for 2-D convolutions
  (channels_last), so the ratio shows what the engine adds around the user's class.

Both train BATCHES batches of BATCH from a fresh model on one torch thread, so every operator
runs on the calling thread and its CPU time (`time.thread_time`) measures the work itself: other
processes on a shared machine steal wall time, not thread CPU time. Each side is timed from the
end of its first batch (warm-up) to the end of its last. Rounds alternate which goes first; the
figure is the median of the per-round ratios (own model / plain loop samples per CPU second),
with the wall-clock samples/s of the engine's own epoch report for reference. Target: >= 0.97.
Run with `make bench` or `pytest -s -m bench tests/benchmarks/test_bench_own_model.py`.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional

from tests.benchmarks.test_bench_data_fast_path import _write_mnist_shaped
from tests.own_models import MNIST_NET
from workbench.engine.datasets import make_loaders
from workbench.engine.experiment import load_experiment
from workbench.engine.reports import BaseObserver, BatchReport
from workbench.engine.trainer import Trainer

BATCH = 64
BATCHES = 20
ROUNDS = 31


def write_experiment(folder: Path) -> Path:
    (folder / "net.py").write_text(MNIST_NET.lstrip(), encoding="utf-8")
    path = folder / "own.toml"
    path.write_text(
        f'[model]\nmodule = "net.py:Net"\n\n[data]\nname = "mnist"\nroot = "{folder}"\n'
        f"batch_size = {BATCH}\noptions = {{ train_samples = {BATCH * BATCHES}, "
        'val_samples = 100 }\n\n[train]\nepochs = 1\noptimizer = "adadelta"\nlr = 1.0\n'
        'loss = "nll"\ndevice = "cpu"\n',
        encoding="utf-8",
    )
    return path


def net_class(folder: Path) -> type[nn.Module]:
    spec = importlib.util.spec_from_file_location("bench_user_net", folder / "net.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net: type[nn.Module] = module.Net
    return net


class _BatchClock(BaseObserver):
    """The thread's CPU time at the end of the first and of the last batch."""

    def __init__(self) -> None:
        self.first = self.last = 0.0

    def on_batch_end(self, report: BatchReport) -> None:
        if report.batch == 0:
            self.first = time.thread_time()
        self.last = time.thread_time()


def own_model_rate(path: Path) -> tuple[float, float]:
    """Samples per CPU second after the first batch, and the epoch report's samples/s."""
    clock = _BatchClock()
    trainer = Trainer(load_experiment(path), observer=clock)
    trainer.fit()
    cpu = (BATCHES - 1) * BATCH / (clock.last - clock.first)
    return cpu, float(trainer.history[-1]["samples_per_second"])


def plain_loop_rate(net: type[nn.Module], x: torch.Tensor, y: torch.Tensor) -> float:
    torch.manual_seed(1)
    model = net().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    model.train()
    order = torch.randperm(len(x))
    start = 0.0
    for batch in range(BATCHES):
        index = order[batch * BATCH : (batch + 1) * BATCH]
        data = x[index].contiguous(memory_format=torch.channels_last)
        target = y[index]
        optimizer.zero_grad(set_to_none=True)
        loss = functional.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        loss.item()
        if batch == 0:
            start = time.thread_time()
    return (BATCHES - 1) * BATCH / (time.thread_time() - start)


@pytest.mark.bench
def test_an_own_model_trains_as_fast_as_a_plain_loop_over_the_same_class(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    _write_mnist_shaped(tmp_path)
    path = write_experiment(tmp_path)
    experiment = load_experiment(path)
    loaders = make_loaders(experiment.data, experiment.train.seed)
    x = torch.cat([batch[0] for batch in loaders.train])  # the engine's normalised images
    y = torch.cat([batch[1] for batch in loaders.train])
    net = net_class(tmp_path)
    rates: dict[str, list[float]] = {"own": [], "plain": [], "wall": []}
    ratios = []

    def own() -> None:
        cpu, wall = own_model_rate(path)
        rates["own"].append(cpu)
        rates["wall"].append(wall)

    def plain() -> None:
        rates["plain"].append(plain_loop_rate(net, x, y))

    for round_ in range(ROUNDS):
        for run in (own, plain) if round_ % 2 == 0 else (plain, own):
            run()
        ratios.append(rates["own"][-1] / rates["plain"][-1])
    median = statistics.median(ratios)
    print(
        f"\n[own model] the MNIST example's Net from net.py, batch {BATCH}, {BATCHES} batches, "
        f"CPU, 1 torch thread, {ROUNDS} interleaved rounds"
    )
    print(
        f"  own model (Trainer) {statistics.median(rates['own']):6,.0f} samples/CPU-s | plain "
        f"loop {statistics.median(rates['plain']):6,.0f} samples/CPU-s | own / plain = "
        f"{median:.3f} (median of paired ratios, range {min(ratios):.3f}-{max(ratios):.3f}; "
        f"target >= 0.97) | engine epoch report {statistics.median(rates['wall']):,.0f} "
        "samples/s wall"
    )
    assert all(ratio > 0 for ratio in ratios)
