"""Deployment files from a trained model: ONNX, .pt2 and TorchScript, each checked on reload."""

from workbench.engine.export.exporter import (
    CHECK_BATCHES,
    DEFAULT_ATOL,
    BatchCheck,
    ExportError,
    ExportResult,
    check_request,
    export_experiment,
    export_model,
    export_state,
)
from workbench.engine.export.formats import FORMATS, SUFFIXES, ExportFailed
from workbench.engine.export.quantized import UnsupportedExport, is_quantized_file

__all__ = [
    "CHECK_BATCHES",
    "DEFAULT_ATOL",
    "FORMATS",
    "SUFFIXES",
    "BatchCheck",
    "ExportError",
    "ExportFailed",
    "ExportResult",
    "UnsupportedExport",
    "check_request",
    "export_experiment",
    "export_model",
    "export_state",
    "is_quantized_file",
]
