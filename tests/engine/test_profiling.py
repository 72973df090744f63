"""Profiling a training step layer by layer: mnist-cnn's hottest layer, sums that add up, any
nn.Module by qualified names, memory, the trace, what-ifs, and bad options."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from workbench.engine.devices import available_devices
from workbench.engine.errors import DeviceError
from workbench.engine.experiment import Experiment, load_experiment
from workbench.engine.optimization import make_loss
from workbench.engine.profiling import (
    ProfileCancelled,
    ProfileError,
    ProfileOptions,
    ProfileReport,
    TrainingSetup,
    WhatIfSettings,
    profile_experiment,
    profile_model,
)
from workbench.engine.profiling.report import FAILED, MEASURED, NOT_APPLICABLE, SKIPPED

ROOT = Path(__file__).resolve().parents[2]
FAST_WHAT_IFS = WhatIfSettings(rounds=2, warmup=1)


def mnist_cnn(tmp_path: Path, batch_size: int = 64) -> Experiment:
    """The preset, its data root an empty folder: the profile runs on fake MNIST-shaped data."""
    experiment = load_experiment(ROOT / "resources" / "presets" / "mnist-cnn.toml")
    data = dataclasses.replace(experiment.data, root=str(tmp_path), batch_size=batch_size)
    return dataclasses.replace(experiment, data=data)


@pytest.fixture(scope="module")
def mnist_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[ProfileReport, Path]:
    folder = tmp_path_factory.mktemp("profile")
    trace = folder / "trace.json"
    options = ProfileOptions(steps=10, warmup=3, threads=1, trace=trace, what_ifs=False)
    return profile_experiment(mnist_cnn(folder), options), trace


def test_mnist_cnn_second_conv_is_the_hottest_layer_with_93_percent_of_the_flops(
    mnist_profile: tuple[ProfileReport, Path],
) -> None:
    report, _trace = mnist_profile
    assert [layer.name for layer in report.layers] == [
        "conv1", "relu1", "conv2", "relu2", "pool", "dropout1",
        "flatten", "fc1", "relu3", "dropout2", "fc2", "log_softmax",
    ]  # fmt: skip
    hottest = report.hottest
    assert hottest is not None and hottest.name == "conv2" and hottest.type == "Conv2d"
    assert report.flops_share(hottest) == pytest.approx(0.931, abs=0.002)
    # 24x24 outputs x 64 channels x 32x3x3 inputs = 10,616,832 MACs a sample, 2 FLOPs each.
    assert hottest.forward_flops == 2 * 64 * 10_616_832
    assert hottest.backward_flops == 2 * hottest.forward_flops  # input and weight gradients
    assert report.total_forward_flops == sum(layer.forward_flops for layer in report.layers)
    text = report.text()
    hottest_line = next(line for line in text.splitlines() if "<- hottest" in line)
    assert (
        hottest_line.startswith("conv2 ") and "Conv2d" in hottest_line and "93.1%" in hottest_line
    )


def test_per_layer_times_add_up_to_the_measured_forward_within_15_percent(
    mnist_profile: tuple[ProfileReport, Path],
) -> None:
    report, _trace = mnist_profile
    assert report.forward_error < 0.15, report.text()
    layers_forward = sum(layer.forward_ms for layer in report.layers)
    measured = report.hooked_step.forward_ms - report.hooks_forward_ms
    assert layers_forward == pytest.approx(measured, rel=0.15)
    assert 0 < report.hooks_forward_ms < 0.2 * report.hooked_step.forward_ms
    assert report.step_error < 0.15, report.text()
    for name in ("conv1", "conv2", "fc1", "fc2"):  # layers with weights have a backward
        assert report.layer(name).backward_ms > 0
    assert all(layer.forward_ms > 0 and layer.calls == 1 for layer in report.layers)
    assert f"error {100 * report.forward_error:.1f}%" in report.text()


def test_step_split_memory_and_data_source(mnist_profile: tuple[ProfileReport, Path]) -> None:
    report, _trace = mnist_profile
    step = report.step
    assert min(step.forward_ms, step.backward_ms, step.optimizer_ms) > 0 and step.data_ms >= 0
    assert step.total_ms == pytest.approx(
        step.data_ms + step.forward_ms + step.loss_ms + step.backward_ms + step.optimizer_ms
    )
    assert report.batch_size == 64 and report.threads == 1 and report.steps == 10
    assert "random batches of 64 shaped like mnist [1, 28, 28]" in report.data_source
    assert "not available here" in report.data_source and not report.real_data
    conv2, relu1 = report.layer("conv2"), report.layer("relu1")
    assert conv2.parameter_bytes == (64 * 32 * 9 + 64) * 4
    assert relu1.activation_bytes == 64 * 32 * 26 * 26 * 4  # kept by the ReLU for its backward
    assert relu1.output_shape == (32, 26, 26)
    memory = report.memory
    assert memory is not None
    weights = sum(layer.parameter_bytes for layer in report.layers)
    assert memory.held_bytes > weights  # plus Adadelta's two buffers per parameter and a batch
    assert memory.step_peak_bytes > sum(layer.activation_bytes for layer in report.layers)
    assert memory.peak_bytes == memory.held_bytes + memory.step_peak_bytes
    assert "Peak memory:" in report.text()


def test_the_chrome_trace_names_each_layer_and_phase(
    mnist_profile: tuple[ProfileReport, Path],
) -> None:
    report, trace = mnist_profile
    assert report.trace_file == str(trace)
    events = json.loads(trace.read_text())["traceEvents"]
    names = {event.get("name") for event in events}
    for label in ("layer conv2 (Conv2d)", "forward", "backward", "optimizer", "data loading"):
        assert label in names
    assert not list(trace.parent.glob(".trace.json.*"))  # written atomically, no temp left


class Block(nn.Module):
    """A residual block whose ReLU runs twice and whose add is outside any layer."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))) + x)


class GraphNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, 10)
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


class FixedFeed:
    source = "a fixed test batch"
    real = False

    def __init__(self, batch: int = 16) -> None:
        self.batch = (torch.randn(batch, 3, 16, 16), torch.randint(0, 10, (batch,)))

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch


def cpu_setup(
    model: nn.Module, precision: str = "32-true", channels_last: bool = False
) -> TrainingSetup:
    return TrainingSetup(
        model=model,
        loss_fn=make_loss("cross_entropy"),
        optimizer_factory=lambda params: torch.optim.SGD(params, lr=0.01),
        device=available_devices()[0],
        precision=precision,
        channels_last=channels_last,
    )


def test_any_module_is_profiled_by_qualified_names_and_left_untouched() -> None:
    torch.manual_seed(0)
    model = GraphNet()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    report = profile_model(
        cpu_setup(model), FixedFeed(), ProfileOptions(steps=4, warmup=1, what_ifs=False)
    )
    names = [layer.name for layer in report.layers]
    assert names == [
        "stem",
        "layer1.0.conv1",
        "layer1.0.conv2",
        "layer1.0.relu",
        "layer1.1.conv1",
        "layer1.1.conv2",
        "layer1.1.relu",
        "pool",
        "head",
    ]
    assert report.layer("layer1.0.relu").calls == 2
    assert report.layer("layer1.1.conv2").forward_flops == 2 * 16 * 16 * 16 * 8 * 8 * 9
    assert report.layer("layer1.1.conv2").backward_ms > 0
    assert any("unused" in note for note in report.notes)
    grouped = report.grouped()
    assert [group.name for group in grouped] == ["stem", "layer1", "pool", "head"]
    layer1 = grouped[1]
    assert layer1.type == "group"
    assert layer1.forward_flops == sum(
        layer.forward_flops for layer in report.layers if layer.name.startswith("layer1.")
    )
    assert torch.equal(model.state_dict()["stem.weight"], before["stem.weight"])
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_what_ifs_are_measured_side_by_side_and_compile_is_optional() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
    options = ProfileOptions(steps=2, warmup=1, what_if_settings=FAST_WHAT_IFS)
    report = profile_model(cpu_setup(model), FixedFeed(), options)
    by_name = {what_if.name: what_if for what_if in report.what_ifs}
    assert set(by_name) == {"channels-last", "bf16-mixed", "torch.compile", "batch 32"}
    for name in ("channels-last", "bf16-mixed", "batch 32"):
        assert by_name[name].status == MEASURED and by_name[name].speed_ratio is not None
        assert by_name[name].speed_ratio > 0
    assert by_name["torch.compile"].status == SKIPPED
    assert "--compile" in by_name["torch.compile"].detail
    text = report.text()
    assert "what if" in text and "skipped: ask for it with --compile" in text


def test_a_channels_last_experiment_is_offered_contiguous_and_an_mlp_neither() -> None:
    convolutional = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    options = ProfileOptions(steps=1, warmup=0, what_if_settings=FAST_WHAT_IFS)
    report = profile_model(
        cpu_setup(convolutional, precision="bf16-mixed", channels_last=True), FixedFeed(), options
    )
    names = [what_if.name for what_if in report.what_ifs]
    assert names[:2] == ["contiguous (NCHW)", "32-true"]
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    report = profile_model(cpu_setup(mlp), FixedFeed(), options)
    assert report.what_ifs[0].status == NOT_APPLICABLE


def test_a_failing_compile_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(model: nn.Module) -> nn.Module:
        raise RuntimeError("no C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken_compile)
    settings = dataclasses.replace(FAST_WHAT_IFS, compile=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    options = ProfileOptions(steps=1, warmup=0, what_if_settings=settings)
    report = profile_model(cpu_setup(model), FixedFeed(), options)
    compiled = next(w for w in report.what_ifs if w.name == "torch.compile")
    assert compiled.status == FAILED
    assert compiled.detail == "could not compile: no C++ compiler found"


@pytest.mark.slow
def test_torch_compile_what_if_is_measured() -> None:
    settings = dataclasses.replace(FAST_WHAT_IFS, compile=True)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    options = ProfileOptions(steps=1, warmup=0, what_if_settings=settings)
    report = profile_model(cpu_setup(model), FixedFeed(), options)
    compiled = next(w for w in report.what_ifs if w.name == "torch.compile")
    assert compiled.status in (MEASURED, FAILED), compiled


def test_bad_options_are_named_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="batches: 0 is too few"):
        ProfileOptions(steps=0)
    with pytest.raises(ProfileError, match="threads: 0"):
        ProfileOptions(threads=0)
    with pytest.raises(DeviceError, match="precision '16-mixed' cannot run on cpu"):
        profile_experiment(mnist_cnn(tmp_path), ProfileOptions(device="cpu", precision="16-mixed"))
    with pytest.raises(DeviceError, match="device 'cuda:7' is not available"):
        profile_experiment(mnist_cnn(tmp_path), ProfileOptions(device="cuda:7"))


def test_a_set_stop_event_cancels_the_profile() -> None:
    stop = threading.Event()
    stop.set()
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10))
    with pytest.raises(ProfileCancelled):
        profile_model(cpu_setup(model), FixedFeed(), ProfileOptions(steps=2), stop=stop)


def test_real_data_is_used_where_it_is_here() -> None:
    experiment = load_experiment(ROOT / "resources" / "presets" / "digits-mlp.toml")
    options = ProfileOptions(steps=2, warmup=1, what_ifs=False)
    report = profile_experiment(experiment, options)
    assert report.real_data and report.data_source.startswith("the digits training split")
    assert report.batch_size == 32 and report.step.data_ms > 0
