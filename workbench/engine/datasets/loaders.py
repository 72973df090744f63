"""Batches for training: a DataLoader path and a tensor-indexing fast path with the same order.

Both paths draw their batches from one `EpochBatchSampler`, whose order depends only on
(seed, epoch): a run resumed at epoch 3 reshuffles exactly like one that never stopped, and
every DDP rank reshuffles each epoch (`DistributedSampler.set_epoch`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

from workbench.engine.datasets.base import DatasetInfo
from workbench.engine.datasets.catalogue import holds_tensors, load_splits
from workbench.engine.datasets.image_transforms import Preprocessing
from workbench.engine.devices import available_devices
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

Batch = tuple[torch.Tensor, torch.Tensor]


class _StridedSampler(Sampler[int]):
    """Every `world_size`-th index from `rank`, unpadded: shards that sum to the whole."""

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self._indices = range(rank, size, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


class _Sizes(Dataset[int]):
    """Stands in for a dataset where a sampler only needs its length."""

    def __init__(self, size: int) -> None:
        self._size = size

    def __getitem__(self, index: int) -> int:
        return index

    def __len__(self) -> int:
        return self._size


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices for the current epoch; the order is a function of (seed, epoch).

    Training: `RandomSampler` with a generator seeded `seed + epoch` (or `SequentialSampler`), or
    `DistributedSampler(num_replicas=world_size, rank=rank, shuffle, seed, drop_last)` with
    `set_epoch(epoch)` when world_size > 1 -- the same permutation `torch.randperm` gives for
    seed + epoch, so one process and a one-process DDP run agree. Validation never shuffles and
    shards without padding, so summing the ranks' counts gives exact totals.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        training: bool = True,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not within world_size {world_size}")
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size, self.training = rank, world_size, training
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def index_sampler(self, epoch: int) -> Sampler[int]:
        """A fresh torch sampler for `epoch`; building one per epoch keeps the order pure."""
        if not self.training:
            if self.world_size > 1:
                return _StridedSampler(self.size, self.rank, self.world_size)
            return SequentialSampler(range(self.size))
        if self.world_size > 1:
            distributed: DistributedSampler[int] = DistributedSampler(
                _Sizes(self.size),
                num_replicas=self.world_size,
                rank=self.rank,
                shuffle=self.shuffle,
                seed=self.seed,
                drop_last=self.drop_last,
            )
            distributed.set_epoch(epoch)
            return distributed
        if not self.shuffle:
            return SequentialSampler(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return RandomSampler(range(self.size), generator=generator)

    def batches(self, epoch: int) -> Iterator[list[int]]:
        return iter(BatchSampler(self.index_sampler(epoch), self.batch_size, self.drop_last))

    def __iter__(self) -> Iterator[list[int]]:
        return self.batches(self.epoch)

    def __len__(self) -> int:
        return len(BatchSampler(self.index_sampler(0), self.batch_size, self.drop_last))

    @property
    def samples_per_epoch(self) -> int:
        per_rank = len(self.index_sampler(0))  # type: ignore[arg-type]
        if self.drop_last:
            return per_rank - per_rank % self.batch_size
        return per_rank


class BatchSource(ABC):
    """An epoch's (x, y) batches; call `set_epoch(epoch)` before iterating each epoch."""

    def __init__(self, sampler: EpochBatchSampler) -> None:
        self.batch_sampler = sampler

    @abstractmethod
    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.batch_sampler.epoch

    @property
    def dataset_size(self) -> int:
        """Samples this rank sees per epoch (after DDP sharding and drop_last)."""
        return self.batch_sampler.samples_per_epoch

    def sample_order(self, epoch: int) -> list[int]:
        """The dataset indices of `epoch`, in the order their batches come (this rank only)."""
        return [index for batch in self.batch_sampler.batches(epoch) for index in batch]


class TensorBatchSource(BatchSource):
    """The fast path: whole tensors in memory, each batch one `x[idx]` gather -- no collate."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, sampler: EpochBatchSampler, pin_memory: bool
    ) -> None:
        super().__init__(sampler)
        self.x, self.y, self.pin_memory = x, y, pin_memory

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.batch_sampler:
            index = torch.tensor(batch, dtype=torch.long)
            x, y = self.x[index], self.y[index]
            if self.pin_memory:
                x, y = x.pin_memory(), y.pin_memory()
            yield x, y


class LoaderBatchSource(BatchSource):
    """The DataLoader path: per-sample `__getitem__` and collate, optionally in worker processes."""

    def __init__(self, loader: DataLoader[Any], sampler: EpochBatchSampler) -> None:
        super().__init__(sampler)
        self.loader = loader

    def __iter__(self) -> Iterator[Batch]:
        try:
            yield from self.loader
        except DatasetError as exc:  # e.g. a broken image; from a worker it wraps a traceback
            raise DatasetError(_without_traceback(str(exc))) from None


def _without_traceback(message: str) -> str:
    """A DatasetError's own message, from the traceback a DataLoader worker wraps around it."""
    marker = f"{DatasetError.__name__}: "
    return message[message.rindex(marker) + len(marker) :].strip() if marker in message else message


@dataclass(frozen=True)
class Loaders:
    """Training and validation batches; `fast_path` says whether they come from whole tensors."""

    train: BatchSource
    val: BatchSource
    info: DatasetInfo
    fast_path: bool


def make_loaders(
    spec: DataSpec,
    seed: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    preprocessing: Preprocessing | None = None,
) -> Loaders:
    """Load the dataset and wrap both splits as batch sources for this rank; `preprocessing`
    is a pretrained backbone's, for image folders."""
    splits = load_splits(spec, seed, preprocessing)
    fast = holds_tensors(spec, splits)
    pin = spec.pin_memory and _has_cuda()
    sources: list[BatchSource] = []
    for dataset, training in ((splits.train, True), (splits.val, False)):
        sampler = EpochBatchSampler(
            len(dataset),  # type: ignore[arg-type]
            spec.batch_size if training else spec.val_batch_size,
            shuffle=spec.shuffle and training,
            drop_last=spec.drop_last and training,
            seed=seed,
            rank=rank,
            world_size=world_size,
            training=training,
        )
        if fast and isinstance(dataset, TensorDataset):
            x, y = dataset.tensors
            sources.append(TensorBatchSource(x, y, sampler, pin))
        else:
            sources.append(
                LoaderBatchSource(_data_loader(dataset, sampler, spec, seed, pin), sampler)
            )
    train, val = sources
    if len(train) == 0:
        raise DatasetError(
            f"data.batch_size: the training split has {splits.info.train_size} samples, which "
            f"make no full batch of {spec.batch_size} with drop_last = true; lower "
            "data.batch_size or set data.drop_last = false"
        )
    return Loaders(train, val, splits.info, fast)


def _data_loader(
    dataset: Dataset[Any], sampler: EpochBatchSampler, spec: DataSpec, seed: int, pin: bool
) -> DataLoader[Any]:
    workers = spec.num_workers
    extra: dict[str, Any] = {}
    if workers > 0:
        # DataLoader refuses these two without workers; they mean nothing in-process anyway.
        extra["persistent_workers"] = spec.persistent_workers
        if spec.prefetch_factor is not None:
            extra["prefetch_factor"] = spec.prefetch_factor
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        # Seeds the workers only; a separate generator, so it never shifts the sample order.
        generator=torch.Generator().manual_seed(seed),
        **extra,
    )


def _has_cuda() -> bool:
    """pin_memory only helps copies to a CUDA GPU (and DataLoader warns when there is none)."""
    return any(device.kind == "cuda" for device in available_devices())
