"""Benchmark: float against every quantization method and path, side by side in one run.

Two models, each quantized through `quantize_experiment` exactly as `workbench quantize` does
(save, reload, measure the reloaded model), on CPU with ONE thread so that the figures are
comparable on a machine whose cores are shared:

* Linear-heavy MLP 784-2048-2048-10 (5.8M parameters) on scikit-learn's digits upsampled to
  28x28 (bilinear), trained for 3 epochs with Adam: a real task, so accuracy means something.
* mnist-cnn (the layers of resources/presets/mnist-cnn.toml) on synthetic MNIST-shaped data
  (MNIST cannot be downloaded here): ten fixed random 28x28 templates plus noise, trained for
  40 batches with the preset's Adadelta, so accuracy is meaningful too.

Figures per row: accuracy and its change, file size and ratio, median latency at batch 1 and
64 (warm, 30 runs) and speed-up over float. Set WORKBENCH_BENCH_COMPILE=1 to add torch.compile
rows (float, torchao dynamic, PT2E static), which take minutes to compile here.
Run: `pytest -s -m bench tests/benchmarks/test_bench_quantization.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.engine.datasets import (
    DatasetInfo,
    EpochBatchSampler,
    Loaders,
    TensorBatchSource,
    load_splits,
)
from workbench.engine.experiment import DataSpec, Experiment, LayerSpec, ModelSpec, load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.quantization import (
    MeasureSettings,
    QuantizationOptions,
    ReportCard,
    maintained,
    measure_latency,
    quantize_experiment,
)

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[2]
MEASURE = MeasureSettings(repeats=30, warmup=5, threads=1, inference_options=False)
RUNS = (
    ("dynamic", "eager"),
    ("dynamic", "torchao"),
    ("static", "eager"),
    ("static", "pt2e"),
    ("qat", "eager"),
    ("qat", "pt2e"),
)


def tensor_loaders(
    train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], name: str
) -> Loaders:
    def source(x: torch.Tensor, y: torch.Tensor, training: bool) -> TensorBatchSource:
        sampler = EpochBatchSampler(
            len(x), 64 if training else 512, shuffle=training, drop_last=False, seed=1,
            training=training,
        )  # fmt: skip
        return TensorBatchSource(x, y, sampler, pin_memory=False)

    info = DatasetInfo(
        name, tuple(train[0].shape[1:]), tuple(str(i) for i in range(10)), len(train[0]),
        len(val[0]), "image", name,
    )  # fmt: skip
    return Loaders(source(*train, True), source(*val, False), info, fast_path=True)


def upsampled_digits() -> Loaders:
    splits = load_splits(DataSpec(name="digits"), seed=1)

    def grow(dataset: object) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = dataset.tensors  # type: ignore[attr-defined]
        return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False), y

    return tensor_loaders(grow(splits.train), grow(splits.val), "digits upsampled to 28x28")


def synthetic_mnist(train_size: int = 2000, val_size: int = 500) -> Loaders:
    generator = torch.Generator().manual_seed(0)
    templates = F.avg_pool2d(torch.rand(10, 1, 28, 28, generator=generator), 5, 1, 2)

    def draw(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (count,), generator=generator)
        noise = 0.35 * torch.randn(count, 1, 28, 28, generator=generator)
        return (templates[labels] - 0.5) / 0.1 + noise, labels

    return tensor_loaders(draw(train_size), draw(val_size), "synthetic MNIST-shaped")


def train(
    experiment: Experiment,
    loaders: Loaders,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    batches: int,
) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    model = build_experiment_model(experiment).module.train()
    optimizer = make_optimizer(model)
    loss_fn = nn.CrossEntropyLoss() if experiment.train.loss == "cross_entropy" else nn.NLLLoss()
    done, epoch = 0, 0
    while done < batches:
        loaders.train.set_epoch(epoch)
        for x, y in loaders.train:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            done += 1
            if done == batches:
                break
        epoch += 1
    return model.state_dict()


def mlp_case() -> tuple[Experiment, Loaders, dict[str, torch.Tensor], str]:
    layers = [
        LayerSpec("Flatten"),
        LayerSpec("Linear", {"out_features": 2048}),
        LayerSpec("ReLU"),
        LayerSpec("Linear", {"out_features": 2048}),
        LayerSpec("ReLU"),
        LayerSpec("Linear", {"out_features": 10}),
    ]
    experiment = Experiment(model=ModelSpec(tuple(layers), input_shape=(1, 28, 28)))
    loaders = upsampled_digits()
    epochs = 3
    state = train(
        experiment,
        loaders,
        lambda m: torch.optim.Adam(m.parameters(), lr=1e-3),
        epochs * len(loaders.train),
    )
    return experiment, loaders, state, f"trained {epochs} epochs"


def cnn_case() -> tuple[Experiment, Loaders, dict[str, torch.Tensor], str]:
    experiment = load_experiment(ROOT / "resources" / "presets" / "mnist-cnn.toml")
    loaders = synthetic_mnist()
    state = train(experiment, loaders, lambda m: torch.optim.Adadelta(m.parameters(), lr=1.0), 40)
    return experiment, loaders, state, "trained 40 batches"


def run_methods(
    tmp_path: Path, case: tuple[Experiment, Loaders, dict[str, torch.Tensor], str]
) -> list[tuple[str, str, ReportCard, float]]:
    experiment, loaders, state, _ = case
    rows = []
    for method, path in RUNS:
        options = QuantizationOptions(method=method, path=path, calibration_samples=256)
        started = time.perf_counter()
        outcome = quantize_experiment(
            experiment, state, options, tmp_path / f"{method}-{path}", measure=MEASURE,
            loaders=loaders,
        )  # fmt: skip
        rows.append((method, path, outcome.report, time.perf_counter() - started))
    return rows


def print_table(title: str, rows: list[tuple[str, str, ReportCard, float]]) -> None:
    first = rows[0][2]
    f = first.float_model
    float_b1 = statistics.median(card.float_model.latency.batch1_ms for _, _, card, _ in rows)
    float_b64 = statistics.median(card.float_model.latency.batch64_ms for _, _, card, _ in rows)
    header = ("method", "path", "accuracy", "change", "size", "smaller", "b1 ms", "b1 x",
              "b64 ms", "b64 x", "took")  # fmt: skip
    lines = [
        (
            "float", "-", f"{100 * (f.accuracy or 0):.2f}%", "", f"{f.size_bytes / 1e6:.2f} MB",
            "1.00x", f"{float_b1:.3f}", "1.00x", f"{float_b64:.2f}",
            "1.00x", "",
        )
    ]  # fmt: skip
    for method, path, card, seconds in rows:
        q = card.quantized
        lines.append(
            (
                method, path, f"{100 * (q.accuracy or 0):.2f}%",
                f"{card.accuracy_change_points:+.2f}", f"{q.size_bytes / 1e6:.2f} MB",
                f"{card.size_ratio:.2f}x", f"{q.latency.batch1_ms:.3f}",
                f"{card.speedup_batch1:.2f}x", f"{q.latency.batch64_ms:.2f}",
                f"{card.speedup_batch64:.2f}x", f"{seconds:.0f} s",
            )
        )  # fmt: skip
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    print(f"\n{title}")
    print(
        f"  ({first.threads} thread; medians of 30 warm calls; each row's ratios are against "
        "the float model timed call-by-call interleaved with it in that row's run; the float "
        "row shows the median over the rows)"
    )
    for row in (header, *lines):
        print("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    notes = {note for _, _, card, _ in rows for note in card.notes}
    for note in sorted(notes):
        print(f"  note: {note}")


def test_linear_heavy_mlp(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    case = mlp_case()
    rows = run_methods(tmp_path, case)
    print_table(f"Linear-heavy MLP 784-2048-2048-10, digits upsampled, {case[3]}", rows)
    dynamic = rows[0][2]
    verdict = "met" if dynamic.speedup_batch1 >= 2 and dynamic.speedup_batch64 >= 2 else "MISSED"
    print(
        f"  targets (dynamic, eager): >= 3.5x smaller: {dynamic.size_ratio:.2f}x; "
        f">= 2x faster at batch 1 and 64 ({verdict}): {dynamic.speedup_batch1:.2f}x / "
        f"{dynamic.speedup_batch64:.2f}x; accuracy within 1 point: "
        f"{dynamic.accuracy_change_points:+.2f}"
    )
    # Size and accuracy are deterministic; latency is printed, never asserted.
    assert dynamic.size_ratio >= 3.5
    assert dynamic.accuracy_change_points is not None
    assert abs(dynamic.accuracy_change_points) <= 1.0


def test_mnist_cnn(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    case = cnn_case()
    rows = run_methods(tmp_path, case)
    print_table(f"mnist-cnn (preset layers), synthetic MNIST-shaped data, {case[3]}", rows)
    assert all(card.reload_identical for _, _, card, _ in rows)


@pytest.mark.skipif(
    not os.environ.get("WORKBENCH_BENCH_COMPILE"), reason="set WORKBENCH_BENCH_COMPILE=1"
)
def test_compiled_paths(tmp_path: Path) -> None:
    """torch.compile on float, torchao dynamic and PT2E static: does compiling change the pick?

    With inductor's freezing on, as PyTorch's x86 PT2E tutorial asks: it folds the weights
    into constants, without which the int8 patterns are not lowered to oneDNN kernels.
    """
    torch.set_num_threads(1)
    import torch._inductor.config as inductor_config

    # Inductor's own lowering warns (e.g. about copy-constructing tensors); not ours to fix.
    with inductor_config.patch(freezing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _compare_compiled(tmp_path)


def _compare_compiled(tmp_path: Path) -> None:
    for name, case in (("MLP 784-2048-2048-10", mlp_case()), ("mnist-cnn", cnn_case())):
        experiment, loaders, state, _ = case
        float_model = build_experiment_model(experiment).module.eval()
        float_model.load_state_dict(state)
        val_x = torch.cat([x for x, _ in loaders.val])
        batch1, batch64 = val_x[:1], val_x[:64]
        print(f"\n{name}: torch.compile (inductor, freezing), 1 thread, ms at batch 1 / 64")
        models = {
            "float eager": float_model,
            "float compiled": torch.compile(copy.deepcopy(float_model)),
            "torchao dynamic compiled": torch.compile(
                maintained.torchao_dynamic(copy.deepcopy(float_model))
            ),
        }
        options = QuantizationOptions(method="static", path="pt2e", calibration_samples=256)
        static = quantize_experiment(
            experiment, state, options, tmp_path / name.split()[0], measure=dataclasses.replace(
                MEASURE, repeats=2, warmup=1), loaders=loaders,
        )  # fmt: skip
        models["PT2E static compiled"] = torch.compile(static.model)
        for method in ("dynamic", "static"):  # the eager path, for comparison in this run
            eager = quantize_experiment(
                experiment, state, dataclasses.replace(options, method=method, path="eager"),
                tmp_path / f"{name.split()[0]}-{method}", loaders=loaders,
                measure=dataclasses.replace(MEASURE, repeats=2, warmup=1),
            )  # fmt: skip
            models[f"eager {method} (not compiled)"] = eager.model
        for label, model in models.items():
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    model(batch1)
                    model(batch64)
            except Exception as exc:  # noqa: BLE001 - a failed compile is a finding, not a crash
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:110]
                print(f"  {label:30s} not available: {type(exc).__name__}: {reason}")
                continue
            warm = time.perf_counter() - started
            latency = measure_latency(model, batch1, batch64, MEASURE)
            print(
                f"  {label:30s} {latency.batch1_ms:8.3f} {latency.batch64_ms:9.2f}"
                f"   (first calls {warm:.0f} s)"
            )
