"""The training loop: correctness against plain PyTorch, reproducibility, guards, stop and resume."""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
from pathlib import Path

import pytest
import torch

from tests.conftest import PRESETS
from workbench.engine.control import RunControl
from workbench.engine.datasets import make_loaders
from workbench.engine.devices import available_devices
from workbench.engine.errors import CheckpointError, DeviceError, TrainingError
from workbench.engine.experiment import (
    DataSpec,
    EarlyStoppingSpec,
    Experiment,
    LayerSpec,
    ModelSpec,
    SchedulerSpec,
    TrainSpec,
    load_experiment,
)
from workbench.engine.precision import make_precision
from workbench.engine.reports import BaseObserver, BatchReport, RecordingObserver
from workbench.engine.run_files import load_run_checkpoint
from workbench.engine.trainer import Trainer


def mlp(*hidden: int, classes: int = 2, dropout: float = 0.0) -> ModelSpec:
    layers: list[LayerSpec] = []
    for width in hidden:
        layers += [LayerSpec("Linear", {"out_features": width}), LayerSpec("ReLU")]
        if dropout:
            layers.append(LayerSpec("Dropout", {"p": dropout}))
    layers.append(LayerSpec("Linear", {"out_features": classes}))
    return ModelSpec(layers=tuple(layers))


def moons(n: int = 64, batch: int = 16, **changes: object) -> DataSpec:
    return DataSpec(
        name="moons",
        batch_size=batch,
        val_batch_size=256,
        options={"n_samples": n, "noise": 0.1, "seed": 0},
        **changes,  # type: ignore[arg-type]
    )


def experiment(
    model: ModelSpec | None = None, data: DataSpec | None = None, **train: object
) -> Experiment:
    spec = TrainSpec(**{"optimizer": "sgd", "lr": 0.1, "device": "cpu", **train})  # type: ignore[arg-type]
    return Experiment(model=model or mlp(16), data=data or moons(), train=spec)


def fit(exp: Experiment, **kwargs: object) -> tuple[Trainer, RecordingObserver]:
    observer = RecordingObserver()
    trainer = Trainer(exp, observer=observer, **kwargs)  # type: ignore[arg-type]
    trainer.fit()
    return trainer, observer


def test_toy_preset_reaches_full_accuracy_in_six_batches() -> None:
    _, observer = fit(load_experiment(PRESETS / "toy-mlp.toml"))
    assert len(observer.batches) == 6
    assert observer.summary is not None
    assert observer.summary["train_accuracy"] == 1.0
    assert observer.summary["val_accuracy"] == 1.0
    assert observer.summary["parameters"] == 752


def test_every_reported_number_is_a_python_scalar() -> None:
    _, observer = fit(experiment(epochs=2))
    for report in [*observer.batches, *observer.epochs]:
        for value in dataclasses.asdict(report).values():
            assert value is None or type(value) in (int, float), value
    assert observer.summary is not None
    assert all(not isinstance(v, torch.Tensor) for v in observer.summary.values())


def test_same_experiment_twice_gives_identical_losses() -> None:
    exp = experiment(model=mlp(16, dropout=0.2), epochs=2, optimizer="adam", lr=0.01)
    first = [b.loss for b in fit(exp)[1].batches]
    second = [b.loss for b in fit(exp)[1].batches]
    assert first == second
    other_seed = [
        b.loss
        for b in fit(dataclasses.replace(exp, train=dataclasses.replace(exp.train, seed=7)))[
            1
        ].batches
    ]
    assert other_seed != first


def plain_pytorch_epoch(exp: Experiment) -> dict[str, torch.Tensor]:
    """The same epoch written as a hand-made loop: the reference the engine must equal."""
    from workbench.engine.model_builder import build_model

    loaders = make_loaders(exp.data, exp.train.seed)
    torch.manual_seed(exp.train.seed)
    model = build_model(exp.model, loaders.info.input_shape).module
    optimizer = torch.optim.SGD(model.parameters(), lr=exp.train.lr)
    loaders.train.set_epoch(1)
    model.train()
    for x, y in loaders.train:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.state_dict()


def test_engine_matches_a_plain_pytorch_loop() -> None:
    exp = experiment(epochs=1)
    trainer, _ = fit(exp)
    expected = plain_pytorch_epoch(exp)
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, expected[key])


def test_accumulating_k_micro_batches_equals_one_big_batch() -> None:
    data = moons(n=80, batch=32, shuffle=False)  # 64 training samples
    big = experiment(data=data, epochs=1)
    small = experiment(
        data=dataclasses.replace(data, batch_size=8), epochs=1, accumulate_grad_batches=4
    )
    big_trainer, _ = fit(big)
    small_trainer, small_obs = fit(small)
    assert big_trainer.step == small_trainer.step == 2
    assert len(small_obs.batches) == 8
    assert small_obs.started[0].effective_batch_size == 32
    for key, value in big_trainer.model.state_dict().items():
        torch.testing.assert_close(small_trainer.model.state_dict()[key], value)


def test_accumulation_steps_at_the_end_of_an_uneven_epoch() -> None:
    data = moons(
        n=50, batch=8, shuffle=False
    )  # 40 training samples: 5 micro-batches, k = 2: steps after 2, 4 and 5
    trainer, _ = fit(experiment(data=data, epochs=1, accumulate_grad_batches=2))
    assert trainer.step == 3


def test_bf16_mixed_runs_on_cpu_and_autocasts_to_bfloat16() -> None:
    cpu = next(d for d in available_devices() if d.name == "cpu")
    precision = make_precision("bf16-mixed", cpu)
    layer = torch.nn.Linear(4, 3)
    with precision.forward_context():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    _, observer = fit(experiment(precision="bf16-mixed", epochs=2))
    assert observer.summary is not None and observer.summary["precision"] == "bf16-mixed"
    assert observer.epochs[-1].train_loss < observer.epochs[0].train_loss * 1.5


def test_fp16_on_cpu_is_refused_with_the_reason_and_the_alternative() -> None:
    trainer = Trainer(experiment(precision="16-mixed"))
    with pytest.raises(
        DeviceError, match="float16 mixed precision needs a CUDA GPU; on the CPU use bf16-mixed"
    ):
        trainer.prepare()


def test_absent_device_is_a_clear_error() -> None:
    with pytest.raises(DeviceError, match="device 'cuda:3' is not available"):
        Trainer(experiment(device="cuda:3")).prepare()


def test_resume_from_a_mid_run_checkpoint_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    exp = experiment(model=mlp(16, dropout=0.3), epochs=3, optimizer="adam", lr=0.01,
                     scheduler=SchedulerSpec(name="step", step_size=1, gamma=0.5))  # fmt: skip
    full, full_obs = fit(exp, out_dir=tmp_path / "full")
    first = dataclasses.replace(exp, train=dataclasses.replace(exp.train, epochs=1))
    fit(first, out_dir=tmp_path / "part")
    resumed, resumed_obs = fit(
        exp, out_dir=tmp_path / "part", resume_from=tmp_path / "part" / "checkpoint.pt"
    )
    assert [e.epoch for e in resumed_obs.epochs] == [2, 3]
    assert [b.loss for b in resumed_obs.batches] == [
        b.loss for b in full_obs.batches if b.epoch > 1
    ]
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    rows = (tmp_path / "part" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 4  # header + epochs 1..3, the first from before the resume


def test_nan_loss_stops_with_the_epoch_batch_and_advice(tmp_path: Path) -> None:
    exp = experiment(lr=1e30, loss="mse", epochs=3)
    observer = RecordingObserver()
    with pytest.raises(
        TrainingError,
        match=r"the loss became (nan|inf) at epoch 1, batch \d+; lower the learning rate",
    ):
        Trainer(exp, observer=observer, out_dir=tmp_path).fit()
    assert observer.failure is not None and "lower the learning rate" in observer.failure
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"
    assert not list(tmp_path.glob("*.tmp"))


class StopAt(BaseObserver):
    def __init__(self, control: RunControl, batch: int) -> None:
        self.control, self.batch, self.seen = control, batch, 0

    def on_batch_end(self, report: BatchReport) -> None:
        self.seen += 1
        if self.seen == self.batch:
            self.control.request_stop()


def test_stop_request_ends_within_one_batch_and_still_writes_files(tmp_path: Path) -> None:
    control = RunControl()
    observer = StopAt(control, 3)
    summary = Trainer(experiment(epochs=5, data=moons(batch=4)), observer=observer, control=control,
                      out_dir=tmp_path).fit()  # fmt: skip
    assert observer.seen == 3
    assert summary["status"] == "stopped"
    assert (tmp_path / "model.pth").is_file() and (tmp_path / "summary.json").is_file()


def test_single_step_mode_runs_exactly_one_optimizer_step() -> None:
    control = RunControl(start_paused=True)
    control.step()
    observer = StopAt(control, 1_000_000)
    trainer = Trainer(experiment(accumulate_grad_batches=2), observer=observer, control=control)
    trainer.prepare()
    import threading

    thread = threading.Thread(target=trainer.fit)
    thread.start()
    # After its one step the run waits paused; the step count is then exactly 1.
    for _ in range(200):
        thread.join(timeout=0.05)
        if observer.seen == 2:
            break
    assert trainer.step == 1 and observer.seen == 2
    control.request_stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


class TensorCounter(BaseObserver):
    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def on_batch_end(self, report: BatchReport) -> None:
        if report.batch in (200, 2050):
            gc.collect()
            self.counts[report.batch] = sum(
                1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor)
            )


def test_no_tensor_is_kept_across_2000_batches() -> None:
    counter = TensorCounter()
    exp = experiment(data=moons(n=2600, batch=1), epochs=1)  # 2,080 training batches
    Trainer(exp, observer=counter).fit()
    assert counter.counts[2050] <= counter.counts[200]


def test_every_optimizer_scheduler_and_loss_runs() -> None:
    for optimizer in ("sgd", "adam", "adamw", "adadelta", "rmsprop", "adagrad"):
        fit(
            experiment(
                optimizer=optimizer,
                momentum=0.9 if optimizer == "sgd" else 0.0,
                nesterov=optimizer == "sgd",
            )
        )
    for name in ("step", "multistep", "exponential", "cosine", "onecycle", "reduce_on_plateau"):
        _, obs = fit(experiment(epochs=2, scheduler=SchedulerSpec(name=name, milestones=(1,))))
        assert len(obs.epochs) == 2
    for loss in ("cross_entropy", "mse", "bce_with_logits"):
        _, obs = fit(experiment(loss=loss))
        assert obs.epochs[0].val_accuracy is not None
    _, obs = fit(
        experiment(model=ModelSpec(layers=(*mlp(8).layers, LayerSpec("LogSoftmax"))), loss="nll")
    )
    assert obs.epochs[0].train_accuracy is not None


def test_step_schedule_decays_the_learning_rate_per_epoch() -> None:
    _, obs = fit(
        experiment(epochs=3, lr=1.0, scheduler=SchedulerSpec(name="step", step_size=1, gamma=0.5))
    )
    assert [e.lr for e in obs.epochs] == [1.0, 0.5, 0.25]  # the rate each epoch trained with


def test_gradient_clipping_runs() -> None:
    _, obs = fit(experiment(gradient_clip_val=0.01, epochs=1))
    assert obs.summary is not None and obs.summary["status"] == "completed"


def test_early_stopping_stops_and_restores_the_best_weights() -> None:
    exp = experiment(
        epochs=50, lr=0.0, early_stopping=EarlyStoppingSpec(monitor="val_loss", patience=2)
    )
    _, obs = fit(exp)
    assert len(obs.epochs) == 3  # best at epoch 1, no improvement for 2 epochs
    assert obs.summary is not None and obs.summary["status"] == "early_stopped"
    assert any("Early stopping at epoch 3" in line for line in obs.logs)


def test_run_files_are_complete_and_load_safely(tmp_path: Path) -> None:
    trainer, _ = fit(experiment(epochs=2), out_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.pt", "experiment.toml", "metrics.csv", "model.pth", "run.json",
        "summary.json",
    ]  # fmt: skip
    state = torch.load(tmp_path / "model.pth", weights_only=True)
    trainer.model.load_state_dict(state)
    checkpoint = load_run_checkpoint(tmp_path / "checkpoint.pt")
    assert checkpoint["epoch"] == 2 and checkpoint["step"] == trainer.step
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epochs_completed",
                "samples_per_second", "wall_seconds", "parameters", "precision", "device", "world_size"):  # fmt: skip
        assert key in summary
    assert load_experiment(tmp_path / "experiment.toml") == trainer.experiment


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_carrying_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": "workbench-checkpoint/1", "model": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="not a safe Torch Workbench checkpoint"):
        load_run_checkpoint(path)
    assert not marker.exists()


def test_convolutional_models_train_in_channels_last_and_match_contiguous() -> None:
    cnn = ModelSpec(
        layers=(
            LayerSpec("Conv2d", {"out_channels": 4, "kernel_size": 3}),
            LayerSpec("ReLU"),
            LayerSpec("Flatten"),
            LayerSpec("Linear", {"out_features": 10}),
        )
    )
    data = DataSpec(name="digits", batch_size=64, val_batch_size=512)
    fast, _ = fit(experiment(model=cnn, data=data, epochs=1))
    plain, _ = fit(experiment(model=cnn, data=data, epochs=1, memory_format="contiguous"))
    assert fast.channels_last and not plain.channels_last
    assert fast.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(
            fast.model.state_dict()[key].contiguous(), value, rtol=1e-4, atol=1e-5
        )
    mlp_trainer, _ = fit(experiment())
    assert not mlp_trainer.channels_last


def test_training_on_another_thread_sizes_that_threads_team_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window trains on a worker thread: fit() sets PyTorch's own thread count there (a
    lazily sized OpenMP team trained 8-13% slower than the main thread; see claim_intra_op_threads)."""
    calls: list[tuple[str, int]] = []
    real = torch.set_num_threads
    monkeypatch.setattr(
        torch,
        "set_num_threads",
        lambda n: (calls.append((threading.current_thread().name, n)), real(n)),
    )
    count = torch.get_num_threads()
    worker = threading.Thread(
        target=Trainer(load_experiment(PRESETS / "toy-mlp.toml")).fit, name="w"
    )
    worker.start()
    worker.join()
    assert calls == [("w", count)]
    assert torch.get_num_threads() == count
