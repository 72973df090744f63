"""Memory in use, for the status bar: this process's resident memory and the GPU's allocations."""

from __future__ import annotations

import os
import resource
import sys

import torch


def resident_bytes() -> int:
    """Current resident set size of this process (peak size where the current is unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def memory_status_text(device: str) -> str:
    text = f"RAM {resident_bytes() / 2**20:,.0f} MiB"
    if device.startswith("cuda") and torch.cuda.is_available():
        allocated = torch.cuda.memory_allocated(torch.device(device))
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        text += f" · GPU {allocated / 2**20:,.0f} / {total / 2**20:,.0f} MiB"
    return text
