"""Will it fit from the command line: summary's estimate, fit-batch, and train --oom-rescue."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench.cli import main
from workbench.engine.batch_fit import StepTrial, find_batch_size, largest_fitting
from workbench.engine.devices import DeviceInfo
from workbench.engine.experiment import load_experiment
from workbench.engine.trainer import Trainer

CPU = DeviceInfo("cpu", "CPU", None, ("32-true", "bf16-mixed"), ())


def out_of_memory_above(
    limit: int, after_calls: int = 0, phase: str | None = "train"
) -> Callable[..., object]:
    """A Trainer._to_device that runs out of memory on batches larger than `limit`."""
    original = Trainer._to_device
    calls = {"count": 0}

    def to_device(self: Trainer, x: torch.Tensor, y: torch.Tensor) -> object:
        calls["count"] += 1
        in_phase = phase is None or self.phase == phase
        if len(x) > limit and calls["count"] > after_calls and in_phase:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(x)} MiB")
        return original(self, x, y)

    return to_device


# --------------------------------------------------------------------------- summary


def test_summary_shows_the_estimate_against_free_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "mnist-cnn"]) == 0
    out = capsys.readouterr().out
    assert "Total number of trainable model parameters: 609354" in out  # as before
    assert "Estimated peak training memory on cpu (batch 64, 32-true, adadelta): " in out
    assert "  weights 2.3 MiB, gradients 2.3 MiB, optimizer state 4.6 MiB, " in out
    assert "  validation pass at batch 1000: " in out and "  free RAM on cpu: " in out


def test_summary_says_why_there_is_no_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("workbench.engine.memory_estimate.available_devices", lambda: [CPU])
    experiment = tmp_path / "gpu.toml"
    experiment.write_text(
        (PRESETS / "toy-mlp.toml").read_text().replace("[train]", '[train]\ndevice = "cuda"')
    )
    assert main(["summary", str(experiment)]) == 0
    out = capsys.readouterr().out
    assert "Memory estimate unavailable: device 'cuda' is not available: this machine has no" in out


# --------------------------------------------------------------------------- fit-batch


def test_the_search_doubles_then_bisects() -> None:
    tried: list[tuple[int, bool]] = []
    best, note = largest_fitting(
        lambda size: size <= 300, 10_000, lambda s, ok: tried.append((s, ok))
    )
    assert best == 300 and note == ""
    assert [size for size, _ in tried][:10] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert tried[9] == (512, False) and tried[-1][0] in (300, 301)
    assert largest_fitting(lambda size: True, 1000) == (1000, "every size up to 1000 fits")
    assert largest_fitting(lambda size: size <= 700, 1000)[0] == 700
    assert largest_fitting(lambda size: False, 1000) == (None, "")


def test_real_steps_catch_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.engine.batch_fit as batch_fit

    original = batch_fit.train_step

    def step(model: torch.nn.Module, optimizer: object, loss_fn: object, batches, *rest: object):  # type: ignore[no-untyped-def]
        batch = next(batches)
        if len(batch[0]) > 100:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return original(model, optimizer, loss_fn, iter([batch]), *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_fit, "train_step", step)
    trial = StepTrial(load_experiment(PRESETS / "mnist-cnn.toml"), CPU)
    assert largest_fitting(trial, 1000)[0] == 100


def test_fit_batch_on_the_cpu_estimates_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit-batch", "digits-mlp", "--max", "100"]) == 0
    out = capsys.readouterr().out
    assert "  batch 64: fits" in out
    assert "Largest batch size that fits: 100 (estimated on cpu, against 80% of the " in out
    assert "(the CPU has no out-of-memory error to catch: it would swap)" in out
    assert "the search stopped there: every size up to 100 fits (the search stops at 100)" in out
    assert "To use it: data.batch_size = 100 (now 32)" in out
    assert main(["fit-batch", "digits-mlp", "--max", "0"]) == 2


@pytest.mark.cuda
def test_fit_batch_on_cuda_finds_a_batch_that_runs_and_one_that_does_not() -> None:
    experiment = load_experiment(PRESETS / "mnist-cnn.toml")
    torch.cuda.set_per_process_memory_fraction(2 * 2**30 / torch.cuda.mem_get_info()[1])
    try:
        found = find_batch_size(experiment, upper=2**16)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert found.measured and found.device.startswith("cuda") and found.batch_size is not None
    assert (found.batch_size, True) in found.tries
    failed = [size for size, ok in found.tries if not ok]
    assert failed and min(failed) == found.batch_size + 1  # bisected down to the edge


# --------------------------------------------------------------------------- --oom-rescue


def test_oom_rescue_halves_the_batch_and_keeps_the_effective_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Trainer, "_to_device", out_of_memory_above(8))
    out = tmp_path / "run"
    assert main(["train", "digits-mlp", "--epochs", "1", "--oom-rescue", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "Out of memory at batch size 32 x 1 accumulated: going on from the start with batch size "
        "16 x 2 accumulated (effective batch unchanged)" in text
    )
    assert "batch size 16 x 2 accumulated: going on from the start with batch size 8 x 4" in text
    assert "Training failed" not in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["effective_batch_size"] == 32
    saved = load_experiment(out / "experiment.toml")
    assert (saved.data.batch_size, saved.train.accumulate_grad_batches) == (8, 4)
    rescues = json.loads((out / "run.json").read_text())["flags"]["oom_rescues"]
    assert [(r["batch_size"], r["accumulate_grad_batches"]) for r in rescues] == [(16, 2), (8, 4)]
    # The same effective batch trains the same model as the batch that did not fit.
    monkeypatch.undo()
    whole = tmp_path / "whole"
    assert main(["train", "digits-mlp", "--epochs", "1", "--out", str(whole)]) == 0
    unrescued = json.loads((whole / "summary.json").read_text())
    assert summary["val_loss"] == pytest.approx(unrescued["val_loss"], rel=1e-3)


def test_oom_rescue_mid_run_goes_on_from_the_last_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    batches_per_epoch = 45  # 1,438 digits in batches of 32
    monkeypatch.setattr(Trainer, "_to_device", out_of_memory_above(16, batches_per_epoch + 3))
    out = tmp_path / "run"
    assert main(["train", "digits-mlp", "--epochs", "3", "--oom-rescue", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "going on from the checkpoint before epoch 2 with batch size 16 x 2" in text
    assert "Epoch: 002/003 | Batch 000/090" in text and "Epoch: 001/003 | Batch 000/090" not in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_completed"] == 3 and summary["effective_batch_size"] == 32
    assert (out / "metrics.csv").read_text().count("\n") == 4


def test_out_of_memory_in_validation_halves_the_validation_batch_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Trainer, "_to_device", out_of_memory_above(128, phase="evaluate"))
    out = tmp_path / "run"
    assert main(["train", "digits-mlp", "--epochs", "1", "--oom-rescue", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Out of memory in validation at batch size 512: going on from the start with " in text
    assert "validation batch size 256" in text and "validation batch size 128" in text
    saved = load_experiment(out / "experiment.toml")
    assert (saved.data.batch_size, saved.data.val_batch_size) == (32, 128)
    assert saved.train.accumulate_grad_batches == 1


def test_without_the_rescue_or_at_batch_one_out_of_memory_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Trainer, "_to_device", out_of_memory_above(0, phase=None))
    assert main(["train", "digits-mlp", "--epochs", "1"]) == 1
    assert "Training failed: out of memory on cpu with batch size 32;" in capsys.readouterr().out
    assert main(["train", "digits-mlp", "--epochs", "1", "--oom-rescue"]) == 1
    text = capsys.readouterr().out
    assert "going on from the start with batch size 1 x 32 accumulated" in text
    assert "Training failed: out of memory on cpu with batch size 1;" in text
    assert "validation batch size" not in text  # it ran out in training


def test_rescue_and_determinism_are_refused_with_ddp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "toy-mlp", "--nproc", "2", "--oom-rescue"]) == 2
    assert "--deterministic and --oom-rescue work in single-process runs" in capsys.readouterr().err
