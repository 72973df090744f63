"""PyTorch's CPU thread teams when a run trains off the main thread, as the window's runs do."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from pathlib import Path

import torch

OMP_PAUSE_SOFT = 1  # omp_pause_soft: libgomp frees the calling thread's idle workers
TRAINING_NICENESS = 5  # a window's training thread yields to the GUI thread: nice +5


def claim_intra_op_threads() -> None:
    """Size this thread's OpenMP team explicitly (PyTorch's own count, unchanged).

    A thread other than the main one otherwise gets its team sized lazily, which on this
    project's CPU machines trained mnist-cnn slower than the main thread
    (tests/benchmarks/test_bench_gui.py).
    """
    torch.set_num_threads(torch.get_num_threads())


def release_idle_cpu_threads() -> bool:
    """Free the idle OpenMP worker threads of the calling thread; True where libgomp did it.

    GNU OpenMP (libgomp, PyTorch's CPU backend on Linux) lets its workers spin-wait between two
    parallel regions only while all teams together hold no more threads than the machine has
    CPUs; past that they sleep, and every operation pays for waking them. The idle team that
    earlier work left on the GUI thread is enough to push a training thread's team past that
    line: mnist-cnn trained 10-15% slower on the window's training thread than on the main
    thread, and as fast once the GUI thread's team was freed. The team comes back by itself at
    the calling thread's next parallel operation. Elsewhere (macOS, Windows) nothing is done.
    Every copy of libgomp in the process is asked (scikit-learn's wheels bring one of their own).
    """
    released = False
    for library in _libgomps():
        pause = getattr(library, "omp_pause_resource_all", None)  # OpenMP 5.0: GCC 9 and later
        if pause is not None and int(pause(OMP_PAUSE_SOFT)) == 0:
            released = True
    return released


def lower_this_threads_priority(steps: int = TRAINING_NICENESS) -> bool:
    """Make the calling thread, and the OpenMP workers it starts later, yield to the others.

    A window's training thread calls this first: its compute then waits while the GUI thread
    has something to draw, and takes every CPU when not. Linux only (a thread's nice value);
    True when it was lowered.
    """
    if not sys.platform.startswith("linux"):
        return False
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + steps)
    except OSError:
        return False
    return True


def _libgomps() -> list[ctypes.CDLL]:
    """Each libgomp loaded into this process (PyTorch's wheels bundle a renamed copy)."""
    try:
        maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[-1] for line in maps.splitlines()}
    libraries = []
    for path in sorted(paths):
        if Path(path).name.startswith("libgomp"):
            with contextlib.suppress(OSError):
                libraries.append(ctypes.CDLL(path))  # already loaded: the same copy
    return libraries
