"""What the budget checks cost when opening a 1 GiB checkpoint: with them and without, side by side.

"Without" swaps the checks for what the reader did before them (the zip directory only looked
up, no tensor walk, the safetensors header told by its first byte); the switch lives in this
benchmark only. Rounds alternate the order of the two, and the figure is the median of the
per-round ratios, so a slow moment of the machine hits both sides alike.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import statistics
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.benchmarks.test_bench_checkpoint_open import BIG_TENSORS, SMALL_TENSORS, write_big_files
from workbench.engine.checkpoints import budget, detection, open_checkpoint

ROUNDS = 31
OPENS_PER_SAMPLE = 3  # a safetensors open takes ~20 ms: one alone is mostly timer noise
TARGET_RATIO = 1.05


def _plan_without_checks(path: Path, file_size: int) -> budget.ZipPlan:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        return budget.ZipPlan(archive.read(name), file_size, compressed=False)


def _header_by_first_byte(path: Path, head: bytes, size: int) -> bool:
    return head[8:9] == b"{"


@contextlib.contextmanager
def checks_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setattr(budget, "plan_zip", _plan_without_checks)
        patch.setattr(budget, "check_tensors", lambda *args: None)
        patch.setattr(detection, "is_safetensors", _header_by_first_byte)
        yield


def timed_open(path: Path) -> float:
    """Seconds for one open_checkpoint, as the mean of OPENS_PER_SAMPLE in a row."""
    seconds = 0.0
    for _ in range(OPENS_PER_SAMPLE):
        gc.collect()
        start = time.perf_counter()
        checkpoint = open_checkpoint(path)
        seconds += time.perf_counter() - start
        assert len(checkpoint.state_dict) == BIG_TENSORS + SMALL_TENSORS
        del checkpoint
    return seconds / OPENS_PER_SAMPLE


def side_by_side(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    timed_open(path)  # page cache warm for both sides
    with checks_off(monkeypatch):
        timed_open(path)
    checked, unchecked, ratios = [], [], []
    for round_index in range(ROUNDS):
        pair: dict[str, float] = {}
        for side in ("with", "without") if round_index % 2 == 0 else ("without", "with"):
            if side == "with":
                pair[side] = timed_open(path)
            else:
                with checks_off(monkeypatch):
                    pair[side] = timed_open(path)
        checked.append(pair["with"])
        unchecked.append(pair["without"])
        ratios.append(pair["with"] / pair["without"])
    return {
        "with": statistics.median(checked),
        "without": statistics.median(unchecked),
        "ratio": statistics.median(ratios),
    }


@pytest.mark.bench
def test_budget_checks_cost_when_opening_a_big_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.disk_usage(tmp_path).free < 4 << 30:
        pytest.skip("needs 4 GiB of free disk for two 1 GiB files")
    folder = tmp_path / "big"
    folder.mkdir()
    try:
        pth, safetensors = write_big_files(folder)
        rows = [
            ("open_checkpoint .pth (zip, mmap)", side_by_side(pth, monkeypatch)),
            ("open_checkpoint .safetensors", side_by_side(safetensors, monkeypatch)),
        ]
        size = pth.stat().st_size
    finally:
        shutil.rmtree(folder)
    print(
        f"\nbudget checks on opening a {size / (1 << 30):.2f} GiB checkpoint, {ROUNDS} "
        f"interleaved rounds (targets: ratio <= {TARGET_RATIO:.2f}, with checks < 1 s)"
    )
    print(f"{'file':36} {'with s':>8} {'without s':>10} {'median ratio':>13}  verdict")
    for name, figures in rows:
        verdict = "ok" if figures["ratio"] <= TARGET_RATIO and figures["with"] < 1 else "OVER"
        print(
            f"{name:36} {figures['with']:8.4f} {figures['without']:10.4f} "
            f"{figures['ratio']:13.3f}  {verdict}"
        )
