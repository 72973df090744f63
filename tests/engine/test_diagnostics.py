"""Diagnostics: versions, every device with its memory, and why a precision or backend is missing."""

from __future__ import annotations

import sys

import pytest
import torch

import workbench.engine.devices as device_discovery
from workbench import __version__
from workbench.cli import main
from workbench.engine import diagnostics
from workbench.engine.devices import DeviceInfo
from workbench.engine.diagnostics import (
    cudnn_text,
    ddp_backend_support,
    diagnostics_text,
    precision_support,
    version_text,
)

CPU = DeviceInfo("cpu", "CPU, 4 threads", None, ("32-true", "bf16-mixed"), ("gloo",))
GPU = DeviceInfo(
    "cuda:0",
    "NVIDIA Fake 9000",
    80 * 2**30,
    ("32-true", "16-mixed", "bf16-mixed"),
    ("nccl", "gloo"),
)
OLD_GPU = DeviceInfo("cuda:1", "Tesla T4", 15 * 2**30, ("32-true", "16-mixed"), ("nccl", "gloo"))


def by_name(items: list[diagnostics.Capability]) -> dict[str, diagnostics.Capability]:
    return {item.name: item for item in items}


def test_cpu_only_machine_says_16_mixed_and_nccl_need_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    precisions = by_name(precision_support([CPU]))
    assert precisions["32-true"].supported and precisions["32-true"].detail == "cpu"
    assert precisions["bf16-mixed"].supported
    assert not precisions["16-mixed"].supported
    assert precisions["16-mixed"].detail == (
        "needs a CUDA GPU (none found; this torch is built for CUDA 13.0)"
    )
    backends = by_name(ddp_backend_support([CPU]))
    assert backends["gloo"].supported and backends["gloo"].detail == "cpu"
    assert not backends["nccl"].supported
    assert backends["nccl"].detail.startswith("needs CUDA (none found")


def test_cpu_only_torch_build_is_named_as_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    precisions = by_name(precision_support([CPU]))
    assert precisions["16-mixed"].detail == "needs a CUDA GPU (this torch is a CPU-only build)"
    assert "CPU-only build" in diagnostics.cuda_text([CPU])


def test_a_cuda_gpu_offers_16_mixed_and_nccl() -> None:
    precisions = by_name(precision_support([CPU, GPU, OLD_GPU]))
    assert precisions["16-mixed"].supported
    assert precisions["16-mixed"].detail == "cuda:0, cuda:1"
    assert precisions["bf16-mixed"].detail == "cpu, cuda:0"
    backends = by_name(ddp_backend_support([CPU, GPU]))
    assert backends["nccl"].supported and backends["nccl"].detail == "cuda:0"
    assert backends["gloo"].detail == "cpu, cuda:0"


def test_nccl_missing_from_the_build_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu_without_nccl = DeviceInfo("cuda:0", "GPU", 2**30, ("32-true", "16-mixed"), ("gloo",))
    monkeypatch.setattr(torch.distributed, "is_nccl_available", lambda: False)
    nccl = by_name(ddp_backend_support([CPU, gpu_without_nccl]))["nccl"]
    assert not nccl.supported
    assert "built without NCCL" in nccl.detail


def test_diagnostics_text_lists_each_device_with_memory_and_the_reasons() -> None:
    text = diagnostics_text([CPU, GPU])
    assert f"Torch Workbench {__version__}" in text
    assert "cpu — CPU, 4 threads" in text
    assert "cuda:0 — NVIDIA Fake 9000, 80.0 GiB" in text
    assert "precisions: 32-true, 16-mixed, bf16-mixed" in text
    assert "CUDA " in text and "cuDNN" in text and "MPS" in text
    assert f"torch uses {torch.get_num_threads()} intra-op and" in text
    for section in ("Devices", "CPU", "Precisions", "DDP backends", "Environment"):
        assert f"\n\n{section}\n" in text


def test_unsupported_lines_say_no_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    lines = diagnostics_text([CPU]).splitlines()
    assert (
        "  16-mixed    no   needs a CUDA GPU (none found; this torch is built for CUDA 13.0)"
        in (lines)
    )
    assert "  nccl        no   needs CUDA (none found; this torch is built for CUDA 13.0)" in lines
    assert "  32-true     yes  cpu" in lines


def test_diagnostics_asks_available_devices_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_discovery, "available_devices", lambda: [CPU, GPU])
    assert "cuda:0 — NVIDIA Fake 9000, 80.0 GiB" in diagnostics_text()
    assert f"CUDA {torch.version.cuda}, available" in version_text().splitlines()


def test_relevant_environment_variables_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert "  CUDA_VISIBLE_DEVICES=1,3" in diagnostics_text([CPU]).splitlines()


@pytest.mark.parametrize(("raw", "shown"), [(92400, "cuDNN 9.24.0"), (8907, "cuDNN 8.9.7")])
def test_cudnn_version_numbers_are_decoded(
    monkeypatch: pytest.MonkeyPatch, raw: int, shown: str
) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: raw)
    assert cudnn_text() == shown


def test_no_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: False)
    assert cudnn_text() == "cuDNN not available"


@pytest.mark.skipif(sys.platform == "darwin", reason="MPS may exist on a Mac")
def test_mps_outside_a_mac_says_what_it_needs() -> None:
    assert diagnostics.mps_text([CPU]) == "MPS not available (needs an Apple-silicon Mac)"


def test_version_flag_prints_workbench_torch_torchvision_pyside_cuda_mps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"workbench {__version__}\n")
    assert f"torch {torch.__version__}" in out
    assert "torchvision 0." in out
    assert "PySide6 6." in out
    assert "CUDA " in out and "cuDNN" in out and "MPS " in out


def test_devices_verbose_prints_the_diagnostics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(device_discovery, "available_devices", lambda: [CPU, GPU])
    assert main(["devices", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == diagnostics_text([CPU, GPU]).strip()
    assert main(["devices"]) == 0
    short = capsys.readouterr().out
    assert "cuda:0 — NVIDIA Fake 9000, 80.0 GiB" in short and "Precisions" not in short
