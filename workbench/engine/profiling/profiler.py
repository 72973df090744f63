"""Profile a training step layer by layer: what `workbench profile` prints and the window draws.

The recipe, made for a noisy machine: warm-up steps first; then plain steps (no hooks) and
steps with per-layer timing hooks, interleaved so that both see the same load; each kind is
averaged over its middle half by step time (a step another process slowed down is left out).
Plain steps give the phase split (data loading, forward, loss, backward, optimizer); timed
steps give each layer's share, and the report states how far the layers' sum is from the
forward and backward of those same steps. FLOPs, saved activations and peak memory come from
separate passes over one batch, so counting never slows a timed step.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import torch

from workbench.engine.cpu_threads import claim_intra_op_threads
from workbench.engine.devices import check_precision, resolve_device
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.optimization import make_loss, make_optimizer
from workbench.engine.profiling.errors import ProfileCancelled, ProfileError
from workbench.engine.profiling.layer_facts import GLOBAL, layer_flops, parameter_bytes
from workbench.engine.profiling.layer_hooks import ActivationRecorder, LayerTimer, LayerTimes
from workbench.engine.profiling.memory_trace import (
    cuda_peak,
    held_tensors,
    tensor_bytes,
    traced_steps,
)
from workbench.engine.profiling.report import (
    LayerProfile,
    MemoryFigures,
    ProfileReport,
    StepSplit,
    WhatIf,
)
from workbench.engine.profiling.train_step import StepRunner, StepTimes, TrainingSetup
from workbench.engine.profiling.what_ifs import WhatIfSettings, measure_what_ifs
from workbench.engine.quantization.latency import torch_threads
from workbench.engine.sample_data import training_feed
from workbench.engine.trainer import uses_channels_last

ProgressCallback = Callable[[str, float], None]  # (what is happening, fraction done 0..1)
Batch = tuple[torch.Tensor, torch.Tensor]
TRACED_STEPS = 2


class BatchFeed(Protocol):
    """Where the profiled steps get their batches (sample_data.TrainingFeed, or a test's)."""

    source: str
    real: bool

    def next_batch(self) -> Batch: ...


@dataclass(frozen=True)
class ProfileOptions:
    """How to profile: measured steps, warm-up, device and precision overrides, extras."""

    steps: int = 10
    warmup: int = 3
    device: str | None = None  # None: the experiment's train.device
    precision: str | None = None  # None: the experiment's train.precision
    trace: Path | None = None  # write a Chrome trace of two steps here
    threads: int | None = None  # CPU threads while profiling; None: torch's setting
    what_ifs: bool = True
    what_if_settings: WhatIfSettings = field(default_factory=WhatIfSettings)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ProfileError(f"batches: {self.steps} is too few; profile at least 1 step")
        if self.threads is not None and self.threads < 1:
            raise ProfileError(f"threads: {self.threads} is too few; use at least 1")
        if self.warmup < 0:
            raise ProfileError(f"warmup: {self.warmup} cannot be negative")
        if self.what_if_settings.batch_factor < 2:
            raise ProfileError("the larger batch must be at least twice the batch")


def profile_experiment(
    experiment: Experiment,
    options: ProfileOptions | None = None,
    *,
    weights: Mapping[str, torch.Tensor] | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> ProfileReport:
    """Build the experiment's model (with `weights` if given) and profile its training step on
    the experiment's data, or on random batches of its shape where the data is not here."""
    options = options or ProfileOptions()
    setup, feed = experiment_setup(experiment, options, weights)
    return profile_model(setup, feed, options, progress=progress, stop=stop)


def experiment_what_ifs(
    experiment: Experiment,
    options: ProfileOptions | None = None,
    *,
    weights: Mapping[str, torch.Tensor] | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> tuple[WhatIf, ...]:
    """Only the what-ifs of `profile_experiment` (the window measures them on demand)."""
    options = options or ProfileOptions()
    setup, feed = experiment_setup(experiment, options, weights)
    claim_intra_op_threads()
    with torch_threads(options.threads):
        rows = measure_what_ifs(setup, feed.next_batch(), options.what_if_settings, progress, stop)
    return tuple(rows)


def experiment_setup(
    experiment: Experiment,
    options: ProfileOptions,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> tuple[TrainingSetup, BatchFeed]:
    """The experiment's model (with `weights`), trained as configured, and its batches."""
    train = experiment.train
    device = resolve_device(options.device or train.device)
    precision = options.precision or train.precision
    check_precision(device, precision)
    torch.manual_seed(train.seed)
    model = build_experiment_model(experiment).module
    if weights is not None:
        model.load_state_dict(weights)
    feed = training_feed(experiment, model, torch.device(device.name))
    setup = TrainingSetup(
        model=model,
        loss_fn=make_loss(train.loss),
        optimizer_factory=partial(make_optimizer, spec=train),
        device=device,
        precision=precision,
        channels_last=uses_channels_last(train.memory_format, model),
        clip=train.gradient_clip_val,
    )
    return setup, feed


def profile_model(
    setup: TrainingSetup,
    feed: BatchFeed,
    options: ProfileOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
) -> ProfileReport:
    """Profile any nn.Module's training step, as `setup` trains it, on batches from `feed`."""
    options = options or ProfileOptions()
    claim_intra_op_threads()
    with torch_threads(options.threads):
        return _profile(setup, feed, options, progress, stop)


def _profile(
    setup: TrainingSetup,
    feed: BatchFeed,
    options: ProfileOptions,
    progress: ProgressCallback | None,
    stop: threading.Event | None,
) -> ProfileReport:
    say = progress or (lambda _text, _fraction: None)
    runner = setup.runner()
    say("warming up", 0.0)
    for _ in range(options.warmup):
        _timed_step(runner, feed)
    timer = LayerTimer(runner.model, setup.torch_device)
    plain, hooked, per_layer = _time_steps(runner, feed, timer, options.steps, say, stop)
    say("counting FLOPs and activations", 0.6)
    batch = feed.next_batch()
    flops = layer_flops(runner.model, _forward_loss(runner, batch))
    layers = _layer_profiles(runner, timer, per_layer, batch, flops)
    say("measuring peak memory" + (" and writing the trace" if options.trace else ""), 0.65)
    memory = _peak_memory(runner, feed, batch, options.trace)
    what_ifs: tuple[WhatIf, ...] = ()
    if options.what_ifs:
        what_ifs = tuple(
            measure_what_ifs(
                setup,
                batch,
                options.what_if_settings,
                lambda text, done: say(text, 0.7 + 0.3 * done),
                stop,
            )
        )
    say("done", 1.0)
    return ProfileReport(
        device=setup.device.name,
        precision=runner.precision.name,
        batch_size=len(batch[0]),
        steps=options.steps,
        warmup=options.warmup,
        threads=torch.get_num_threads(),
        data_source=feed.source,
        real_data=feed.real,
        layers=layers,
        loss_forward_ms=_mean_ms([t.loss for t in hooked]),
        loss_backward_ms=_mean_ms([ns for _times, ns in per_layer]),
        step=_split(plain),
        hooked_step=_split(hooked),
        memory=memory,
        total_forward_flops=flops[0].get(GLOBAL, 0),
        hooks_forward_ms=_mean_ms([t.hooks_forward_ns for t, _ in per_layer]),
        hooks_backward_ms=_mean_ms([t.hooks_backward_ns for t, _ in per_layer]),
        what_ifs=what_ifs,
        trace_file=str(options.trace) if options.trace else None,
        notes=_notes(timer, layers),
    )


def _time_steps(
    runner: StepRunner,
    feed: BatchFeed,
    timer: LayerTimer,
    steps: int,
    say: ProgressCallback,
    stop: threading.Event | None,
) -> tuple[list[StepTimes], list[StepTimes], list[tuple[LayerTimes, int]]]:
    """Plain steps and steps with the layer timer, interleaved; each kind trimmed to its
    typical steps. Returns the plain steps, the timed steps, and their layer times with the
    loss's backward."""
    plain: list[StepTimes] = []
    hooked: list[StepTimes] = []
    per_layer: list[tuple[LayerTimes, int]] = []
    for index in range(steps):
        if stop is not None and stop.is_set():
            raise ProfileCancelled("profiling cancelled")
        say(f"timing step {index + 1} of {steps}", 0.05 + 0.55 * index / steps)
        plain.append(_timed_step(runner, feed))
        with timer:
            times = _timed_step(runner, feed)
        layer_times = timer.take()
        hooked.append(times)
        per_layer.append((layer_times, _loss_backward_ns(layer_times, runner, times)))
    kept = _typical_indices([times.total for times in hooked])
    return _typical(plain), [hooked[i] for i in kept], [per_layer[i] for i in kept]


def _timed_step(runner: StepRunner, feed: BatchFeed) -> StepTimes:
    """Data loading (next batch, copied to the device) and one training step, timed."""
    runner.sync()
    started = time.perf_counter_ns()
    x, y = feed.next_batch()
    runner.sync()
    return runner.run(x, y, data_ns=time.perf_counter_ns() - started)


def _loss_backward_ns(layer_times: LayerTimes, runner: StepRunner, times: StepTimes) -> int:
    """The loss's backward: from backward() until the first layer's backward begins."""
    first = layer_times.first_backward_ns
    if first is None:
        return times.backward
    return max(first - runner.backward_started_ns, 0)


def _typical_indices(totals: Sequence[int]) -> list[int]:
    """The steps whose time is in the middle half: a step that another process slowed down
    (or an unusually quick one) is left out. All of them when there are fewer than four."""
    order = sorted(range(len(totals)), key=totals.__getitem__)
    if len(order) < 4:
        return order
    keep = (len(order) + 1) // 2
    start = (len(order) - keep) // 2
    return sorted(order[start : start + keep])


def _typical(steps: Sequence[StepTimes]) -> list[StepTimes]:
    return [steps[i] for i in _typical_indices([s.total for s in steps])]


def _mean_ms(values: Sequence[int]) -> float:
    """Means over the same steps add up: the layers' sum is comparable with the step's."""
    return statistics.fmean(values) / 1e6 if values else 0.0


def _split(steps: Sequence[StepTimes]) -> StepSplit:
    return StepSplit(
        data_ms=_mean_ms([s.data for s in steps]),
        forward_ms=_mean_ms([s.forward for s in steps]),
        loss_ms=_mean_ms([s.loss for s in steps]),
        backward_ms=_mean_ms([s.backward for s in steps]),
        optimizer_ms=_mean_ms([s.optimizer for s in steps]),
    )


def _forward_loss(runner: StepRunner, batch: Batch) -> Callable[[], torch.Tensor]:
    x, y = batch

    def forward() -> torch.Tensor:
        with runner.precision.forward_context():
            return runner.loss_fn(runner.model(x), y)

    return forward


def _layer_profiles(
    runner: StepRunner,
    timer: LayerTimer,
    per_layer: Sequence[tuple[LayerTimes, int]],
    batch: Batch,
    flops: tuple[dict[str, int], dict[str, int]],
) -> tuple[LayerProfile, ...]:
    forward_flops, backward_flops = flops
    with ActivationRecorder(runner.model) as recorder:
        _forward_loss(runner, batch)()
    runner.model.zero_grad(set_to_none=True)
    saved = recorder.result
    rows = []
    for name, module in timer.layers:
        calls = max((times.calls.get(name, 0) for times, _ in per_layer), default=0)
        if calls == 0:
            continue
        rows.append(
            LayerProfile(
                name=name,
                type=type(module).__name__,
                calls=calls,
                forward_ms=_mean_ms([t.forward_ns.get(name, 0) for t, _ in per_layer]),
                backward_ms=_mean_ms([t.backward_ns.get(name, 0) for t, _ in per_layer]),
                forward_flops=forward_flops.get(name, 0),
                backward_flops=backward_flops.get(name, 0),
                parameter_bytes=parameter_bytes(module),
                activation_bytes=saved.saved.get(name, 0),
                output_shape=saved.output_shapes.get(name, ()),
            )
        )
    return tuple(rows)


def _peak_memory(
    runner: StepRunner, feed: BatchFeed, batch: Batch, trace: Path | None
) -> MemoryFigures | None:
    """On CUDA the allocator's own peak; elsewhere the allocations torch.profiler records."""
    device = runner.device
    held = tensor_bytes(held_tensors(runner.model, runner.optimizer, batch))

    def step() -> None:
        with torch.profiler.record_function("data loading"):
            x, y = feed.next_batch()
        runner.run(x, y, labelled=True)

    traced_peak = None
    if trace is not None or device.type != "cuda":
        traced_peak = traced_steps(runner.model, step, device, TRACED_STEPS, trace)
    if device.type == "cuda":
        peak = cuda_peak(partial(runner.run, *batch), device)
        return MemoryFigures(held, peak, "torch.cuda.max_memory_allocated over one step")
    if traced_peak is None:
        return None
    return MemoryFigures(held, traced_peak, "allocations recorded by torch.profiler")


def _notes(timer: LayerTimer, layers: Sequence[LayerProfile]) -> tuple[str, ...]:
    profiled = {layer.name for layer in layers}
    unused = [name for name, _ in timer.layers if name not in profiled]
    if not unused:
        return ()
    shown = ", ".join(unused[:6]) + (f" and {len(unused) - 6} more" if len(unused) > 6 else "")
    return (f"not called in the forward pass, so not listed: {shown}",)
