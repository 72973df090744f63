"""Batch sources: the fast path and the DataLoader path agree batch for batch, epoch by epoch."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.engine.datasets import (
    BatchSource,
    LoaderBatchSource,
    TensorBatchSource,
    make_loaders,
)
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

MOONS = DataSpec(name="moons", batch_size=8, val_batch_size=16, options={"n_samples": 50})


def _epoch(source: BatchSource, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    source.set_epoch(epoch)
    return list(source)


def _same_batches(a: BatchSource, b: BatchSource, epoch: int) -> bool:
    batches_a, batches_b = _epoch(a, epoch), _epoch(b, epoch)
    return len(batches_a) == len(batches_b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb)
        for (xa, ya), (xb, yb) in zip(batches_a, batches_b, strict=True)
    )


def test_in_memory_data_takes_the_fast_path() -> None:
    fast = make_loaders(MOONS, seed=1)
    slow = make_loaders(replace(MOONS, in_memory=False), seed=1)
    assert fast.fast_path and isinstance(fast.train, TensorBatchSource)
    assert not slow.fast_path and isinstance(slow.train, LoaderBatchSource)
    assert fast.info == slow.info


@pytest.mark.parametrize("name", ["toy", "moons", "digits"])
def test_fast_path_and_dataloader_give_identical_batches_every_epoch(name: str) -> None:
    options = {"n_samples": 50} if name == "moons" else {}
    spec = DataSpec(name=name, batch_size=7, val_batch_size=9, options=options)
    fast = make_loaders(spec, seed=3)
    slow = make_loaders(replace(spec, in_memory=False), seed=3)
    for epoch in range(3):
        assert _same_batches(fast.train, slow.train, epoch), epoch
        assert _same_batches(fast.val, slow.val, epoch), epoch


def _write_idx(folder: Path, prefix: str, count: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8).tobytes()
    labels = (np.arange(count) % 10).astype(np.uint8).tobytes()
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x0803, count, 28, 28) + images
    )
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x0801, count) + labels)


def test_mnist_fast_path_matches_torchvision_transforms_batch_for_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write_idx(tmp_path / "MNIST" / "raw", "train", 30, rng)
    _write_idx(tmp_path / "MNIST" / "raw", "t10k", 10, rng)
    spec = DataSpec(name="mnist", root=str(tmp_path), batch_size=8, val_batch_size=4)
    fast = make_loaders(spec, seed=7)
    slow = make_loaders(replace(spec, in_memory=False), seed=7)
    assert fast.fast_path and not slow.fast_path
    for epoch in (0, 1):
        assert _same_batches(fast.train, slow.train, epoch)
        assert _same_batches(fast.val, slow.val, epoch)


def test_each_epoch_has_its_own_order_and_covers_every_sample() -> None:
    train = make_loaders(MOONS, seed=1).train
    orders = [train.sample_order(epoch) for epoch in range(3)]
    assert len({tuple(order) for order in orders}) == 3
    for order in orders:
        assert sorted(order) == list(range(40))


def test_order_depends_only_on_seed_and_epoch_so_resuming_reshuffles_the_same() -> None:
    uninterrupted = make_loaders(MOONS, seed=5).train
    for epoch in range(3):
        batches = _epoch(uninterrupted, epoch)
    resumed = make_loaders(MOONS, seed=5).train
    resumed_batches = _epoch(resumed, 2)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, resumed_batches, strict=True))
    other_seed = make_loaders(MOONS, seed=6).train
    assert other_seed.sample_order(2) != resumed.sample_order(2)


def test_single_process_shuffle_is_randperm_of_seed_plus_epoch() -> None:
    train = make_loaders(MOONS, seed=11).train
    expected = torch.randperm(40, generator=torch.Generator().manual_seed(11 + 4)).tolist()
    assert train.sample_order(4) == expected


def test_iterating_follows_set_epoch() -> None:
    train = make_loaders(MOONS, seed=2).train
    train.set_epoch(3)
    seen = torch.cat([y for _, y in train])
    x_all, y_all = train.x, train.y  # type: ignore[attr-defined]
    assert torch.equal(seen, y_all[torch.tensor(train.sample_order(3))])
    assert x_all.shape == (40, 2)


def test_validation_never_shuffles() -> None:
    loaders = make_loaders(MOONS, seed=1)
    assert loaders.val.sample_order(0) == list(range(10))
    assert loaders.val.sample_order(5) == list(range(10))


def test_shuffle_off_keeps_dataset_order() -> None:
    spec = replace(MOONS, shuffle=False)
    train = make_loaders(spec, seed=1).train
    assert train.sample_order(0) == train.sample_order(1) == list(range(40))


def test_batch_counts_sizes_and_drop_last() -> None:
    keep = make_loaders(MOONS, seed=1)
    assert len(keep.train) == 5 and keep.train.dataset_size == 40
    assert [len(y) for _, y in keep.train] == [8, 8, 8, 8, 8]
    spec = replace(MOONS, batch_size=12, drop_last=True)
    dropped = make_loaders(spec, seed=1)
    assert len(dropped.train) == 3 and dropped.train.dataset_size == 36
    assert [len(y) for _, y in dropped.train] == [12, 12, 12]
    assert len(dropped.val) == 1 and dropped.val.dataset_size == 10  # validation keeps all


def test_drop_last_with_too_few_samples_is_explained() -> None:
    spec = DataSpec(name="toy", batch_size=8, drop_last=True)
    with pytest.raises(DatasetError, match=r"data\.batch_size: the training split has 5 samples"):
        make_loaders(spec, seed=0)


def test_two_ranks_partition_the_training_data_and_reshuffle_each_epoch() -> None:
    spec = replace(MOONS, batch_size=4)
    ranks = [make_loaders(spec, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for epoch in (0, 1):
        orders = [loaders.train.sample_order(epoch) for loaders in ranks]
        assert len(orders[0]) == len(orders[1]) == 20
        assert set(orders[0]).isdisjoint(orders[1])
        assert sorted(orders[0] + orders[1]) == list(range(40))
    assert ranks[0].train.sample_order(0) != ranks[0].train.sample_order(1)
    assert all(loaders.train.dataset_size == 20 and len(loaders.train) == 5 for loaders in ranks)


def test_ranks_pad_uneven_training_data_like_distributed_sampler() -> None:
    spec = DataSpec(name="toy", batch_size=2)
    orders = [
        make_loaders(spec, seed=0, rank=r, world_size=2).train.sample_order(0) for r in (0, 1)
    ]
    assert len(orders[0]) == len(orders[1]) == 3
    assert set(orders[0] + orders[1]) == set(range(5))


def test_ranks_split_validation_exactly_without_padding() -> None:
    spec = DataSpec(name="toy", val_batch_size=1)
    shards = [make_loaders(spec, seed=0, rank=r, world_size=3).val for r in range(3)]
    assert [shard.sample_order(0) for shard in shards] == [[0], [1], []]
    assert sum(shard.dataset_size for shard in shards) == 2


def test_fast_path_and_dataloader_agree_on_every_rank() -> None:
    spec = replace(MOONS, batch_size=6)
    slow_spec = replace(spec, in_memory=False)
    for rank in (0, 1):
        fast = make_loaders(spec, seed=9, rank=rank, world_size=2)
        slow = make_loaders(slow_spec, seed=9, rank=rank, world_size=2)
        assert _same_batches(fast.train, slow.train, 1)
        assert _same_batches(fast.val, slow.val, 1)


def test_bad_rank_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="rank 2 is not within world_size 2"):
        make_loaders(MOONS, seed=0, rank=2, world_size=2)


def test_worker_options_reach_the_dataloader_and_keep_the_order() -> None:
    spec = replace(
        MOONS,
        in_memory=False,
        num_workers=1,
        persistent_workers=True,
        prefetch_factor=3,
    )
    slow = make_loaders(spec, seed=4)
    assert isinstance(slow.train, LoaderBatchSource)
    loader = slow.train.loader
    assert (loader.num_workers, loader.persistent_workers, loader.prefetch_factor) == (1, True, 3)
    fast = make_loaders(MOONS, seed=4)
    assert _same_batches(fast.train, slow.train, 0)
    assert _same_batches(fast.train, slow.train, 1)


def test_worker_only_options_are_ignored_without_workers_and_pinning_without_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("workbench.engine.datasets.loaders._has_cuda", lambda: False)
    spec = replace(
        MOONS,
        in_memory=False,
        persistent_workers=True,
        prefetch_factor=4,
        pin_memory=True,
    )
    slow = make_loaders(spec, seed=0)
    assert isinstance(slow.train, LoaderBatchSource)
    assert slow.train.loader.num_workers == 0 and not slow.train.loader.pin_memory
    assert len(list(slow.train)) == 5  # and no warning about pinning without a GPU
