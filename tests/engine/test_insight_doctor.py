"""The training doctor: plain-language findings, each with what to change."""

from __future__ import annotations

import torch
from torch import nn

from tests import factories
from workbench.engine.insight.doctor import PROBLEM, TrainingDoctor, diagnose
from workbench.engine.insight.model_probe import ModelProbe
from workbench.engine.reports import EpochReport


def epoch(
    n: int, train_loss: float, val_loss: float | None = None, lr: float = 0.1, **kw: float
) -> EpochReport:
    return factories.epoch_report(
        n, epochs=20, train_loss=train_loss, train_accuracy=kw.get("train_accuracy"),
        val_loss=val_loss, val_accuracy=kw.get("val_accuracy"), lr=lr, samples_per_second=1000.0,
    )  # fmt: skip


def codes(findings: list) -> list[str]:  # type: ignore[type-arg]
    return [finding.code for finding in findings]


def test_a_healthy_run_has_no_findings() -> None:
    history = [epoch(i, 1.0 / i, 1.1 / i) for i in range(1, 8)]
    assert diagnose(history) == []


def test_divergence_names_the_learning_rate_to_lower() -> None:
    history = [
        epoch(1, 0.9, lr=2.0),
        epoch(2, 0.5, lr=2.0),
        epoch(3, 0.8, lr=2.0),
        epoch(4, 1.4, lr=2.0),
    ]
    [finding] = diagnose(history)
    assert finding.code == "divergence" and finding.severity == PROBLEM
    assert "rose two epochs in a row" in finding.message
    assert "learning rate (now 2)" in finding.suggestion
    nan = diagnose([epoch(1, 0.9), epoch(2, float("nan"))])
    assert codes(nan) == ["divergence"] and "NaN" in nan[0].message


def test_overfitting_is_seen_when_validation_rises_while_training_falls() -> None:
    history = [
        epoch(1, 1.0, 1.0),
        epoch(2, 0.6, 0.7),
        epoch(3, 0.4, 0.75),
        epoch(4, 0.3, 0.8),
        epoch(5, 0.2, 0.9, train_accuracy=0.99, val_accuracy=0.8),
    ]
    [finding] = diagnose(history)
    assert finding.code == "overfitting"
    assert "best at epoch 2" in finding.message and "99%" in finding.message
    assert "Dropout" in finding.suggestion and "weight_decay" in finding.suggestion
    assert diagnose(history[:4]) == []  # only two epochs past the best: too early to say


def test_a_flat_loss_means_not_learning() -> None:
    history = [epoch(i, 2.302, train_accuracy=0.1) for i in range(1, 5)]
    [finding] = diagnose(history, num_classes=10)
    assert finding.code == "not_learning" and "chance is 10%" in finding.message
    assert "larger learning rate" in finding.suggestion


def test_probe_findings_dead_relus_exploding_and_vanishing_gradients() -> None:
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    dead = nn.Sequential(nn.Linear(4, 10), nn.ReLU(), nn.Linear(10, 3))
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)
    snapshot = ModelProbe().record(1, dead, (x, y), nn.CrossEntropyLoss())
    found = diagnose([epoch(1, 1.0)], snapshot)
    assert "dead_relu" in codes(found)
    relu = found[codes(found).index("dead_relu")]
    assert "100% of its units output zero for all 64 samples" in relu.message
    assert "LeakyReLU" in relu.suggestion

    exploding = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    with torch.no_grad():
        for layer in exploding:
            layer.weight.mul_(1e4)
    found = diagnose(
        [epoch(1, 1.0)], ModelProbe().record(1, exploding, (x, y), nn.CrossEntropyLoss())
    )
    assert codes(found)[0] == "exploding_gradients" and "gradient_clip_val" in found[0].suggestion

    deep = nn.Sequential(
        *[m for _ in range(12) for m in (nn.Linear(4, 4), nn.Sigmoid())], nn.Linear(4, 3)
    )
    found = diagnose([epoch(1, 1.0)], ModelProbe().record(1, deep, (x, y), nn.CrossEntropyLoss()))
    assert "vanishing_gradients" in codes(found)
    assert "ReLU" in found[codes(found).index("vanishing_gradients")].suggestion


def test_doctor_collects_epochs_as_an_observer() -> None:
    doctor = TrainingDoctor(num_classes=2)
    for n, loss in enumerate([0.9, 0.5, 0.8, 1.4], start=1):
        doctor.on_epoch_end(epoch(n, loss))
    assert codes(doctor.diagnoses) == ["divergence"]
    assert "Training is diverging" in doctor.diagnoses[0].text
    doctor.reset()
    assert doctor.diagnoses == []
