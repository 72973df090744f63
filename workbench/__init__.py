"""Torch Workbench: train, inspect and quantize PyTorch models by point and click."""

__version__ = "0.1.0"
