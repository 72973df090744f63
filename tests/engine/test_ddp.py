"""DDPStrategy in this process (a world of one): planning, wrapping, reducing, teardown, shards."""

from __future__ import annotations

import argparse
import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import workbench.commands.train as train_verb
import workbench.engine.ddp as ddp_module
from workbench.engine.datasets import make_loaders
from workbench.engine.ddp import (
    DDPPlan,
    DDPStrategy,
    SyncedRunControl,
    inside_torchrun,
    plan_ddp,
)
from workbench.engine.devices import DeviceInfo
from workbench.engine.errors import DatasetError, DeviceError, TrainingError
from workbench.engine.experiment import (
    DataSpec,
    DDPSpec,
    Experiment,
    LayerSpec,
    ModelSpec,
    TrainSpec,
)
from workbench.engine.model_builder import build_model
from workbench.engine.reports import RecordingObserver
from workbench.engine.strategy import SingleDeviceStrategy
from workbench.engine.trainer import Trainer

CPU = DeviceInfo("cpu", "CPU", None, ("32-true", "bf16-mixed"), ("gloo",))


def gpu(index: int) -> DeviceInfo:
    return DeviceInfo(f"cuda:{index}", "GPU", 2**30, ("32-true", "16-mixed"), ("nccl", "gloo"))


def train_spec(**changes: object) -> TrainSpec:
    return TrainSpec(**{"optimizer": "sgd", "lr": 0.1, "device": "cpu", **changes})  # type: ignore[arg-type]


def experiment(batch_norm: bool = False, **train: object) -> Experiment:
    layers = [LayerSpec("Linear", {"out_features": 8})]
    if batch_norm:
        layers.append(LayerSpec("BatchNorm1d"))
    layers += [LayerSpec("ReLU"), LayerSpec("Linear", {"out_features": 2})]
    data = DataSpec(
        name="moons",
        batch_size=8,
        val_batch_size=64,
        options={"n_samples": 80, "noise": 0.1, "seed": 0},
    )
    return Experiment(model=ModelSpec(layers=tuple(layers)), data=data, train=train_spec(**train))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def world_of_one(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """torchrun's variables for a single rank, as torchrun would set them."""
    for name, value in {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }.items():
        monkeypatch.setenv(name, value)
    yield
    if dist.is_initialized():  # a failing test must not leave the group to the next one
        dist.destroy_process_group()


# ------------------------------------------------------------------ planning


def test_auto_uses_gloo_on_the_cpu_and_nccl_with_one_gpu_per_process() -> None:
    assert plan_ddp(train_spec(device="auto"), 2, [CPU]) == DDPPlan("cpu", "gloo")
    assert plan_ddp(train_spec(device="auto"), 2, [CPU, gpu(0), gpu(1)]) == DDPPlan("cuda", "nccl")
    assert plan_ddp(train_spec(device="cuda:1"), 2, [CPU, gpu(0), gpu(1)]).device_kind == "cuda"


def test_impossible_combinations_are_refused_with_the_fix() -> None:
    with pytest.raises(DeviceError, match=r"'nccl' needs CUDA GPUs.*backend = 'gloo'"):
        plan_ddp(train_spec(ddp=DDPSpec(backend="nccl")), 2, [CPU])
    with pytest.raises(DeviceError, match=r"needs 4 GPUs.*this machine has 2; use --nproc 2"):
        plan_ddp(train_spec(device="cuda"), 4, [CPU, gpu(0), gpu(1)])
    with pytest.raises(DeviceError, match=r"no CUDA GPU; set train\.device = 'cpu'"):
        plan_ddp(train_spec(device="cuda"), 2, [CPU])
    with pytest.raises(DeviceError, match="'mps' cannot train with DDP"):
        plan_ddp(train_spec(device="mps"), 2, [CPU])
    with pytest.raises(DeviceError, match="16-mixed"):
        plan_ddp(train_spec(precision="16-mixed"), 2, [CPU])


def test_a_rank_without_torchruns_environment_says_how_to_start_it() -> None:
    environ = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "2"}
    with pytest.raises(TrainingError, match=r"RANK is missing.*--nproc N.*torchrun"):
        DDPStrategy(train_spec(), environ=environ)
    assert not inside_torchrun({})
    assert inside_torchrun({"TORCHELASTIC_RUN_ID": "x"})


# ------------------------------------------------------------------ one rank, in process


def test_a_ddp_run_saves_plain_weights_equal_to_a_single_device_run(
    world_of_one: None, tmp_path: Path
) -> None:
    exp = experiment(epochs=2)
    plain = Trainer(exp)
    plain.fit()
    observer = RecordingObserver()
    ddp_run = Trainer(exp, observer=observer, out_dir=tmp_path, strategy=DDPStrategy(exp.train))
    ddp_run.prepare()
    assert isinstance(ddp_run.wrapped, DistributedDataParallel)
    assert dist.get_backend() == "gloo"
    summary = ddp_run.fit()

    assert not dist.is_initialized()  # fit() tore the group down
    assert summary["world_size"] == 1 and observer.started[0].world_size == 1
    weights = torch.load(tmp_path / "model.pth", weights_only=True)
    assert not [key for key in weights if key.startswith("module.")]
    fresh = build_model(exp.model, (2,)).module
    fresh.load_state_dict(weights, strict=True)
    for key, value in plain.model.state_dict().items():
        torch.testing.assert_close(weights[key], value)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(checkpoint["model"]) == set(weights)


def test_evaluation_bypasses_ddp_so_uneven_validation_shards_cannot_desync(
    world_of_one: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy = DDPStrategy(train_spec())
    strategy.setup()
    model = build_model(experiment(batch_norm=True).model, (2,)).module
    wrapped = strategy.wrap_model(model, torch.device("cpu"))
    x = torch.randn(4, 2)

    def ddp_forward(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("DDP's forward ran (it broadcasts buffers: a collective)")

    monkeypatch.setattr(DistributedDataParallel, "forward", ddp_forward)
    wrapped.eval()
    assert wrapped(x).shape == (4, 2)
    wrapped.train()
    with pytest.raises(AssertionError, match="collective"):
        wrapped(x)
    strategy.teardown()
    strategy.teardown()  # a second teardown is harmless
    assert not dist.is_initialized()


def test_metrics_reduce_and_flags_broadcast(world_of_one: None) -> None:
    strategy = DDPStrategy(train_spec())
    strategy.setup()
    try:
        values = torch.tensor([1.5, 2.0, 3.0], dtype=torch.float64)
        torch.testing.assert_close(strategy.reduce_sum(values), values)
        assert strategy.broadcast_flag(True) is True
        assert strategy.any_flag(False) is False
    finally:
        strategy.teardown()


def test_the_group_is_destroyed_when_prepare_fails(
    world_of_one: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ddp_module, "exit_with_parent", lambda: None)  # train_rank imports it
    data = DataSpec(name="csv", path=str(tmp_path / "missing.csv"))
    exp = dataclasses.replace(experiment(), data=data)
    args = argparse.Namespace(events=None, out=None, resume=None)
    with pytest.raises(DatasetError, match=r"missing.csv: file not found"):
        train_verb.train_rank(exp, args)
    assert not dist.is_initialized()


class SecondRank(SingleDeviceStrategy):
    """Rank 1 of 2 without a process group: shards its data, has no collectives to run."""

    rank, local_rank, world_size = 1, 1, 2


def test_a_rank_other_than_zero_prints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("rank 0 wrote this\n", encoding="utf-8")
    args = argparse.Namespace(events=str(events), out=str(tmp_path / "run"), resume=None)
    assert train_verb.train_here(experiment(), args, SecondRank()) == 0
    assert capsys.readouterr() == ("", "")
    assert events.read_text(encoding="utf-8") == "rank 0 wrote this\n"
    assert not (tmp_path / "run").exists()


class CountingStrategy:
    """Stands in for the ranks: records each agreed check."""

    def __init__(self) -> None:
        self.checks: list[bool] = []

    def any_flag(self, flag: bool) -> bool:
        self.checks.append(flag)
        return flag


def test_ranks_agree_on_a_stop_at_the_next_shared_check() -> None:
    strategy = CountingStrategy()
    control = SyncedRunControl(strategy, every=4)  # type: ignore[arg-type]
    assert all(control.wait_for_next_step() for _ in range(5))  # checks at calls 1 and 5
    control.request_stop()
    assert control.wait_for_next_step()  # no check at calls 6-8: the ranks run on together
    assert control.wait_for_next_step()
    assert control.wait_for_next_step()
    assert not control.wait_for_next_step()  # call 9 checks, and every rank stops here
    assert strategy.checks == [False, False, True]
    assert not control.wait_for_next_step()


# ------------------------------------------------------------------ shards


def test_each_rank_reshuffles_every_epoch_and_the_ranks_share_the_data_out() -> None:
    spec = DataSpec(name="moons", batch_size=8, options={"n_samples": 80, "seed": 0})
    ranks = [make_loaders(spec, seed=5, rank=rank, world_size=2).train for rank in (0, 1)]
    first, second = (rank.sample_order(1) for rank in ranks)
    assert ranks[0].sample_order(1) != ranks[0].sample_order(2)
    assert ranks[0].sample_order(2) == ranks[0].sample_order(2)  # a function of the epoch
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(64))
