"""CUDA paths of the trainer: float16 autocast with GradScaler, bf16, pinned memory (GPU only)."""

from __future__ import annotations

import pytest
import torch

from tests.engine.test_trainer import experiment, fit, moons
from workbench.engine.precision import ScaledAutocastPrecision

pytestmark = pytest.mark.cuda


def test_fp16_mixed_trains_with_a_grad_scaler_on_cuda() -> None:
    trainer, observer = fit(experiment(device="cuda", precision="16-mixed", epochs=2))
    assert isinstance(trainer.precision, ScaledAutocastPrecision)
    assert trainer.precision.scaler.get_scale() > 0
    assert observer.summary is not None and observer.summary["device"].startswith("cuda")
    assert observer.epochs[-1].train_loss < observer.epochs[0].train_loss * 1.5
    with trainer.precision.forward_context():
        assert trainer.model(torch.randn(4, 2, device="cuda")).dtype == torch.float16


def test_bf16_and_pinned_memory_on_cuda() -> None:
    data = moons(pin_memory=True, in_memory=False)
    _, observer = fit(experiment(device="cuda", precision="bf16-mixed", data=data))
    assert observer.summary is not None and observer.summary["status"] == "completed"
