"""Versions and capabilities of this machine, as text for `--version` and bug reports."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from workbench.engine.devices import available_devices


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    cuda = torch.version.cuda if torch.cuda.is_available() else "not available"
    mps = getattr(torch.backends, "mps", None)
    lines = [
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"torch {torch.__version__}",
        f"torchvision {_version('torchvision')}",
        f"PySide6 {_version('PySide6-Essentials')}",
        f"CUDA {cuda}",
        f"MPS {'available' if mps is not None and mps.is_available() else 'not available'}",
    ]
    return "\n".join(lines)


def devices_text() -> str:
    lines = []
    for device in available_devices():
        lines.append(device.label())
        lines.append(f"    precisions: {', '.join(device.precisions)}")
        lines.append(f"    DDP backends: {', '.join(device.ddp_backends) or 'none'}")
    return "\n".join(lines)
