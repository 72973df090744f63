"""Benchmark: what profiling costs a training step, and the exported ONNX model in onnxruntime
against eager PyTorch.

Both on mnist-cnn (the preset's layers, seeded random weights, random MNIST-shaped batches),
CPU. Each comparison interleaves its contenders call by call (the order rotating each round)
and reports the median of the per-round ratios, so a shared machine's load hits all alike.

* profiler overhead: one training step (batch 64, Adadelta) plain, with the per-layer timing
  hooks `workbench profile` uses, and under torch.profiler as its trace/peak-memory steps run;
* ONNX: the file `workbench export --format onnx` writes, run by onnxruntime, against the
  same model in eager PyTorch under inference_mode, at batch 1 and 64, with 1 thread each and
  with the default thread counts.

Run: `pytest -s -m bench tests/benchmarks/test_bench_profile_export.py`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime
import pytest
import torch

from tests.conftest import PRESETS
from workbench.engine.devices import available_devices
from workbench.engine.experiment import load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.export import export_model
from workbench.engine.optimization import make_loss, make_optimizer
from workbench.engine.profiling import TrainingSetup
from workbench.engine.profiling.layer_hooks import LayerTimer, TraceLabels
from workbench.engine.profiling.memory_trace import profiled

pytestmark = pytest.mark.bench
STEP_ROUNDS = 15
INFERENCE_ROUNDS = 60


def paired(
    contenders: dict[str, Callable[[], object]], rounds: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds per call of each contender, interleaved, the order rotating every round."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - started)
    return times


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


def test_profiler_overhead_on_a_training_step() -> None:
    torch.set_num_threads(1)
    experiment = load_experiment(PRESETS / "mnist-cnn.toml")
    torch.manual_seed(0)
    model = build_experiment_model(experiment).module
    setup = TrainingSetup(
        model=model,
        loss_fn=make_loss(experiment.train.loss),
        optimizer_factory=lambda params: make_optimizer(params, experiment.train),
        device=available_devices()[0],
        channels_last=True,  # as memory_format = "auto" trains 2-D convolutions
    )
    runner = setup.runner()
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    timer = LayerTimer(runner.model, runner.device)

    def plain() -> None:
        runner.run(x, y)

    def hooked() -> None:
        with timer:
            runner.run(x, y)
        timer.take()

    def traced() -> None:
        with profiled(runner.device), TraceLabels(runner.model):
            runner.run(x, y, labelled=True)

    times = paired({"plain": plain, "hooks": hooked, "torch.profiler": traced}, STEP_ROUNDS)
    ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
    print(
        f"\n[profiler overhead] mnist-cnn training step, batch 64, CPU, 1 thread, {STEP_ROUNDS} interleaved rounds"
    )
    print(
        f"  plain step {ms['plain']:.1f} ms | with per-layer hooks {ms['hooks']:.1f} ms | under torch.profiler (memory, shapes) {ms['torch.profiler']:.1f} ms"
    )
    print(
        f"  per-layer hooks / plain = {median_ratio(times['hooks'], times['plain']):.3f}x | "
        f"torch.profiler / plain = {median_ratio(times['torch.profiler'], times['plain']):.3f}x "
        "(medians of paired ratios)"
    )
    assert all(value > 0 for value in ms.values())


def test_onnxruntime_against_eager_pytorch(tmp_path: Path) -> None:
    experiment = load_experiment(PRESETS / "mnist-cnn.toml")
    torch.manual_seed(0)
    model = build_experiment_model(experiment).module.eval()
    path = tmp_path / "mnist-cnn.onnx"
    result = export_model(model, torch.randn(8, 1, 28, 28), "onnx", path)
    assert result.passed
    print(
        f"\n[onnxruntime vs eager PyTorch] mnist-cnn inference, CPU, {INFERENCE_ROUNDS} interleaved rounds, medians"
    )
    print(
        f"  {'threads':>7}  {'batch':>5}  {'PyTorch eager':>14}  {'onnxruntime':>12}  {'ORT speed-up':>12}"
    )
    default_threads = torch.get_num_threads()
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        for batch in (1, 64):
            x = torch.randn(batch, 1, 28, 28)
            array = x.numpy()

            def eager(x: torch.Tensor = x) -> object:
                with torch.inference_mode():
                    return model(x)

            def ort(array: object = array, session: object = session) -> object:
                return session.run(None, {"input": array})  # type: ignore[attr-defined]

            times = paired({"eager": eager, "ort": ort}, INFERENCE_ROUNDS, warmup=10)
            eager_ms = 1000 * statistics.median(times["eager"])
            ort_ms = 1000 * statistics.median(times["ort"])
            speedup = median_ratio(times["eager"], times["ort"])
            print(
                f"  {threads:>7}  {batch:>5}  {eager_ms:>11.3f} ms  {ort_ms:>9.3f} ms  {speedup:>11.2f}x"
            )
            assert eager_ms > 0 and ort_ms > 0
