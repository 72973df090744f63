"""Benchmark: launch to a usable window (panels ready, Train enabled) against a bare `import torch`.

Each round starts, in fresh interpreters and interleaved, `python -c "import torch"` (wall time)
and `workbench --startup-check` offscreen (launch to its "ready" line, which it prints once the
panels are built, Train is enabled and the default preset is open); five rounds,
medians and the median of the per-round ratios printed (target <= 1.3x), with `workbench --help`.
Run with `pytest -s -m bench tests/benchmarks/test_bench_startup.py`.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

ROUNDS = 5
TARGET = 1.3


def _environment() -> dict[str, str]:
    """Offscreen, with Python's bytecode cache on: an installed package has its .pyc files (pip
    writes them), and so has PyTorch here; PYTHONDONTWRITEBYTECODE would recompile only ours."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(args: list[str]) -> tuple[float, str]:
    env = _environment()
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        timeout=180,
    )  # fmt: skip
    return time.perf_counter() - start, result.stdout


def ready_seconds() -> float:
    """Seconds from launching `workbench --startup-check` to its "ready" line reaching us: the
    app's own figure counts from a boot time /proc gives in whole seconds (up to 1 s off)."""
    env = _environment()
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "workbench", "--startup-check"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        line = process.stdout.readline()
        ready = time.perf_counter() - start
        process.wait(timeout=180)
    assert re.search(r"ready after [\d.]+ s: .*; Train enabled$", line), line
    return ready


@pytest.mark.bench
def test_window_is_ready_within_1_3x_of_import_torch() -> None:
    ready_seconds()  # an untimed launch first: it writes the bytecode cache, as an install does
    torch_times, ready_times, help_times = [], [], []
    for _ in range(ROUNDS):
        torch_times.append(_run(["-c", "import torch"])[0])
        ready_times.append(ready_seconds())
        help_times.append(_run(["-m", "workbench", "--help"])[0])
    ratios = [ready / torch for ready, torch in zip(ready_times, torch_times, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"\n[start-up] {ROUNDS} interleaved rounds, fresh interpreters\n"
        f"  import torch:        median {statistics.median(torch_times):.2f} s  "
        f"({', '.join(f'{t:.2f}' for t in torch_times)})\n"
        f"  window ready:        median {statistics.median(ready_times):.2f} s  "
        f"({', '.join(f'{t:.2f}' for t in ready_times)})\n"
        f"  ready / import torch: median of the round ratios {ratio:.2f}x (target <= {TARGET}x)\n"
        f"  workbench --help:    median {statistics.median(help_times):.2f} s"
    )
