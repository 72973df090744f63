"""Opening a >1 GB checkpoint: workbench's mmap/lazy open vs a plain torch.load, side by side."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

BIG_TENSORS = 4
BIG_NUMEL = 1 << 26  # 64 Mi float32 = 256 MiB each, 1 GiB in all
SMALL_TENSORS = 300

# Run in a fresh interpreter per method, so one method's peak memory cannot hide another's.
# VmHWM is reset (clear_refs 5) after the imports, so the peak is the opening alone.
MEASURE = r"""
import json, sys, time
import torch
from workbench.engine.checkpoints import open_checkpoint, tensor_infos

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)

method, path = sys.argv[1], sys.argv[2]
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status("VmRSS")
start = time.perf_counter()
if method == "workbench":
    opened = open_checkpoint(path).state_dict
    keys = [info.key for info in tensor_infos(opened)]
else:
    opened = torch.load(path, weights_only=True, map_location="cpu")
    keys = list(opened)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "keys": len(keys),
                  "extra_peak": status("VmHWM") - before, "extra_now": status("VmRSS") - before}))
"""


def write_big_files(folder: Path) -> tuple[Path, Path]:
    generator = torch.Generator().manual_seed(0)
    state = {
        f"blocks.{i}.weight": torch.rand(BIG_NUMEL, generator=generator) for i in range(BIG_TENSORS)
    }
    state.update(
        {f"heads.{i}.bias": torch.rand(64, generator=generator) for i in range(SMALL_TENSORS)}
    )
    pth, safetensors = folder / "big.pth", folder / "big.safetensors"
    torch.save(state, pth)
    save_file(state, str(safetensors))
    return pth, safetensors


def measure(method: str, path: Path) -> dict[str, float]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, method, str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


@pytest.mark.bench
def test_open_big_checkpoint_mmap_vs_torch_load(tmp_path: Path) -> None:
    if shutil.disk_usage(tmp_path).free < 4 << 30:
        pytest.skip("needs 4 GiB of free disk for two 1 GiB files")
    folder = tmp_path / "big"
    folder.mkdir()
    try:
        pth, safetensors = write_big_files(folder)
        rows = [
            ("workbench open_checkpoint .pth (mmap)", measure("workbench", pth)),
            ("plain torch.load(path) .pth", measure("torch", pth)),
            ("workbench open_checkpoint .safetensors", measure("workbench", safetensors)),
        ]
        size = pth.stat().st_size
    finally:
        shutil.rmtree(folder)
    mib = 1 << 20
    print(
        f"\nopening a {size / (1 << 30):.2f} GiB checkpoint, key listing computed "
        "(targets for workbench: < 1 s, < 200 MiB extra)"
    )
    print(f"{'method':42} {'seconds':>8} {'peak extra MiB':>15} {'after MiB':>10} {'keys':>6}")
    for name, figures in rows:
        print(
            f"{name:42} {figures['seconds']:8.3f} {figures['extra_peak'] / mib:15.1f} "
            f"{figures['extra_now'] / mib:10.1f} {int(figures['keys']):6d}"
        )
    ours, plain = rows[0][1], rows[1][1]
    print(
        f"time ratio torch.load / workbench: {plain['seconds'] / ours['seconds']:.1f}x; "
        f"peak memory ratio: {plain['extra_peak'] / max(ours['extra_peak'], 1):.1f}x"
    )
    assert all(figures["keys"] == BIG_TENSORS + SMALL_TENSORS for _, figures in rows)
