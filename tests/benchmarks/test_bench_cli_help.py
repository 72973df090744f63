"""Benchmark: `workbench --help` and `workbench train --help` against a bare `import torch`.

Each command runs in a fresh interpreter, interleaved, five rounds; the medians are printed.
`--help` never imports PyTorch, so it answers in a fraction of torch's import time.
Run with `make bench` or `pytest -s -m bench tests/benchmarks/test_bench_cli_help.py`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

ROUNDS = 5
COMMANDS = {
    "workbench --help": ["-m", "workbench", "--help"],
    "workbench train --help": ["-m", "workbench", "train", "--help"],
    "python -c 'import torch'": ["-c", "import torch"],
}


def _seconds(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    assert "--help" not in args or result.stdout.startswith("usage: workbench")
    return seconds


@pytest.mark.bench
def test_help_answers_without_paying_for_torch() -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(ROUNDS):
        for name, args in COMMANDS.items():
            times[name].append(_seconds(args))
    medians = {name: statistics.median(values) for name, values in times.items()}
    torch_time = medians["python -c 'import torch'"]
    print()
    for name, median in medians.items():
        print(f"{name:<28} median {median:.2f} s  ({median / torch_time:.2f}x import torch)")
