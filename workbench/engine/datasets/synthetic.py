"""Bundled point sets (toy, moons, circles, xor, spirals; blobs in any dimension): offline, instant."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from workbench.engine.datasets.base import OptionSpec

# The five training and two test points of the classic "PyTorch in one hour" intro.
TOY_X_TRAIN = ((-1.2, 3.1), (-0.9, 2.9), (-0.5, 2.6), (2.3, -1.1), (2.7, -1.5))
TOY_Y_TRAIN = (0, 0, 0, 1, 1)
TOY_X_TEST = ((-0.8, 2.8), (2.6, -1.6))
TOY_Y_TEST = (0, 1)


def toy_splits() -> tuple[TensorDataset, TensorDataset]:
    """The toy set with its own fixed test split (no val_split, no seed)."""
    train = TensorDataset(
        torch.tensor(TOY_X_TRAIN, dtype=torch.float32), torch.tensor(TOY_Y_TRAIN, dtype=torch.int64)
    )
    val = TensorDataset(
        torch.tensor(TOY_X_TEST, dtype=torch.float32), torch.tensor(TOY_Y_TEST, dtype=torch.int64)
    )
    return train, val


def _n_samples(default: int = 500) -> OptionSpec:
    return OptionSpec("n_samples", int, default, "number of points", 2, 10_000_000)


def _seed() -> OptionSpec:
    return OptionSpec("seed", int, 0, "seed of the point generator (the data, not the split)", 0)


def _noise(default: float, help_text: str) -> OptionSpec:
    return OptionSpec("noise", float, default, help_text, 0.0)


def _classes(default: int) -> OptionSpec:
    return OptionSpec("classes", int, default, "number of classes", 2, 100)


def _features() -> OptionSpec:
    return OptionSpec(
        "features", int, 2, "coordinates per point: 2 lie on a plane, more feed a wider input", 1,
        10_000,
    )  # fmt: skip


def _two(options: Mapping[str, Any]) -> int:
    return 2


@dataclass(frozen=True)
class PointSet:
    """A 2-D point generator with its knobs and how it names its classes."""

    options: tuple[OptionSpec, ...]
    generate: Callable[[Mapping[str, Any]], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
    class_names: Callable[[Mapping[str, Any]], tuple[str, ...]]
    features: Callable[[Mapping[str, Any]], int] = _two  # coordinates per point

    def kind(self, options: Mapping[str, Any]) -> str:
        """ "points2d" for points on a plane (drawn, with decision boundaries), else "table"."""
        return "points2d" if self.features(options) == 2 else "table"

    def tensors(self, options: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.generate(options)
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def _moons(options: Mapping[str, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from sklearn.datasets import make_moons

    return make_moons(  # type: ignore[no-any-return]
        n_samples=options["n_samples"], noise=options["noise"], random_state=options["seed"]
    )


def _circles(options: Mapping[str, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from sklearn.datasets import make_circles

    return make_circles(  # type: ignore[no-any-return]
        n_samples=options["n_samples"],
        noise=options["noise"],
        factor=options["factor"],
        random_state=options["seed"],
    )


def _blobs(options: Mapping[str, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        n_samples=options["n_samples"],
        n_features=options["features"],
        centers=options["classes"],
        cluster_std=options["noise"],
        random_state=options["seed"],
    )
    return x, y


def _xor(options: Mapping[str, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Uniform points in [-1, 1]^2; class 1 where the coordinates' signs differ, then jitter."""
    rng = np.random.default_rng(options["seed"])
    x = rng.uniform(-1.0, 1.0, size=(options["n_samples"], 2))
    y = (x[:, 0] * x[:, 1] < 0).astype(np.int64)
    return x + rng.normal(0.0, options["noise"], size=x.shape), y


def _spirals(options: Mapping[str, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Interleaved spiral arms (the CS231n classic); noise jitters each point's angle."""
    rng = np.random.default_rng(options["seed"])
    classes, total = options["classes"], options["n_samples"]
    counts = [total // classes + (1 if arm < total % classes else 0) for arm in range(classes)]
    points, labels = [], []
    for arm, count in enumerate(counts):
        radius = np.linspace(0.0, 1.0, count)
        start = arm * 2 * math.pi / classes
        angle = start + radius * 2.5 * math.pi + rng.normal(0.0, options["noise"], count)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(count, arm, dtype=np.int64))
    return np.concatenate(points), np.concatenate(labels)


def _numbered(prefix: str) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    return lambda options: tuple(f"{prefix} {index}" for index in range(options["classes"]))


def _fixed(*names: str) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    return lambda options: names


POINT_SETS: dict[str, PointSet] = {
    "moons": PointSet(
        (_n_samples(), _noise(0.1, "std of the Gaussian noise added to each point"), _seed()),
        _moons,
        _fixed("upper moon", "lower moon"),
    ),
    "circles": PointSet(
        (
            _n_samples(),
            _noise(0.05, "std of the Gaussian noise added to each point"),
            OptionSpec("factor", float, 0.5, "inner circle radius / outer radius", 0.0, 0.999),
            _seed(),
        ),
        _circles,
        _fixed("outer circle", "inner circle"),
    ),
    "xor": PointSet(
        (_n_samples(), _noise(0.05, "std of the Gaussian jitter added to each point"), _seed()),
        _xor,
        _fixed("same sign", "opposite signs"),
    ),
    "spirals": PointSet(
        (_n_samples(), _noise(0.2, "std of the angle jitter, radians"), _classes(3), _seed()),
        _spirals,
        _numbered("arm"),
    ),
    "blobs": PointSet(
        (_n_samples(), _noise(1.0, "std of each Gaussian blob"), _classes(3), _features(), _seed()),
        _blobs,
        _numbered("blob"),
        lambda options: int(options["features"]),
    ),
}
