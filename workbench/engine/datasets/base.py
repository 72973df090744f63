"""Shared pieces of the dataset catalogue: what a dataset reports, its options, and the split."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

KINDS = ("points2d", "image", "table", "text")


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset gives a model: one sample's shape, the classes, and the split sizes."""

    name: str
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    train_size: int
    val_size: int
    kind: str  # one of KINDS
    description: str
    input_dtype: str = "float32"  # "long": samples are token ids
    vocab_size: int | None = None  # tokens of the vocabulary, for token ids
    baseline_loss: float | None = None  # text: val loss of a unigram model, the score to beat
    skipped: tuple[str, ...] = ()  # files left out, each "path: why" (image folders)
    train_class_counts: tuple[int, ...] = ()  # samples per class, where cheap to count
    val_class_counts: tuple[int, ...] = ()
    preprocessing: str = ""  # what each image goes through (image folders)
    augmentation: str = ""  # the training images' random changes, or "none"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class Splits:
    """The training and validation datasets (TensorDatasets where the data sits in memory)."""

    train: Dataset[Any]
    val: Dataset[Any]
    info: DatasetInfo


@dataclass(frozen=True)
class LoadedData:
    """What a dataset module hands the catalogue: both splits, class names, one sample's shape."""

    train: Dataset[Any]
    val: Dataset[Any]
    class_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    input_dtype: str = "float32"
    vocab_size: int | None = None
    baseline_loss: float | None = None
    skipped: tuple[str, ...] = ()
    preprocessing: str = ""
    augmentation: str = ""
    kind: str = ""  # the entry's kind unless set (blobs of more than 2 features are a "table")


@dataclass(frozen=True)
class OptionSpec:
    """One `data.options` knob: its type, default, allowed range and a line of help."""

    name: str
    type: type
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> str:
        default = "unset" if self.default is None else _toml_value(self.default)
        return f"{self.name} = {default}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


_TYPE_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def resolve_options(name: str, spec: DataSpec, allowed: tuple[OptionSpec, ...]) -> dict[str, Any]:
    """Check `data.options` against the dataset's knobs and fill in the defaults."""
    by_name = {option.name: option for option in allowed}
    values = {option.name: option.default for option in allowed}
    for key, value in spec.options.items():
        if key not in by_name:
            raise DatasetError(_unknown_option_message(name, key, allowed))
        values[key] = _checked_value(by_name[key], value)
    return values


def _unknown_option_message(name: str, key: str, allowed: tuple[OptionSpec, ...]) -> str:
    if not allowed:
        return f"data.options.{key}: dataset {name!r} takes no options; remove data.options"
    names = [option.name for option in allowed]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"data.options.{key}: unknown option for dataset {name!r}{hint}; "
        f"allowed: {', '.join(names)}"
    )


def _checked_value(option: OptionSpec, value: Any) -> Any:
    where = f"data.options.{option.name}"
    if option.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    wrong_type = not isinstance(value, option.type) or (
        option.type is not bool and isinstance(value, bool)
    )
    if wrong_type:
        raise DatasetError(f"{where}: {value!r} is not {_TYPE_WORDS[option.type]}")
    if option.type is float and not math.isfinite(value):
        raise DatasetError(
            f"{where}: {value!r} is not a finite number; nan and inf are not allowed"
        )
    low, high = option.minimum, option.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise DatasetError(f"{where}: {value!r} is out of range; use a value {bounds}")
    return value


def validation_count(total: int, val_split: float) -> int:
    """How many of `total` samples go to validation: at least one when asked, never all."""
    if val_split <= 0 or total < 2:
        return 0
    return min(total - 1, max(1, math.floor(total * val_split + 0.5)))


def split_indices(total: int, val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random train/validation partition of range(total), each part in ascending order.

    The split draws from its own stream (seed plus a fixed salt), so it does not repeat the
    epoch shuffles, which are seeded from seed + epoch.
    """
    n_val = validation_count(total, val_split)
    order = np.random.default_rng([seed, 0x5A17]).permutation(total)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def tensor_splits(
    x: torch.Tensor, y: torch.Tensor, val_split: float, seed: int
) -> tuple[TensorDataset, TensorDataset]:
    train_idx, val_idx = split_indices(len(x), val_split, seed)
    train = torch.tensor(train_idx, dtype=torch.long)
    val = torch.tensor(val_idx, dtype=torch.long)
    return TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])
