"""Quantize an experiment's trained model (dynamic, static or QAT) and measure what it changed.

One call does the whole job the CLI and the window offer: load the data and the float
weights, quantize by the chosen method and path, save the int8 model, load it back, and
build the report card from the reloaded model on the validation data.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.engine.atomic import atomic_write_text
from workbench.engine.checkpoints.reconcile import load_strict
from workbench.engine.datasets import Loaders
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model, experiment_loaders
from workbench.engine.optimization import make_loss, make_optimizer
from workbench.engine.own_model import explained_trace_failure
from workbench.engine.quantization import legacy_eager, maintained
from workbench.engine.quantization.latency import (
    MeasureSettings,
    inference_options,
    measure_side_by_side,
)
from workbench.engine.quantization.recipe import (
    MAINTAINED_PATH,
    QuantizationCancelled,
    QuantizationError,
    QuantizationOptions,
    Recipe,
    check_backend,
    machine_backend,
)
from workbench.engine.quantization.report import ModelFigures, ReportCard, evaluate
from workbench.engine.quantization.saving import default_file_name, load_quantized, save_quantized
from workbench.engine.quantization.sequence_report import (
    fast_path_options,
    is_token_model,
    sequence_figures,
)
from workbench.engine.task import task_kind, task_loss

ProgressCallback = Callable[[str, float], None]  # (what is happening, fraction done 0..1)
Batch = tuple[torch.Tensor, torch.Tensor]
PROGRESS_INTERVAL_SECONDS = 0.05

# Why `auto` takes the eager path on this kind of machine (measured: docs/quantization.md).
EAGER_REASONS = {
    "dynamic": "auto: fbgemm's int8 Linear kernels measured faster on this CPU than torchao's "
    "int8 dynamic-activation/int8-weight, eager or compiled",
    "static": "auto: eager int8 kernels run without a compiler; the PT2E int8 graph is slower "
    "than float until torch.compile lowers it, and slower than eager int8 even then",
    "qat": "auto: converts to the same eager int8 kernels as static (see static)",
}
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class QuantizationOutcome:
    """The report card, the reloaded int8 model, and the two files written."""

    report: ReportCard
    model: nn.Module
    model_path: Path
    report_path: Path


def choose_path(method: str, requested: str = "auto") -> tuple[str, str]:
    """The implementation to use for `method` and why: eager API where it exists and wins."""
    if requested == "eager" and not legacy_eager.eager_api_available():
        raise QuantizationError(
            "path 'eager': this torch has no torch.ao.quantization eager API or quantized "
            f"engine; use path '{MAINTAINED_PATH[method]}' or auto"
        )
    if requested in ("torchao", "pt2e") and not maintained.torchao_available():
        raise QuantizationError(f"path '{requested}' needs torchao; install torchao or use auto")
    if requested != "auto":
        return requested, "asked for"
    if legacy_eager.eager_api_available():
        return "eager", EAGER_REASONS[method]
    if maintained.torchao_available():
        reason = "auto: this torch has no eager quantization API; using torchao"
        return MAINTAINED_PATH[method], reason
    raise QuantizationError(
        "no quantization backend: this torch lacks torch.ao.quantization and torchao is not "
        "installed; install torchao (pip install torchao)"
    )


def resolve_output(output: str | Path, method: str, path: str) -> Path:
    """OUT is the model file, or a folder (existing, or named without a suffix) to put it in."""
    output = Path(output).expanduser()
    if output.is_dir() or not output.suffix:
        return output / default_file_name(method, path)
    return output


def report_path_for(model_path: Path) -> Path:
    return model_path.with_name(f"{model_path.stem}.report.json")


def quantize_experiment(
    experiment: Experiment,
    state_dict: Mapping[str, torch.Tensor],
    options: QuantizationOptions,
    output: str | Path,
    *,
    measure: MeasureSettings | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    loaders: Loaders | None = None,
) -> QuantizationOutcome:
    """Quantize, save to `output`, reload, and report; QuantizationCancelled when `stop` is set.

    Calibration, QAT and the report use the experiment's data, or `loaders` when given (e.g.
    synthetic batches where the dataset cannot be downloaded). Nothing is left at `output` by
    a run that fails or is cancelled: the model is written under a temporary name and moved
    into place with its report at the very end.
    """
    run = _Run(experiment, options, measure or MeasureSettings(), progress, stop)
    return run.execute(state_dict, output, loaders)


class _Run:
    """One quantization job; holds the data so each stage stays a short method."""

    def __init__(
        self,
        experiment: Experiment,
        options: QuantizationOptions,
        measure: MeasureSettings,
        progress: ProgressCallback | None,
        stop: threading.Event | None,
    ) -> None:
        self.experiment = experiment
        self.options = options
        self.measure = measure
        self._progress_callback = progress
        self._last_progress = 0.0
        self.stop = stop
        self.backend = check_backend(options.backend) if options.backend else machine_backend()
        self.path, self.path_reason = choose_path(options.method, options.path)
        self.notes: list[str] = []

    # ------------------------------------------------------------------ plumbing
    def progress(self, text: str, fraction: float, force: bool = True) -> None:
        now = time.monotonic()
        if self._progress_callback is None:
            return
        if force or now - self._last_progress >= PROGRESS_INTERVAL_SECONDS:
            self._last_progress = now
            self._progress_callback(text, min(max(fraction, 0.0), 1.0))

    def check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise QuantizationCancelled("quantization cancelled; nothing was written")

    # ------------------------------------------------------------------ the job
    def execute(
        self, state_dict: Mapping[str, torch.Tensor], output: str | Path, loaders: Loaders | None
    ) -> QuantizationOutcome:
        self.progress("loading data and the float model", 0.0)
        self.loaders = loaders or experiment_loaders(self.experiment)
        self.built = build_experiment_model(self.experiment)
        float_model = self.built.module
        load_strict(float_model, {k: v.detach().cpu() for k, v in state_dict.items()})
        float_model.eval()
        self.val_batches: list[Batch] = list(self.loaders.val)
        if not self.val_batches:
            raise QuantizationError(
                "data.val_split: the experiment has no validation samples to measure on; "
                "set data.val_split above 0"
            )
        self.calibration = self._calibration_batches()
        self.sample = self.calibration[0]
        self.check_stop()

        quantized, recipe = self._quantize(float_model)
        model_path = resolve_output(output, recipe.method, recipe.path)
        partial = model_path.with_name(f".{model_path.name}.partial")
        try:
            return self._save_and_report(float_model, quantized, recipe, model_path, partial)
        finally:
            partial.unlink(missing_ok=True)

    def _save_and_report(
        self,
        float_model: nn.Module,
        quantized: nn.Module,
        recipe: Recipe,
        model_path: Path,
        partial: Path,
    ) -> QuantizationOutcome:
        self.progress("saving and reloading the int8 model", 0.55)
        save_quantized(quantized, recipe, self.experiment, partial, self.sample)
        loaded = load_quantized(partial).module
        self.check_stop()
        card = self._report(float_model, quantized, loaded, recipe, partial, model_path)
        os.replace(partial, model_path)
        report_path = report_path_for(model_path)
        atomic_write_text(report_path, card.to_json())
        self.progress("done", 1.0)
        return QuantizationOutcome(card, loaded, model_path, report_path)

    def _calibration_batches(self) -> list[torch.Tensor]:
        """The first N training samples (in the seeded epoch-0 order), as batches."""
        wanted = self.options.calibration_samples
        batches: list[torch.Tensor] = []
        taken = 0
        self.loaders.train.set_epoch(0)
        for x, _y in self.loaders.train:
            batches.append(x[: wanted - taken])
            taken += len(batches[-1])
            if taken >= wanted:
                break
        if not batches:
            raise QuantizationError(
                "the experiment's training split is empty; nothing to calibrate on"
            )
        if len(batches[0]) < 2:  # export and BatchNorm want a batch of at least two
            batches[0] = torch.cat([batches[0], batches[0]])
        return batches

    # ------------------------------------------------------------------ methods
    def _quantize(self, float_model: nn.Module) -> tuple[nn.Module, Recipe]:
        method = self.options.method
        self.progress(f"quantizing: {method} ({self.path})", 0.05)
        if method == "dynamic":
            model = self._dynamic(float_model)
            fused: list[list[str]] = []
            float_layers: list[int] = []
        else:
            self._graphs_through_export(float_model)
            if self.path == "pt2e":
                model, float_layers = self._pt2e(float_model)
                fused = []
            else:
                assert isinstance(float_model, nn.Sequential)
                model, fused, float_layers = self._eager_static(float_model)
        recipe = Recipe(
            method=method,
            path=self.path,
            backend=self.backend,
            observer=self.options.observer if method == "static" else "",
            fused=tuple(tuple(group) for group in fused),
            float_layers=tuple(sorted(float_layers)),
            calibration_samples=sum(len(x) for x in self.calibration) if method == "static" else 0,
            qat_epochs=self.options.qat_epochs if method == "qat" else 0,
            path_reason=self.path_reason,
            notes=tuple(self.notes),
        )
        return model, recipe

    def _graphs_through_export(self, model: nn.Module) -> None:
        """The eager API fuses and stubs a plain layer stack; a graph model (skip connections,
        blocks) is quantized from its traced graph instead, through torch.export (PT2E)."""
        if self.path != "eager" or legacy_eager.is_layer_stack(model):
            return
        if self.options.path == "eager":
            raise QuantizationError(
                "path 'eager' quantizes a plain layer stack; this model has skip connections "
                "or blocks: use path 'pt2e' (or auto), which quantizes its traced graph"
            )
        if not maintained.torchao_available():
            raise QuantizationError(
                "a model with skip connections or blocks is quantized through torch.export "
                "(PT2E), which needs torchao; install torchao (pip install torchao)"
            )
        self.path = "pt2e"
        self.path_reason = (
            "auto: the model has skip connections or blocks; the eager API quantizes plain "
            "layer stacks only, so its traced graph is quantized (PT2E)"
        )

    def _dynamic(self, float_model: nn.Module) -> nn.Module:
        covered = [m for m in float_model.modules() if isinstance(m, legacy_eager.DYNAMIC_TYPES)]
        if self.path == "torchao":
            covered = [m for m in covered if isinstance(m, nn.Linear)]
        if not covered:
            raise QuantizationError(
                "dynamic quantization converts Linear (and LSTM/GRU) layers, and this model has "
                "none; use --method static or qat"
            )
        for index, (name, layer) in enumerate(float_model.named_children()):
            convolutions = [m for m in layer.modules() if isinstance(m, _CONVOLUTIONS)]
            if convolutions:
                self.notes.append(
                    f"{_layer_text(index, name, layer)}: dynamic quantization covers Linear "
                    "and LSTM/GRU only; kept in float (static or qat quantize convolutions)"
                )
        if self.path == "torchao":
            return maintained.torchao_dynamic(copy.deepcopy(float_model))
        return legacy_eager.quantize_dynamic(copy.deepcopy(float_model), self.backend)

    def _eager_static(self, model: nn.Sequential) -> tuple[nn.Module, list[list[str]], list[int]]:
        qat = self.options.method == "qat"
        plan = legacy_eager.plan_static(model, self.sample, self.backend, qat=qat)
        for _attempt in range(len(model)):
            self._refuse_all_float(model, plan.float_layers)
            if qat:
                prepared = legacy_eager.prepare_qat(model, plan, self.backend)
                self._fine_tune(prepared, legacy_eager.freeze_qat, legacy_eager.quiet)
            else:
                prepared = legacy_eager.prepare_static(
                    model, plan, self.backend, self.options.observer
                )
                self._calibrate(functools.partial(legacy_eager.observe, prepared))
            converted = legacy_eager.convert(prepared, self.backend)
            failing = legacy_eager.failing_layer(converted, self.sample)
            if failing is None:
                self.notes.extend(plan.notes)
                return converted, plan.fused, sorted(plan.float_layers)
            plan.float_layers.add(failing)
            plan.notes.append(legacy_eager.float_note(failing, model[failing], self.backend))
        raise QuantizationError("no layer of this model could run in int8; nothing to quantize")

    def _refuse_all_float(self, model: nn.Module, float_layers: set[int]) -> None:
        quantizable = [
            i
            for i, layer in enumerate(model.children())
            if any(isinstance(m, (nn.Linear, *_CONVOLUTIONS)) for m in layer.modules())
        ]
        if quantizable and all(i in float_layers for i in quantizable):
            raise QuantizationError("no Linear or convolution layer can run in int8 here")
        if not quantizable:
            raise QuantizationError(
                "static and qat quantization need a Linear or convolution layer; this model has none"
            )

    def _pt2e(self, model: nn.Module) -> tuple[nn.Module, list[int]]:
        qat = self.options.method == "qat"
        self._refuse_all_float(model, set())
        with explained_trace_failure(self.built.code, f"{self.options.method} quantization"):
            prepared = maintained.pt2e_prepare(
                copy.deepcopy(model), self.sample, self.backend, self.options.observer, qat=qat
            )
        float_layers = maintained.pt2e_float_layers(prepared, model)
        children = list(model.children())
        self.notes.extend(
            maintained.pt2e_float_note(i, children[i], self.backend) for i in float_layers
        )
        if qat:
            self._fine_tune(prepared, maintained.pt2e_freeze, maintained.quiet)
        else:
            self._calibrate(functools.partial(maintained.pt2e_observe, prepared))
        self.notes.append(
            "PT2E int8 graphs run as quantize/dequantize around float kernels until "
            "torch.compile lowers them; the latency above is without compiling"
        )
        return maintained.pt2e_convert(prepared, qat=qat), float_layers

    def _calibrate(self, observe: Callable[[list[torch.Tensor]], None]) -> None:
        for index, batch in enumerate(self.calibration):
            self.check_stop()
            observe([batch])
            self.progress("calibrating", 0.05 + 0.45 * (index + 1) / len(self.calibration), False)

    def _fine_tune(
        self,
        model: nn.Module,
        freeze: Callable[[torch.fx.GraphModule], None] | Callable[[nn.Module], None],
        quiet: Callable[[], object],
    ) -> None:
        """QAT: the experiment's optimizer and loss at a fraction of its learning rate."""
        train = self.experiment.train
        spec = dataclasses.replace(train, lr=train.lr * self.options.qat_lr_scale)
        optimizer = make_optimizer(model.parameters(), spec)
        loss_fn = make_loss(train.loss)
        epochs, batches = self.options.qat_epochs, len(self.loaders.train)
        torch.manual_seed(train.seed)
        with quiet():  # type: ignore[attr-defined]
            for epoch in range(1, epochs + 1):
                if epochs > 1 and epoch == epochs:
                    freeze(model)  # type: ignore[arg-type]
                model.train()
                self.loaders.train.set_epoch(epoch)
                for index, (x, y) in enumerate(self.loaders.train):
                    self.check_stop()
                    loss = loss_fn(model(x), y)
                    if not math.isfinite(loss.item()):
                        raise QuantizationError(
                            f"QAT loss became {loss.item()} in epoch {epoch}; lower the learning "
                            "rate (train.lr) or the QAT learning-rate scale"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]
                    if train.gradient_clip_val is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), train.gradient_clip_val)
                    optimizer.step()
                    done = (epoch - 1 + (index + 1) / batches) / epochs
                    last = index + 1 == batches  # each epoch's end always shows
                    self.progress(f"QAT epoch {epoch}/{epochs}", 0.05 + 0.45 * done, last)
        model.eval()

    # ------------------------------------------------------------------ the report
    def _report(
        self,
        float_model: nn.Module,
        quantized: nn.Module,
        loaded: nn.Module,
        recipe: Recipe,
        saved: Path,
        final_path: Path,
    ) -> ReportCard:
        info = self.loaders.info
        loss = self.experiment.train.loss
        self.progress("evaluating accuracy", 0.6)
        float_eval = evaluate(float_model, self.val_batches, loss, info.num_classes)
        before_save = evaluate(quantized, self.val_batches, loss, info.num_classes)
        after_load = evaluate(loaded, self.val_batches, loss, info.num_classes)
        identical = _same_predictions(before_save.predictions, after_load.predictions)
        batch1, batch64 = self._latency_inputs()
        self.progress("measuring float and int8 latency", 0.65)
        float_latency, int8_latency = measure_side_by_side(
            [float_model, loaded], batch1, batch64, self.measure, stop=self.stop
        )
        extra = {}
        if is_token_model(self.sample):
            self.progress("measuring validation loss and latency per token", 0.75)
            kind = task_kind(self.experiment.data)
            extra = sequence_figures(
                float_model,
                loaded,
                self.val_batches,
                task_loss(loss, kind),
                int(self.sample.shape[1]),
                self.measure,
                self.stop,
            )
        options = []
        if self.measure.inference_options:
            self.progress("measuring inference options", 0.85)
            options = inference_options(float_model, batch1, batch64, self.measure, self.stop)
            options += fast_path_options(float_model, batch1, batch64, self.measure, self.stop)
        return ReportCard(
            method=recipe.method,
            path=recipe.path,
            path_reason=recipe.path_reason,
            backend=recipe.backend,
            dataset=info.name,
            val_samples=float_eval.samples,
            class_names=info.class_names,
            threads=self.measure.threads or torch.get_num_threads(),
            float_model=ModelFigures(
                float_eval.accuracy, float_eval.per_class, _saved_size(float_model), float_latency
            ),
            quantized=ModelFigures(
                after_load.accuracy, after_load.per_class, saved.stat().st_size, int8_latency
            ),
            options=tuple(options),
            notes=recipe.notes,
            calibration_samples=recipe.calibration_samples,
            qat_epochs=recipe.qat_epochs,
            observer=recipe.observer,
            model_file=str(final_path),
            reload_identical=identical,
            extra=extra,
        )

    def _latency_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([batch[0] for batch in self.val_batches])
        while len(x) < 64:
            x = torch.cat([x, x])
        return x[:1].contiguous(), x[:64].contiguous()


def _layer_text(index: int, name: str, layer: nn.Module) -> str:
    """`layer 0 (Conv2d)`, or with its name when it has one: `layer 3 'layer1' (Sequential)`."""
    named = "" if name == str(index) else f" '{name}'"
    return f"layer {index}{named} ({type(layer).__name__})"


def _same_predictions(before: torch.Tensor | None, after: torch.Tensor | None) -> bool | None:
    if before is None or after is None:
        return None
    return bool(torch.equal(before, after))


def _saved_size(model: nn.Module) -> int:
    """Bytes of `torch.save(model.state_dict())`, the float model as the trainer writes it."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes
