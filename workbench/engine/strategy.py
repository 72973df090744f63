"""Distribution strategy plug-in: how the model is wrapped and how metrics combine across ranks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class SingleDeviceStrategy:
    """One process, one device: wrapping, syncing and reducing are no-ops."""

    rank = 0
    local_rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self) -> None:
        pass

    def device_name(self, requested: str) -> str:
        """The device this process trains on, given the experiment's device setting."""
        return requested

    def wrap_model(self, model: nn.Module, device: torch.device) -> nn.Module:
        return model

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        """Skip the gradient all-reduce on accumulating micro-batches (meaningful under DDP)."""
        yield

    def reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a 1-D float64 tensor of metrics over all ranks."""
        return values

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's decision (stop, early-stop) for every rank."""
        return flag

    def teardown(self) -> None:
        pass
