"""The decision boundary of a 2-D classifier: the predicted class and confidence over a grid."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.engine.insight.outputs import class_probabilities, mode, model_device
from workbench.engine.reports import BaseObserver, BatchReport, EpochReport, RunStarted

Range = tuple[float, float]


@dataclass(frozen=True, eq=False)
class BoundaryGrid:
    """The model's answer at every cell centre of a grid over the plane, stored compactly.

    `classes[row, column]` (uint8, or int16 past 255 classes) and `confidence[row, column]`
    (float16, the winning class's probability) are row-major: row 0 is the bottom edge
    (`y_range[0]`), column 0 the left edge (`x_range[0]`). A 200x200 grid takes 120 kB, so a
    run can keep one per epoch for the replay slider.
    """

    classes: np.ndarray[Any, np.dtype[Any]]
    confidence: np.ndarray[Any, np.dtype[Any]]
    x_range: Range
    y_range: Range

    @property
    def resolution(self) -> tuple[int, int]:
        """(columns, rows)."""
        rows, columns = self.classes.shape
        return columns, rows

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(left, bottom, width, height), the rectangle an image of the grid covers."""
        return (
            self.x_range[0],
            self.y_range[0],
            self.x_range[1] - self.x_range[0],
            self.y_range[1] - self.y_range[0],
        )

    def cell_of(self, points: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], ...]:
        """(rows, columns) of the cells holding each [x, y] point, clipped to the grid."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        columns, rows = self.resolution
        left, bottom, width, height = self.extent
        column = np.floor((points[:, 0] - left) / width * columns).astype(np.int64)
        row = np.floor((points[:, 1] - bottom) / height * rows).astype(np.int64)
        return np.clip(row, 0, rows - 1), np.clip(column, 0, columns - 1)

    def classes_at(self, points: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The class the grid shows under each [x, y] point."""
        return np.asarray(self.classes[self.cell_of(points)], dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self.classes.nbytes + self.confidence.nbytes)


def cell_centres(x_range: Range, y_range: Range, resolution: int | tuple[int, int]) -> torch.Tensor:
    """[rows * columns, 2] float32 points at the cell centres, row-major from the bottom left."""
    columns, rows = (resolution, resolution) if isinstance(resolution, int) else resolution
    if columns < 1 or rows < 1:
        raise ValueError(f"resolution {resolution!r} must be at least 1")
    xs = _centres(x_range, columns)
    ys = _centres(y_range, rows)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)


def _centres(bounds: Range, count: int) -> torch.Tensor:
    low, high = float(bounds[0]), float(bounds[1])
    if not high > low:
        raise ValueError(f"range {bounds!r} must go from low to high")
    step = (high - low) / count
    return torch.arange(count, dtype=torch.float64).mul(step).add(low + step / 2).float()


def decision_boundary(
    model: nn.Module,
    x_range: Range,
    y_range: Range,
    resolution: int | tuple[int, int] = 200,
) -> BoundaryGrid:
    """Predicted class and confidence of `model` on a resolution x resolution grid.

    One batched forward pass in eval mode under inference_mode, on the model's device; the
    model's own train/eval modes are restored afterwards. Call it between batches on the
    training thread, or on a `snapshot_model` copy from any other thread.
    """
    points = cell_centres(x_range, y_range, resolution)
    with torch.inference_mode(), mode(model, training=False):
        output = model(points.to(model_device(model)))
    probabilities = class_probabilities(output).cpu()
    confidence, classes = probabilities.max(dim=1)
    columns, rows = (resolution, resolution) if isinstance(resolution, int) else resolution
    class_dtype = np.uint8 if probabilities.shape[1] <= 256 else np.int16
    return BoundaryGrid(
        classes=classes.numpy().astype(class_dtype).reshape(rows, columns),
        confidence=confidence.numpy().astype(np.float16).reshape(rows, columns),
        x_range=(float(x_range[0]), float(x_range[1])),
        y_range=(float(y_range[0]), float(y_range[1])),
    )


def padded_ranges(
    points: np.ndarray[Any, Any] | torch.Tensor, margin: float = 0.1
) -> tuple[Range, Range]:
    """x and y ranges that hold every point with `margin` (a fraction of the span) around it.

    A degenerate axis (all points on one line) gets a span of 1 so the grid never collapses.
    """
    data = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(data) == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    low, high = data.min(axis=0), data.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    low, high = low - margin * span, high + margin * span
    return (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))


class BoundaryHistory:
    """One grid per epoch, for replaying how the boundary formed (epoch 0: before training)."""

    def __init__(self, max_epochs: int = 1000) -> None:
        self.max_epochs = max_epochs
        self._grids: dict[int, BoundaryGrid] = {}

    def record(self, epoch: int, grid: BoundaryGrid) -> None:
        self._grids[epoch] = grid
        if len(self._grids) > self.max_epochs:
            # Thin out every other older epoch, keeping the first and the newest.
            epochs = sorted(self._grids)
            for old in epochs[1:-1:2]:
                del self._grids[old]

    @property
    def epochs(self) -> list[int]:
        return sorted(self._grids)

    def at(self, epoch: int) -> BoundaryGrid:
        """The grid of `epoch`, or of the latest recorded epoch before it."""
        earlier = [known for known in self._grids if known <= epoch]
        return self._grids[max(earlier) if earlier else min(self._grids)]

    def clear(self) -> None:
        self._grids.clear()

    def __len__(self) -> int:
        return len(self._grids)

    @property
    def nbytes(self) -> int:
        return sum(grid.nbytes for grid in self._grids.values())


GridCallback = Callable[[int, int, BoundaryGrid], None]


class LiveBoundary(BaseObserver):
    """A training observer that recomputes the boundary every N batches and after each epoch.

    It runs on the training thread between batches (so the model is never read mid-step) and
    hands each grid to `on_grid(epoch, batch, grid)`; batch is -1 for the end-of-epoch grid,
    which also goes into `history`. `min_interval_seconds` caps the refresh rate, so a fast
    run does not spend its time drawing: the window only needs a few frames a second.
    """

    def __init__(
        self,
        model: Callable[[], nn.Module | None],
        x_range: Range,
        y_range: Range,
        on_grid: GridCallback | None = None,
        *,
        resolution: int = 200,
        every_n_batches: int = 10,
        min_interval_seconds: float = 0.2,
    ) -> None:
        self.model, self.on_grid = model, on_grid
        self.x_range, self.y_range, self.resolution = x_range, y_range, resolution
        self.every_n_batches = max(1, every_n_batches)
        self.min_interval_seconds = min_interval_seconds
        self.history = BoundaryHistory()
        self.refreshes = 0
        self._last_refresh = -float("inf")

    def refresh(self, epoch: int, batch: int) -> BoundaryGrid | None:
        model = self.model()
        if model is None:
            return None
        grid = decision_boundary(model, self.x_range, self.y_range, self.resolution)
        self.refreshes += 1
        self._last_refresh = time.monotonic()
        if batch < 0:
            self.history.record(epoch, grid)
        if self.on_grid is not None:
            self.on_grid(epoch, batch, grid)
        return grid

    def on_started(self, report: RunStarted) -> None:
        self.refresh(report.start_epoch - 1, -1)  # the untrained (or resumed) starting point

    def on_batch_end(self, report: BatchReport) -> None:
        if (report.batch + 1) % self.every_n_batches:
            return
        if time.monotonic() - self._last_refresh < self.min_interval_seconds:
            return
        self.refresh(report.epoch, report.batch)

    def on_epoch_end(self, report: EpochReport) -> None:
        self.refresh(report.epoch, -1)
