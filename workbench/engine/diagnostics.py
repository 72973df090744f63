"""Versions and capabilities of this machine, as text for `--version`, Help > Diagnostics and bugs."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from workbench import __version__
from workbench.engine import devices as device_discovery
from workbench.engine.devices import DeviceInfo

PRECISION_NAMES = ("32-true", "16-mixed", "bf16-mixed")
DDP_BACKEND_NAMES = ("gloo", "nccl")
# Settings that change what torch sees or how fast it runs; worth seeing in a bug report.
RELEVANT_ENVIRONMENT = (
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_ENABLE_MPS_FALLBACK",
    "QT_QPA_PLATFORM",
)


@dataclass(frozen=True)
class Capability:
    """Whether this machine can use a precision or DDP backend: where it can, or why it cannot."""

    name: str
    supported: bool
    detail: str  # supported: the devices that offer it; unsupported: the reason

    def line(self, width: int = 11) -> str:
        verdict = "yes" if self.supported else "no "
        return f"  {self.name:<{width}} {verdict}  {self.detail}"


def _version(*packages: str) -> str:
    """The installed version of the first of `packages` found (distributions have aliases)."""
    for package in packages:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _torchvision_version() -> str:
    try:
        import torchvision
    except ImportError:
        return "not installed"
    return str(torchvision.__version__)


def _discover(devices: Sequence[DeviceInfo] | None) -> list[DeviceInfo]:
    # Looked up through the module so that a test's monkeypatch of available_devices shows here.
    return list(devices) if devices is not None else device_discovery.available_devices()


def _has_cuda_device(devices: Sequence[DeviceInfo]) -> bool:
    return any(device.kind == "cuda" for device in devices)


def no_cuda_reason() -> str:
    """Why there is no CUDA device: a CPU-only torch, or no GPU/driver found."""
    if torch.version.cuda is None:
        return "this torch is a CPU-only build"
    return f"none found; this torch is built for CUDA {torch.version.cuda}"


def cuda_text(devices: Sequence[DeviceInfo]) -> str:
    built = torch.version.cuda
    if _has_cuda_device(devices):
        return f"CUDA {built}, available"
    if built is None:
        return "CUDA not available (this torch is a CPU-only build)"
    return f"CUDA not available (torch built for CUDA {built}; no CUDA GPU or driver found)"


def cudnn_text() -> str:
    if not torch.backends.cudnn.is_available():  # type: ignore[no-untyped-call]
        return "cuDNN not available"
    raw = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
    if raw is None:
        return "cuDNN not available"
    # cuDNN 9 reports 92400 for 9.24.0; cuDNN 8 reported 8907 for 8.9.7.
    major, rest = divmod(raw, 10_000) if raw >= 90_000 else divmod(raw, 1_000)
    minor, patch = divmod(rest, 100)
    return f"cuDNN {major}.{minor}.{patch}"


def mps_text(devices: Sequence[DeviceInfo]) -> str:
    if any(device.kind == "mps" for device in devices):
        return "MPS available"
    if sys.platform != "darwin":
        return "MPS not available (needs an Apple-silicon Mac)"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and not mps.is_built():
        return "MPS not available (this torch is built without MPS)"
    return "MPS not available (needs Apple silicon and macOS 12.3 or later)"


def version_text(devices: Sequence[DeviceInfo] | None = None) -> str:
    """Python, torch, torchvision, PySide6, CUDA, cuDNN and MPS: what `--version` prints."""
    found = _discover(devices)
    lines = [
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}",
        f"torch {torch.__version__}",
        f"torchvision {_torchvision_version()}",
        f"PySide6 {_version('PySide6-Essentials', 'PySide6')}",
        cuda_text(found),
        cudnn_text(),
        mps_text(found),
    ]
    return "\n".join(lines)


def devices_text(devices: Sequence[DeviceInfo] | None = None) -> str:
    """Each device with its memory, precisions and DDP backends: what `workbench devices` prints."""
    lines = []
    for device in _discover(devices):
        lines.append(device.label())
        lines.append(f"    precisions: {', '.join(device.precisions)}")
        lines.append(f"    DDP backends: {', '.join(device.ddp_backends) or 'none'}")
    return "\n".join(lines)


def _names(devices: Sequence[DeviceInfo]) -> str:
    return ", ".join(device.name for device in devices)


def _support(
    names: Sequence[str],
    offered: Callable[[DeviceInfo], Sequence[str]],
    reason: Callable[[str, Sequence[DeviceInfo]], str],
    devices: Sequence[DeviceInfo] | None,
) -> list[Capability]:
    """Each name: the devices that offer it, or REASON why none here can."""
    found = _discover(devices)
    result = []
    for name in names:
        offering = [device for device in found if name in offered(device)]
        if offering:
            result.append(Capability(name, True, _names(offering)))
        else:
            result.append(Capability(name, False, reason(name, found)))
    return result


def precision_support(devices: Sequence[DeviceInfo] | None = None) -> list[Capability]:
    """Each precision: the devices that run it, or why none here can."""
    return _support(PRECISION_NAMES, lambda d: d.precisions, _precision_reason, devices)


def _precision_reason(precision: str, devices: Sequence[DeviceInfo]) -> str:
    if precision == "16-mixed":
        if not _has_cuda_device(devices):
            return f"needs a CUDA GPU ({no_cuda_reason()})"
        return "none of the CUDA GPUs here supports float16 autocast"
    if precision == "bf16-mixed":
        return "no device here supports bfloat16; use 32-true"
    return "no device here offers it"


def ddp_backend_support(devices: Sequence[DeviceInfo] | None = None) -> list[Capability]:
    """Each DDP backend: the devices it serves, or why it cannot run here."""
    return _support(DDP_BACKEND_NAMES, lambda d: d.ddp_backends, _backend_reason, devices)


def _backend_reason(backend: str, devices: Sequence[DeviceInfo]) -> str:
    distributed = torch.distributed.is_available()
    if not distributed:
        return "this torch is built without torch.distributed"
    if backend == "nccl":
        if not _has_cuda_device(devices):
            return f"needs CUDA ({no_cuda_reason()})"
        if not torch.distributed.is_nccl_available():
            return "this torch is built without NCCL (as on Windows and macOS); use gloo"
        return "no CUDA device here offers it"
    if backend == "gloo" and not torch.distributed.is_gloo_available():
        return "this torch is built without gloo"
    return "no device here offers it"


def cpu_text() -> str:
    capability = torch.backends.cpu.get_cpu_capability()
    libraries = [
        ("MKL", torch.backends.mkl.is_available()),  # type: ignore[no-untyped-call]
        ("oneDNN", torch.backends.mkldnn.is_available()),  # type: ignore[no-untyped-call]
        ("OpenMP", torch.backends.openmp.is_available()),  # type: ignore[no-untyped-call]
    ]
    library_text = ", ".join(f"{name} {'yes' if present else 'no'}" for name, present in libraries)
    return (
        f"  {os.cpu_count() or '?'} logical cores; torch uses {torch.get_num_threads()} intra-op "
        f"and {torch.get_num_interop_threads()} inter-op threads; vector unit {capability}\n"
        f"  {library_text}"
    )


def _install_text() -> str:
    if getattr(sys, "frozen", False):
        return f"bundle at {os.path.dirname(sys.executable)}"
    return f"Python at {sys.executable}"


def diagnostics_text(devices: Sequence[DeviceInfo] | None = None) -> str:
    """Everything a bug report needs about this machine, as `workbench devices --verbose` prints."""
    found = _discover(devices)
    environment = [
        f"  {name}={os.environ[name]}" for name in RELEVANT_ENVIRONMENT if name in os.environ
    ]
    sections = [
        f"Torch Workbench {__version__} ({_install_text()})\n{version_text(found)}",
        "Devices\n" + _indent(devices_text(found)),
        "CPU\n" + cpu_text(),
        "Precisions\n" + "\n".join(item.line() for item in precision_support(found)),
        "DDP backends\n" + "\n".join(item.line() for item in ddp_backend_support(found)),
        "Environment\n" + ("\n".join(environment) or "  (none of the relevant variables set)"),
    ]
    return "\n\n".join(sections)


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
