"""Quantization and inference lab: dynamic, static and QAT int8 models and a float-vs-int8 report."""

from workbench.engine.quantization.latency import (
    InferenceOption,
    Latency,
    MeasureSettings,
    inference_options,
    measure_latency,
)
from workbench.engine.quantization.methods import (
    QuantizationOutcome,
    choose_path,
    quantize_experiment,
    report_path_for,
    resolve_output,
)
from workbench.engine.quantization.recipe import (
    METHODS,
    OBSERVERS,
    PATHS,
    QuantizationCancelled,
    QuantizationError,
    QuantizationOptions,
    Recipe,
    machine_backend,
)
from workbench.engine.quantization.report import Evaluation, ModelFigures, ReportCard, evaluate
from workbench.engine.quantization.saving import LoadedQuantized, load_quantized, save_quantized

__all__ = [
    "METHODS",
    "OBSERVERS",
    "PATHS",
    "Evaluation",
    "InferenceOption",
    "Latency",
    "LoadedQuantized",
    "MeasureSettings",
    "ModelFigures",
    "QuantizationCancelled",
    "QuantizationError",
    "QuantizationOptions",
    "QuantizationOutcome",
    "Recipe",
    "ReportCard",
    "choose_path",
    "evaluate",
    "inference_options",
    "load_quantized",
    "machine_backend",
    "measure_latency",
    "quantize_experiment",
    "report_path_for",
    "resolve_output",
    "save_quantized",
]
