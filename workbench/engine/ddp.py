"""DistributedDataParallel as a strategy plug-in: each torchrun rank trains a replica on a shard."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from workbench.engine.control import RunControl
from workbench.engine.devices import DeviceInfo, available_devices, check_precision, resolve_device
from workbench.engine.errors import DeviceError, TrainingError
from workbench.engine.experiment import TrainSpec
from workbench.engine.strategy import SingleDeviceStrategy

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
STOP_CHECK_EVERY = 8  # optimizer steps between agreed stop checks: one tiny all_reduce each


def inside_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """True in a process that torchrun (or torch.distributed.run) started as a rank."""
    env = os.environ if environ is None else environ
    return "TORCHELASTIC_RUN_ID" in env or "LOCAL_RANK" in env


@dataclass(frozen=True)
class DDPPlan:
    """What every rank of a DDP run trains on and how the ranks talk."""

    device_kind: str  # "cpu" or "cuda"; each CUDA rank takes cuda:LOCAL_RANK
    backend: str  # "gloo" or "nccl"


def plan_ddp(
    train: TrainSpec, nproc_per_node: int, devices: list[DeviceInfo] | None = None
) -> DDPPlan:
    """Choose the device kind and backend for `train`, or explain why DDP cannot run so."""
    devices = available_devices() if devices is None else devices
    if not dist.is_available():
        raise DeviceError("this PyTorch build has no torch.distributed, so DDP cannot run")
    kind = _device_kind(train.device, devices)
    if kind == "cuda":
        _check_gpu_count(train.device, nproc_per_node, devices)
    backend = _backend(train.ddp.backend, kind)
    check_precision(resolve_device("cuda:0" if kind == "cuda" else "cpu", devices), train.precision)
    return DDPPlan(kind, backend)


def _device_kind(requested: str, devices: list[DeviceInfo]) -> str:
    kind = ddp_device_kind(requested, any(device.kind == "cuda" for device in devices))
    if kind == "cpu" and requested != "auto":
        resolve_device(requested, devices)  # "cpu", or an error listing what there is
    return kind


def ddp_device_kind(requested: str, cuda_present: bool) -> str:
    """ "cuda" or "cpu": what the ranks train on for train.device `requested` (never mps)."""
    if requested == "mps":
        raise DeviceError(
            "device 'mps' cannot train with DDP: no torch.distributed backend runs on Apple "
            "GPUs; set train.device = 'cpu' for DDP, or turn DDP off to train on mps"
        )
    if requested.startswith("cuda"):
        return "cuda"  # every rank takes its own GPU, cuda:LOCAL_RANK, whatever N was asked
    if requested == "auto":
        # MPS is skipped on purpose: DDP cannot use it, and the CPU always can.
        return "cuda" if cuda_present else "cpu"
    return "cpu"


def _check_gpu_count(requested: str, nproc_per_node: int, devices: list[DeviceInfo]) -> None:
    gpus = sum(device.kind == "cuda" for device in devices)
    if gpus >= nproc_per_node:
        return
    needs = (
        f"device {requested!r} with {nproc_per_node} DDP processes needs {nproc_per_node} GPUs "
        "(one per process)"
    )
    if gpus == 0:
        raise DeviceError(f"{needs}, but this machine has no CUDA GPU; set train.device = 'cpu'")
    raise DeviceError(
        f"{needs}, but this machine has {gpus}; use --nproc {gpus} "
        f"(or train.ddp.nproc_per_node = {gpus}), or set train.device = 'cpu'"
    )


def auto_backend(device_kind: str) -> str:
    """The process-group backend train.ddp.backend = "auto" picks: nccl on CUDA, gloo otherwise."""
    return "nccl" if device_kind == "cuda" else "gloo"


def _backend(setting: str, kind: str) -> str:
    if setting == "auto":
        return auto_backend(kind)
    if setting == "nccl" and kind != "cuda":
        raise DeviceError(
            "train.ddp.backend 'nccl' needs CUDA GPUs, but this run trains on the CPU; "
            "use backend = 'gloo' (or 'auto')"
        )
    if setting == "nccl" and not dist.is_nccl_available():
        raise DeviceError(
            "train.ddp.backend 'nccl' is not available in this PyTorch build (Windows and "
            "CPU-only builds have no NCCL); use backend = 'gloo' (or 'auto')"
        )
    return setting


def _env_int(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ[name])
    except (KeyError, ValueError):
        raise TrainingError(
            f"DDP needs torchrun's environment, but {name} is "
            f"{'missing' if name not in environ else repr(environ[name])}; start the run with "
            "`workbench train EXP.toml --nproc N` or under torchrun"
        ) from None


class _EvalDirectDDP(DistributedDataParallel):
    """DDP whose eval-mode forward skips DDP: validation shards differ in length across ranks,
    and DDP's per-forward buffer broadcast would then pair collectives of different batches."""

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        if not self.training:
            return self.module(*inputs, **kwargs)
        return super().forward(*inputs, **kwargs)  # type: ignore[no-untyped-call]


class DDPStrategy(SingleDeviceStrategy):
    """One rank of a torchrun job: joins the process group and keeps the replicas in step."""

    def __init__(
        self,
        train: TrainSpec,
        environ: Mapping[str, str] | None = None,
        devices: list[DeviceInfo] | None = None,
    ) -> None:
        env = dict(os.environ if environ is None else environ)
        for name in TORCHRUN_VARIABLES[3:]:
            if not env.get(name):
                raise TrainingError(
                    f"DDP needs torchrun's environment, but {name} is missing; start the run "
                    "with `workbench train EXP.toml --nproc N` or under torchrun"
                )
        self.rank = _env_int(env, "RANK")
        self.local_rank = _env_int(env, "LOCAL_RANK")
        self.world_size = _env_int(env, "WORLD_SIZE")
        self.local_world_size = int(env.get("LOCAL_WORLD_SIZE", self.local_rank + 1))
        self.address = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
        self.train_spec = train
        self.timeout_seconds = train.ddp.timeout_seconds
        self._devices = devices
        self.backend: str | None = None
        self.device = torch.device("cpu")

    def setup(self) -> None:
        """Pick this rank's device and backend, then join the process group (env://)."""
        plan = plan_ddp(self.train_spec, self.local_world_size, self._devices)
        if plan.device_kind == "cuda":
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        if sys.platform == "win32":
            os.environ.setdefault("USE_LIBUV", "0")  # Windows wheels may lack libuv TCPStore
        self.backend = plan.backend
        try:
            dist.init_process_group(
                plan.backend,
                init_method="env://",
                rank=self.rank,
                world_size=self.world_size,
                timeout=datetime.timedelta(seconds=self.timeout_seconds),
                device_id=self.device if plan.backend == "nccl" else None,
            )
        except (RuntimeError, ValueError) as exc:  # DistError is a RuntimeError
            raise TrainingError(
                f"rank {self.rank} could not join the other {self.world_size - 1} training "
                f"process(es) at {self.address} ({_first_line(exc)}); start every rank with "
                "the same torchrun settings, or raise train.ddp.timeout_seconds "
                f"(now {self.timeout_seconds})"
            ) from None

    def device_name(self, requested: str) -> str:
        return str(self.device)

    def wrap_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        device_ids = [device.index] if device.type == "cuda" else None
        return _EvalDirectDDP(model, device_ids=device_ids)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model.module if isinstance(model, DistributedDataParallel) else model

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        if isinstance(model, DistributedDataParallel):
            with model.no_sync():
                yield
        else:
            yield

    def reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        reduced = values.to(self.device)  # nccl reduces CUDA tensors only
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def broadcast_flag(self, flag: bool) -> bool:
        value = torch.tensor([int(flag)], dtype=torch.int32, device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def any_flag(self, flag: bool) -> bool:
        """True on every rank when any rank says True (a stop asked of one rank stops all)."""
        value = torch.tensor([int(flag)], dtype=torch.int32, device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def teardown(self) -> None:
        """Leave the process group; safe to call again, and on every exit path."""
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


class SyncedRunControl(RunControl):
    """Stop requests that all ranks agree on, so no rank waits in a collective for a stopped one.

    Every rank checks at the same loop positions (ranks run equally many batches), and every
    `every`-th check the ranks combine their stop flags with one all_reduce.
    """

    def __init__(self, strategy: DDPStrategy, every: int = STOP_CHECK_EVERY) -> None:
        super().__init__()
        self.strategy = strategy
        self.every = every
        self._checks = 0
        self._agreed_stop = False

    def wait_for_next_step(self) -> bool:
        if not self._agreed_stop and self._checks % self.every == 0:
            self._agreed_stop = self.strategy.any_flag(self.stop_requested)
        self._checks += 1
        return not self._agreed_stop


def exit_with_parent(poll_seconds: float = 0.5) -> None:
    """End this rank when its torchrun dies: a killed launcher must leave no rank training."""
    if sys.platform == "win32":
        return
    parent = os.getppid()
    if parent == 1:
        return

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="workbench-parent-watch", daemon=True).start()


def is_lost_peer_error(exc: BaseException) -> bool:
    """Whether `exc` says another rank went away (a consequence, not the cause, of a failure)."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        marker in text
        for marker in ("Connection closed by peer", "Connection reset by peer", "gloo", "NCCL")
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
