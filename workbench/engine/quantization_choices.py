"""Quantization methods, paths and observers by name, importable without PyTorch (for --help)."""

from __future__ import annotations

METHODS = ("dynamic", "static", "qat")
PATHS = ("auto", "eager", "torchao", "pt2e")
OBSERVERS = ("histogram", "minmax", "moving_average")
