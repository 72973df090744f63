"""DDP processes are capped at the cores; a precision's speed is measured against float32."""

from __future__ import annotations

import pytest

from workbench.engine.choice_costs import (
    ddp_process_cap,
    precision_slowdowns,
    slowdown_note,
    step_seconds,
)
from workbench.engine.devices import DeviceInfo

CPU = DeviceInfo("cpu", "test CPU", None, ("32-true", "bf16-mixed"), ("gloo",))
GPU = DeviceInfo("cuda:0", "test GPU", 2**34, ("32-true", "16-mixed", "bf16-mixed"), ("nccl",))


def test_sixteen_processes_on_two_cores_are_capped_at_two_with_a_reason() -> None:
    cap = ddp_process_cap(CPU, 16, cores=2)
    assert cap.processes == 2
    assert cap.message == (
        "DDP processes capped at 2: this machine has 2 CPU cores, and 16 processes would only "
        "wait on each other"
    )


def test_processes_within_the_cores_and_gpu_runs_are_left_alone() -> None:
    assert ddp_process_cap(CPU, 2, cores=2).processes == 2
    assert ddp_process_cap(CPU, 2, cores=2).message is None
    assert ddp_process_cap(GPU, 16, cores=2).processes == 16
    assert ddp_process_cap(CPU, 3, cores=1).message is not None
    assert "1 CPU core," in str(ddp_process_cap(CPU, 3, cores=1).message)


def test_a_step_is_timed_and_precisions_compare_with_float32() -> None:
    assert 0 < step_seconds(CPU, "32-true", seconds=0.05) < 5
    slowdowns = precision_slowdowns(
        DeviceInfo("cpu", "test CPU", None, ("32-true", "bf16-mixed"), ())
    )
    assert list(slowdowns) == ["bf16-mixed"]
    assert slowdowns["bf16-mixed"] > 0


@pytest.mark.parametrize(
    ("slowdown", "note"),
    [(1.0, None), (1.1, None), (2.34, "2.3× slower than float32 on this device")],
)
def test_only_a_measurable_slowdown_gets_a_note(slowdown: float, note: str | None) -> None:
    assert slowdown_note(slowdown) == note
