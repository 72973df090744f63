"""Device discovery: the one place that asks torch about hardware, so tests can monkeypatch it."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from workbench.engine.errors import DeviceError

AUTO_ORDER = ("cuda", "mps")  # device "auto": the first kind present, else the CPU


@dataclass(frozen=True)
class DeviceInfo:
    """A device this machine offers and what it can do."""

    name: str  # torch device string: "cpu", "cuda:0", "mps"
    description: str  # human name, e.g. "NVIDIA H100 80GB HBM3"
    memory_bytes: int | None
    precisions: tuple[str, ...]
    ddp_backends: tuple[str, ...]

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]

    def label(self) -> str:
        memory = f", {self.memory_bytes / 2**30:.1f} GiB" if self.memory_bytes else ""
        return f"{self.name} — {self.description}{memory}"


def _cpu_description() -> str:
    return f"CPU, {torch.get_num_threads()} threads"


def available_devices() -> list[DeviceInfo]:
    """List cpu, every CUDA device and MPS, each with its precisions and DDP backends."""
    cpu_backends = ("gloo",) if torch.distributed.is_available() else ()
    devices = [DeviceInfo("cpu", _cpu_description(), None, ("32-true", "bf16-mixed"), cpu_backends)]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            precisions = ["32-true", "16-mixed"]
            if torch.cuda.is_bf16_supported(including_emulation=False):
                precisions.append("bf16-mixed")
            backends = ["gloo"]
            if torch.distributed.is_available() and torch.distributed.is_nccl_available():
                backends.insert(0, "nccl")
            devices.append(
                DeviceInfo(
                    f"cuda:{index}",
                    props.name,
                    props.total_memory,
                    tuple(precisions),
                    tuple(backends),
                )
            )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(DeviceInfo("mps", "Apple Metal (MPS)", None, ("32-true", "bf16-mixed"), ()))
    return devices


def resolve_device(requested: str, devices: list[DeviceInfo] | None = None) -> DeviceInfo:
    """Turn `auto`, `cpu`, `cuda`, `cuda:N` or `mps` into a present device, or explain why not."""
    devices = available_devices() if devices is None else devices
    by_name = {device.name: device for device in devices}
    if requested == "auto":
        for kind in AUTO_ORDER:
            for device in devices:
                if device.kind == kind:
                    return device
        return by_name["cpu"]
    wanted = "cuda:0" if requested == "cuda" else requested
    if wanted in by_name:
        return by_name[wanted]
    present = ", ".join(["auto", *by_name])
    if wanted.startswith("cuda"):
        reason = (
            "this machine has no CUDA GPU"
            if not any(d.kind == "cuda" for d in devices)
            else (f"there is no GPU {wanted}")
        )
    elif wanted == "mps":
        reason = (
            "MPS needs an Apple-silicon Mac" if sys.platform != "darwin" else "MPS is not available"
        )
    else:
        reason = "it is not a device name"
    raise DeviceError(f"device {requested!r} is not available: {reason}; choose one of {present}")


def check_precision(device: DeviceInfo, precision: str) -> None:
    """Refuse precisions the device cannot run, with the reason and the alternative."""
    if precision in device.precisions:
        return
    if precision == "16-mixed" and device.kind == "cpu":
        reason = "float16 mixed precision needs a CUDA GPU; on the CPU use bf16-mixed or 32-true"
    elif precision == "16-mixed" and device.kind == "mps":
        reason = "float16 mixed precision with GradScaler is not supported on MPS; use 32-true"
    elif precision == "bf16-mixed":
        reason = f"{device.description} has no bfloat16 support; use 16-mixed or 32-true"
    else:
        reason = f"choose one of {', '.join(device.precisions)}"
    raise DeviceError(f"precision {precision!r} cannot run on {device.name}: {reason}")
