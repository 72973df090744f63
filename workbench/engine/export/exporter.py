"""Export an experiment's trained model for deployment, then load the file back and compare it
with PyTorch on a batch of 8 and a batch of 1 (the batch dimension is dynamic)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.export import formats
from workbench.engine.export.formats import FORMATS, SUFFIXES, outputs_of
from workbench.engine.export.quantized import check_supported, describe, is_quantized_file
from workbench.engine.output_files import check_writable
from workbench.engine.sample_data import sample_batch
from workbench.engine.weights import load_weights_for

DEFAULT_ATOL = 1e-4
CHECK_BATCHES = (8, 1)
ProgressCallback = Callable[[str, float], None]


class ExportError(WorkbenchError):
    """An export request that cannot be met as given: the message names the option or file."""


@dataclass(frozen=True)
class BatchCheck:
    """The exported file against PyTorch on one batch."""

    batch_size: int
    max_abs_diff: float  # inf where the outputs' shapes differ
    shapes_match: bool = True


@dataclass(frozen=True)
class ExportResult:
    """What was written, how, and how closely the reloaded file matches PyTorch."""

    format: str
    path: Path
    size_bytes: int
    model_kind: str  # "float32", or e.g. "static int8 (eager mode)"
    how: str
    checked_with: str
    checks: tuple[BatchCheck, ...]
    atol: float
    sample_source: str
    notes: tuple[str, ...] = ()

    @property
    def max_abs_diff(self) -> float:
        return max((check.max_abs_diff for check in self.checks), default=math.inf)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and self.max_abs_diff <= self.atol

    def text(self) -> str:
        lines = [
            f"Exported a {self.model_kind} model to {self.path} ({self.format}, "
            f"{_size(self.size_bytes)})",
            f"  how: {self.how}; dynamic batch dimension",
            f"  checked with {self.checked_with} against PyTorch on {self.sample_source}:",
        ]
        for check in self.checks:
            difference = (
                f"{check.max_abs_diff:.3g}"
                if check.shapes_match
                else "output shapes differ from PyTorch's"
            )
            lines.append(f"    batch {check.batch_size}: largest absolute difference {difference}")
        if self.passed:
            lines.append(f"OK: within --atol {self.atol:g}")
        else:
            lines.append(
                f"FAILED: the largest difference {self.max_abs_diff:.3g} is over --atol "
                f"{self.atol:g}; the file is kept for inspection"
            )
        if self.notes:
            lines += ["Notes:", *(f"  - {note}" for note in self.notes)]
        return "\n".join(lines)


def check_request(
    fmt: str, output: str | Path, opset: int | None, atol: float, force: bool
) -> Path:
    """The output path, once the format, opset, tolerance and folder are known to be usable."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if opset is not None:
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if fmt != "onnx":
            raise ExportError(f"--opset applies to onnx only, not to {fmt}; leave it out")
        if not 7 <= opset <= newest:
            raise ExportError(f"--opset {opset} is out of range; choose 7 to {newest}")
    if not (atol > 0 and math.isfinite(atol)):
        raise ExportError(f"--atol {atol:g} must be a positive number, e.g. 1e-4")
    return check_writable(Path(output), ExportError, force=force)


def export_model(
    model: nn.Module,
    sample: torch.Tensor,
    fmt: str,
    target: Path,
    *,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    model_kind: str = "float32",
    sample_source: str = "a sample batch",
    legacy_onnx: bool = False,
) -> ExportResult:
    """Write `model` as `fmt`, load the file back and compare it with `model` at batch 8 and 1.

    Raises formats.ExportFailed when the exporter refuses the model or the file won't load.
    """
    with contextlib.suppress(NotImplementedError):  # an exported program's module is fixed
        model.eval()
    sample = sample[: max(CHECK_BATCHES)]
    if len(sample) < 2:  # a batch of one would fix the batch dimension at 1 in the export
        sample = torch.cat([sample, sample])
    written = formats.write(fmt, model, sample, target, opset=opset, legacy_onnx=legacy_onnx)
    run, checked_with = formats.load(fmt, target)
    checks = tuple(_check(model, run, sample[:size]) for size in CHECK_BATCHES)
    notes = [*written.notes, *_format_notes(fmt, target, model_kind)]
    return ExportResult(
        format=fmt,
        path=target,
        size_bytes=target.stat().st_size,
        model_kind=model_kind,
        how=written.how,
        checked_with=checked_with,
        checks=checks,
        atol=atol,
        sample_source=sample_source,
        notes=tuple(notes),
    )


def export_experiment(
    experiment: Experiment,
    weights: str | Path,
    fmt: str,
    output: str | Path,
    *,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Export the experiment's model with `weights`: a float checkpoint, or a quantized model
    written by `workbench quantize` (in the formats that can take it)."""
    say = progress or (lambda _text, _fraction: None)
    target = check_request(fmt, output, opset, atol, force)
    weights = Path(weights).expanduser()
    if not weights.is_file():
        raise ExportError(f"--weights {weights}: no such file")
    say("loading the model", 0.0)
    model, kind, legacy = _load_model(experiment, weights, fmt)
    return _export_loaded(experiment, model, fmt, target, opset, atol, say, kind, legacy)


def export_state(
    experiment: Experiment,
    state_dict: Mapping[str, torch.Tensor],
    fmt: str,
    output: str | Path,
    *,
    opset: int | None = None,
    atol: float = DEFAULT_ATOL,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Export the experiment's model with float weights already in memory (the window's
    current model)."""
    say = progress or (lambda _text, _fraction: None)
    target = check_request(fmt, output, opset, atol, force)
    say("building the model", 0.0)
    model = build_experiment_model(experiment).module
    model.load_state_dict(state_dict)
    return _export_loaded(experiment, model, fmt, target, opset, atol, say)


def _export_loaded(
    experiment: Experiment,
    model: nn.Module,
    fmt: str,
    target: Path,
    opset: int | None,
    atol: float,
    say: ProgressCallback,
    kind: str = "float32",
    legacy: bool = False,
) -> ExportResult:
    sample = sample_batch(experiment, model, max(CHECK_BATCHES))
    say(f"exporting to {fmt}", 0.2)
    result = export_model(
        model,
        sample.inputs,
        fmt,
        target,
        opset=opset,
        atol=atol,
        model_kind=kind,
        sample_source=sample.source,
        legacy_onnx=legacy,
    )
    say("done", 1.0)
    return result


def _load_model(experiment: Experiment, weights: Path, fmt: str) -> tuple[nn.Module, str, bool]:
    """The model to export, what kind it is, and whether ONNX needs the older exporter."""
    if not is_quantized_file(weights):
        state = load_weights_for(experiment, weights)
        model = build_experiment_model(experiment).module
        model.load_state_dict(state)
        return model, "float32", False
    from workbench.engine.quantization import load_quantized

    loaded = load_quantized(weights)
    check_supported(loaded.recipe, fmt, weights)
    if loaded.experiment.model != experiment.model:
        raise ExportError(
            f"--weights {weights}: quantized from a different model than the experiment "
            "describes; give the experiment it was quantized from"
        )
    return loaded.module, describe(loaded.recipe), loaded.recipe.path == "eager"


def _check(model: nn.Module, run: formats.Runner, batch: torch.Tensor) -> BatchCheck:
    with torch.no_grad():
        expected = outputs_of(model(batch))
    actual = run(batch)
    if len(expected) != len(actual) or any(
        e.shape != a.shape for e, a in zip(expected, actual, strict=False)
    ):
        return BatchCheck(len(batch), math.inf, shapes_match=False)
    difference = max(
        float((e.float() - a.float()).abs().max()) if e.numel() else 0.0
        for e, a in zip(expected, actual, strict=True)
    )
    return BatchCheck(len(batch), difference)


def _format_notes(fmt: str, target: Path, model_kind: str) -> list[str]:
    notes = []
    if target.suffix != SUFFIXES[fmt]:
        notes.append(f"{target.name} holds {fmt}; the usual suffix is {SUFFIXES[fmt]}")
    if fmt == "torchscript":
        notes.append(
            "TorchScript is deprecated in PyTorch 2; prefer .pt2 or ONNX where your runtime "
            "takes them"
        )
    if fmt == "pt2" and "PT2E" in model_kind:
        notes.append(
            "loading this .pt2 needs `import torchao.quantization.pt2e` first: it registers "
            "the int8 quantize/dequantize ops the graph calls"
        )
    return notes


def _size(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.1f} KiB"
