"""A frozen backbone's features, computed once: every epoch then trains only the layers after it.

With `freeze = true` the backbone is a fixed function of the image (eval mode, no gradients), and
without random augmentation each image is the same every epoch, so its features are too. They
are computed in one pass over both splits, in index order, and kept in memory (or, when large,
in a file under the run folder); the batches then come from them in the very order the images
would have, so the run is the run that recomputes them, only faster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from workbench.engine.backbones import Backbone
from workbench.engine.datasets import BatchSource, Loaders, TensorBatchSource
from workbench.engine.datasets.loaders import EpochBatchSampler, LoaderBatchSource
from workbench.engine.experiment import Experiment
from workbench.engine.model_builder import BuiltModel
from workbench.engine.model_spec import INPUT
from workbench.engine.precision import Precision

MEMORY_BUDGET_BYTES = 2 * 1024**3  # larger caches go to a file
CACHE_FOLDER = "feature-cache"
Batch = tuple[torch.Tensor, torch.Tensor]


def cacheable_backbone(built: BuiltModel, experiment: Experiment) -> tuple[Backbone | None, str]:
    """The backbone whose features can be cached, or None and why not ("" without a backbone).

    It must be fully frozen, take the model's input (nothing else may), and see the same images
    every epoch (no random augmentation).
    """
    rows = [row for row in built.rows if row.type == "Backbone"]
    if not rows:
        return None, ""
    if len(rows) > 1:
        return None, "the model has more than one backbone"
    row = rows[0]
    backbone = built.module.get_submodule(row.path)
    assert isinstance(backbone, Backbone)
    if not backbone.always_eval:
        return None, f"'{row.name}' is not fully frozen (freeze = {backbone.freeze!r})"
    if row.inputs != (INPUT,) or any(INPUT in other.inputs for other in built.rows if other != row):
        return None, f"layers other than '{row.name}' take the model's input"
    augment = experiment.data.augment
    if augment is not None and augment.is_random:
        return None, "data.augment changes the images every epoch"
    return backbone, ""


class FeatureCache:
    """Computes the features once (`attach`) and switches the backbone to taking them; `detach`
    switches it back and removes any cache file."""

    def __init__(self, backbone: Backbone, folder: Path | None, rank: int = 0) -> None:
        self.backbone = backbone
        self.folder = folder
        self.rank = rank
        self.note = ""
        self._temporary: str | None = None
        self._files: list[Path] = []

    def attach(self, loaders: Loaders, device: torch.device, precision: Precision) -> Loaders:
        """Loaders whose batches are the backbone's features of the same samples, same order."""
        started = time.perf_counter()
        train = self._cached(loaders.train, "train", device, precision)
        val = self._cached(loaders.val, "val", device, precision)
        self.backbone.takes_features = True
        seconds = time.perf_counter() - started
        size = sum(source.x.numel() * source.x.element_size() for source in (train, val))
        where = f"in {self._files[0].parent}" if self._files else "in memory"
        self.note = (
            f"Feature cache: {self.backbone.arch} features of {len(train.x):,} training and "
            f"{len(val.x):,} validation samples computed once in {seconds:.1f} s "
            f"({_megabytes(size)} {where}); each epoch trains only the layers after the backbone"
        )
        return dataclasses.replace(loaders, train=train, val=val)

    def detach(self) -> None:
        self.backbone.takes_features = False
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
        for path in self._files:
            path.unlink(missing_ok=True)
        if self._files and self.folder is not None:
            with contextlib.suppress(OSError):
                (self.folder / CACHE_FOLDER).rmdir()

    def _cached(
        self, source: BatchSource, split: str, device: torch.device, precision: Precision
    ) -> TensorBatchSource:
        features: torch.Tensor | None = None
        labels: list[torch.Tensor] = []
        done = 0
        total = _dataset_size(source)
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad(), precision.forward_context():
                for x, y in _in_index_order(source):
                    out = self.backbone(x.to(device))
                    if features is None:
                        features = self._storage(total, out, split, device)
                    features[done : done + len(out)] = out.to(features.device)
                    labels.append(y)
                    done += len(out)
        finally:
            self.backbone.train(was_training)
        if features is None:  # an empty split
            features = torch.empty((0, self.backbone.feature_size), device=device)
        targets = torch.cat(labels).to(features.device) if labels else torch.empty(0).long()
        return TensorBatchSource(features, targets, source.batch_sampler, pin_memory=False)

    def _storage(
        self, total: int, sample: torch.Tensor, split: str, device: torch.device
    ) -> torch.Tensor:
        """Room for every sample's features: on the device, or in a file when too large."""
        shape = (total, *sample.shape[1:])
        size = math.prod(shape) * sample.element_size()
        if size <= MEMORY_BUDGET_BYTES:
            return torch.empty(shape, dtype=sample.dtype, device=device)
        folder = self._disk_folder()
        path = folder / f"{split}-rank{self.rank}.bin"
        self._files.append(path)
        stored = torch.from_file(str(path), shared=True, size=math.prod(shape), dtype=sample.dtype)
        return stored.view(shape)

    def _disk_folder(self) -> Path:
        if self.folder is None:
            if self._temporary is None:
                self._temporary = tempfile.mkdtemp(prefix="workbench-features-")
            return Path(self._temporary)
        folder = self.folder / CACHE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _dataset_size(source: BatchSource) -> int:
    if isinstance(source, TensorBatchSource):
        return len(source.x)
    assert isinstance(source, LoaderBatchSource)
    return len(source.loader.dataset)  # type: ignore[arg-type]


def _in_index_order(source: BatchSource) -> Iterator[Batch]:
    """Every sample of the split once, in index order (not the epoch's shuffled order)."""
    if isinstance(source, TensorBatchSource):
        step = max(source.batch_sampler.batch_size, 256)
        for start in range(0, len(source.x), step):
            yield source.x[start : start + step], source.y[start : start + step]
        return
    assert isinstance(source, LoaderBatchSource)
    loader: DataLoader[Any] = source.loader
    size = len(loader.dataset)  # type: ignore[arg-type]
    batch_size = source.batch_sampler.batch_size
    in_order = EpochBatchSampler(size, batch_size, shuffle=False, drop_last=False, seed=0)
    sequential = DataLoader(loader.dataset, batch_sampler=in_order, num_workers=loader.num_workers)
    yield from LoaderBatchSource(sequential, in_order)  # names a broken image as training does


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
