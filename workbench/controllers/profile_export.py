"""The window's Profile and Export Model calls: the same engine functions the CLI runs, as jobs."""

from __future__ import annotations

import threading
from pathlib import Path

from workbench.controllers.model_job import Progress, Weights, Work
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment
from workbench.engine.export import (
    DEFAULT_ATOL,
    ExportError,
    ExportFailed,
    ExportResult,
    export_experiment,
    export_state,
)
from workbench.engine.output_files import check_writable
from workbench.engine.profiling import (
    ProfileOptions,
    ProfileReport,
    WhatIf,
    WhatIfSettings,
    experiment_what_ifs,
    profile_experiment,
)


class ExportProblem(WorkbenchError):
    """The exporter refused the model, or the file it wrote did not load back."""


def profile_work(experiment: Experiment, weights: Weights, steps: int, trace: Path) -> Work:
    """Profile the training step (no what-ifs: the window measures them on demand)."""
    options = ProfileOptions(steps=steps, warmup=min(3, steps), trace=trace, what_ifs=False)

    def work(progress: Progress, stop: threading.Event) -> ProfileReport:
        return profile_experiment(
            experiment, options, weights=weights, progress=progress, stop=stop
        )

    return work


def what_ifs_work(experiment: Experiment, weights: Weights, compile_too: bool) -> Work:
    """channels-last, bf16-mixed, a larger batch and (if asked) torch.compile, measured."""
    options = ProfileOptions(what_if_settings=WhatIfSettings(compile=compile_too))

    def work(progress: Progress, stop: threading.Event) -> tuple[WhatIf, ...]:
        return experiment_what_ifs(
            experiment, options, weights=weights, progress=progress, stop=stop
        )

    return work


def export_work(
    experiment: Experiment,
    fmt: str,
    output: Path,
    *,
    weights: Weights | None = None,
    quantized_file: Path | None = None,
    atol: float = DEFAULT_ATOL,
) -> Work:
    """Export `weights` (the current model) or a quantized model file, checked on reload."""

    def work(progress: Progress, _stop: threading.Event) -> ExportResult:
        target = check_writable(output, ExportError, flag="Output file")
        try:
            if quantized_file is not None:
                return export_experiment(
                    experiment,
                    quantized_file,
                    fmt,
                    target,
                    atol=atol,
                    force=True,
                    progress=progress,
                )
            if weights is None:
                raise ExportError("No model to export: train one or load its weights first")
            return export_state(
                experiment, weights, fmt, target, atol=atol, force=True, progress=progress
            )
        except ExportFailed as exc:
            raise ExportProblem(f"The {fmt} export failed: {exc}") from None

    return work
