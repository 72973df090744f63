"""The profile of a training step as plain data: per layer, per phase, peak memory, what-ifs."""

from __future__ import annotations

from dataclasses import dataclass, replace

from workbench.engine.quantization.report import aligned

MEASURED, SKIPPED, NOT_APPLICABLE, NOT_AVAILABLE, FAILED = (
    "measured",
    "skipped",
    "not applicable",
    "not available",
    "failed",
)
HOTTEST_MARK = "<- hottest"


@dataclass(frozen=True)
class LayerProfile:
    """One leaf module: its time (mean over the typical profiled steps), FLOPs and memory."""

    name: str  # qualified name, as model.named_modules() gives it
    type: str
    calls: int  # forward calls per step (a module used twice is timed twice)
    forward_ms: float
    backward_ms: float
    forward_flops: int  # per batch
    backward_flops: int
    parameter_bytes: int  # parameters and buffers
    activation_bytes: int  # tensors saved for the backward, per batch
    output_shape: tuple[int, ...] = ()  # per sample

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms

    @property
    def label(self) -> str:
        return self.name or "(model)"


@dataclass(frozen=True)
class StepSplit:
    """Milliseconds of a step's phases (mean over the typical steps): data loading, forward,
    loss, backward, optimizer."""

    data_ms: float
    forward_ms: float  # the model's forward
    loss_ms: float
    backward_ms: float  # of the loss and the model
    optimizer_ms: float  # step, gradient clipping, zero_grad

    @property
    def total_ms(self) -> float:
        return self.data_ms + self.forward_ms + self.loss_ms + self.backward_ms + self.optimizer_ms


@dataclass(frozen=True)
class WhatIf:
    """One measured alternative: how much faster a training step ran (2.0: twice as fast)."""

    name: str
    status: str  # MEASURED | SKIPPED | NOT_APPLICABLE | NOT_AVAILABLE | FAILED
    detail: str
    speed_ratio: float | None = None


@dataclass(frozen=True)
class MemoryFigures:
    """Peak memory of a step: what was held before it (weights, optimizer state, the batch)
    plus the most the step allocated on top (activations, gradients, temporaries)."""

    held_bytes: int
    step_peak_bytes: int
    how: str

    @property
    def peak_bytes(self) -> int:
        return self.held_bytes + self.step_peak_bytes


@dataclass(frozen=True)
class ProfileReport:
    """Everything `workbench profile` prints; the window draws the same object."""

    device: str
    precision: str
    batch_size: int
    steps: int
    warmup: int
    threads: int
    data_source: str
    real_data: bool
    layers: tuple[LayerProfile, ...]
    loss_forward_ms: float
    loss_backward_ms: float
    step: StepSplit  # plain steps, no hooks: the phase split
    hooked_step: StepSplit  # the steps the layers were timed in (interleaved with the plain)
    memory: MemoryFigures | None
    total_forward_flops: int
    hooks_forward_ms: float = 0.0  # the timing hooks' own time in the timed steps' forward
    hooks_backward_ms: float = 0.0  # ... and backward: profiler overhead, not the model's
    what_ifs: tuple[WhatIf, ...] = ()
    trace_file: str | None = None
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ derived figures
    @property
    def hottest(self) -> LayerProfile | None:
        """The layer that takes the most forward plus backward time."""
        return max(self.layers, key=lambda layer: layer.total_ms, default=None)

    @property
    def layers_forward_ms(self) -> float:
        return sum(layer.forward_ms for layer in self.layers)

    @property
    def layers_backward_ms(self) -> float:
        return sum(layer.backward_ms for layer in self.layers)

    @property
    def measured_forward_ms(self) -> float:
        """The model's forward in the timed steps, less the timing hooks' own time."""
        return self.hooked_step.forward_ms - self.hooks_forward_ms

    @property
    def measured_backward_ms(self) -> float:
        return self.hooked_step.backward_ms - self.hooks_backward_ms

    @property
    def forward_error(self) -> float:
        """|sum of the layers' forward times - the measured forward| / the measured forward:
        the share of the forward that no layer accounts for (or counted twice)."""
        return _error(self.layers_forward_ms, self.measured_forward_ms)

    @property
    def backward_error(self) -> float:
        attributed = self.layers_backward_ms + self.loss_backward_ms
        return _error(attributed, self.measured_backward_ms)

    @property
    def step_error(self) -> float:
        """How far the per-layer times, plus loss, data and optimizer, are from the step."""
        step = self.hooked_step
        attributed = (
            step.data_ms
            + self.layers_forward_ms
            + self.loss_forward_ms
            + self.layers_backward_ms
            + self.loss_backward_ms
            + step.optimizer_ms
        )
        measured = step.total_ms - self.hooks_forward_ms - self.hooks_backward_ms
        return _error(attributed, measured)

    @property
    def hook_overhead(self) -> float:
        """How much longer a step ran with the per-layer hooks than without (0.05: 5 %)."""
        plain = self.step.total_ms - self.step.data_ms
        hooked = self.hooked_step.total_ms - self.hooked_step.data_ms
        return hooked / plain - 1.0 if plain > 0 else 0.0

    def step_share(self, layer: LayerProfile) -> float:
        """The layer's forward and backward time over the step it was timed in."""
        total = self.hooked_step.total_ms
        return layer.total_ms / total if total > 0 else 0.0

    def flops_share(self, layer: LayerProfile) -> float:
        total = self.total_forward_flops
        return layer.forward_flops / total if total > 0 else 0.0

    def layer(self, name: str) -> LayerProfile:
        return next(layer for layer in self.layers if layer.name == name)

    def grouped(self, depth: int = 1) -> tuple[LayerProfile, ...]:
        """The layers summed by the first `depth` parts of their names (`layer1.0.conv1` ->
        `layer1`): the rows of a model's top-level layer list."""
        groups: dict[str, LayerProfile] = {}
        for layer in self.layers:
            key = ".".join(layer.name.split(".")[:depth])
            seen = groups.get(key)
            if seen is None:
                kind = layer.type if key == layer.name else "group"
                groups[key] = replace(layer, name=key, type=kind)
                continue
            groups[key] = replace(
                seen,
                type="group",
                calls=max(seen.calls, layer.calls),
                forward_ms=seen.forward_ms + layer.forward_ms,
                backward_ms=seen.backward_ms + layer.backward_ms,
                forward_flops=seen.forward_flops + layer.forward_flops,
                backward_flops=seen.backward_flops + layer.backward_flops,
                parameter_bytes=seen.parameter_bytes + layer.parameter_bytes,
                activation_bytes=seen.activation_bytes + layer.activation_bytes,
                output_shape=layer.output_shape,
            )
        return tuple(groups.values())

    def text(self) -> str:
        return "\n".join(report_lines(self))


def _error(attributed: float, measured: float) -> float:
    return abs(attributed - measured) / measured if measured > 0 else 0.0


# --------------------------------------------------------------------------- text


def report_lines(report: ProfileReport) -> list[str]:
    threads = f", {report.threads} CPU thread{'s' * (report.threads != 1)}"
    lines = [
        f"Profile of a training step: {report.device}{threads}, {report.precision}, "
        f"batch {report.batch_size}; means over the middle half of {report.steps} steps "
        f"(by time) after {report.warmup} warm-up steps",
        f"  data: {report.data_source}",
        "",
        *_step_lines(report),
        "",
        *_layer_table(report),
        "",
        *_accuracy_lines(report),
    ]
    if report.what_ifs:
        lines += ["", *_what_if_table(report.what_ifs)]
    if report.trace_file:
        lines += [
            "",
            f"Chrome trace: {report.trace_file} (open it in https://ui.perfetto.dev or "
            "chrome://tracing)",
        ]
    if report.notes:
        lines += ["", "Notes:", *(f"  - {note}" for note in report.notes)]
    return lines


def _step_lines(report: ProfileReport) -> list[str]:
    step = report.step
    phases = (
        ("data loading", step.data_ms),
        ("forward", step.forward_ms + step.loss_ms),
        ("backward", step.backward_ms),
        ("optimizer", step.optimizer_ms),
    )
    parts = " | ".join(
        f"{name} {_ms(value)} ({_percent(value / step.total_ms if step.total_ms else 0)})"
        for name, value in phases
    )
    lines = [f"Step: {_ms(step.total_ms)} (plain, no hooks) = {parts}"]
    memory = report.memory
    if memory is not None:
        lines.append(
            f"Peak memory: {_bytes(memory.peak_bytes)} = {_bytes(memory.held_bytes)} held "
            f"(weights, optimizer state, batch) + {_bytes(memory.step_peak_bytes)} at the "
            f"step's peak (activations, gradients); {memory.how}"
        )
    return lines


def _layer_table(report: ProfileReport) -> list[str]:
    hottest = report.hottest
    rows: list[tuple[str, ...]] = [
        (
            "layer",
            "type",
            "forward",
            "backward",
            "step share",
            "fwd FLOPs",
            "FLOPs share",
            "params",
            "activations",
            "",
        )
    ]
    for layer in report.layers:
        rows.append(
            (
                layer.label + (f" (x{layer.calls})" if layer.calls > 1 else ""),
                layer.type,
                _ms(layer.forward_ms),
                _ms(layer.backward_ms),
                _percent(report.step_share(layer)),
                _flops(layer.forward_flops),
                _percent(report.flops_share(layer)),
                _bytes(layer.parameter_bytes),
                _bytes(layer.activation_bytes),
                HOTTEST_MARK if layer is hottest else "",
            )
        )
    loss_ms = report.loss_forward_ms + report.loss_backward_ms
    share = loss_ms / report.hooked_step.total_ms if report.hooked_step.total_ms else 0.0
    rows.append(
        (
            "(loss)",
            "",
            _ms(report.loss_forward_ms),
            _ms(report.loss_backward_ms),
            _percent(share),
            "",
            "",
            "",
            "",
            "",
        )
    )
    right = (False, False, True, True, True, True, True, True, True, False)
    return aligned(rows, right=right)


def _accuracy_lines(report: ProfileReport) -> list[str]:
    hooked = report.hooked_step
    backward_sum = report.layers_backward_ms + report.loss_backward_ms
    hooks_ms = report.hooks_forward_ms + report.hooks_backward_ms
    return [
        f"In the steps the layers were timed in ({_ms(hooked.total_ms)}, "
        f"{_signed_percent(report.hook_overhead)} against a plain step, {_ms(hooks_ms)} of it "
        f"in the timing hooks), the layers' forward times add up to "
        f"{_ms(report.layers_forward_ms)} of the measured {_ms(report.measured_forward_ms)} "
        f"forward (error {_percent(report.forward_error)}), their backward times and the "
        f"loss's to {_ms(backward_sum)} of the measured {_ms(report.measured_backward_ms)} "
        f"backward (error {_percent(report.backward_error)}): the whole step within "
        f"{_percent(report.step_error)}.",
        "FLOPs count matrix products and convolutions (torch.utils.flop_counter); activations "
        "are the tensors a layer keeps for the backward pass, each counted once.",
    ]


def _what_if_table(what_ifs: tuple[WhatIf, ...]) -> list[str]:
    rows: list[tuple[str, ...]] = [("what if", "training step speed", "how")]
    for what_if in what_ifs:
        if what_if.status == MEASURED and what_if.speed_ratio is not None:
            rows.append((what_if.name, _speed(what_if.speed_ratio), what_if.detail))
        else:
            rows.append((what_if.name, "-", f"{what_if.status}: {what_if.detail}"))
    return aligned(rows, right=(False, True, False))


def _speed(ratio: float) -> str:
    """1.25x faster, or 1.60x slower for a ratio of 0.625: never "0.63x faster"."""
    if ratio >= 1.0 or ratio <= 0.0:
        return f"{ratio:.2f}x faster"
    return f"{1.0 / ratio:.2f}x slower"


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def _signed_percent(value: float) -> str:
    return f"{100.0 * value:+.1f}%"


def _percent(value: float) -> str:
    return f"{100.0 * value:.1f}%"


def _bytes(size: int) -> str:
    if size >= 2**20:
        return f"{size / 2**20:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} B"


def _flops(flops: int) -> str:
    if flops >= 10**9:
        return f"{flops / 1e9:.2f} G"
    if flops >= 10**6:
        return f"{flops / 1e6:.2f} M"
    if flops >= 10**3:
        return f"{flops / 1e3:.1f} k"
    return str(flops)
