"""CSV tables: numeric feature columns plus a label column; errors name the file and line."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.engine.datasets.base import OptionSpec
from workbench.engine.errors import DatasetError

CSV_OPTIONS = (
    OptionSpec("delimiter", str, ",", "the character between cells, e.g. ';' or '\\t'"),
    OptionSpec(
        "standardize",
        bool,
        False,
        "rescale each feature to mean 0 and std 1, using the training split's statistics",
    ),
)


@dataclass(frozen=True)
class Table:
    """A parsed CSV: features as float32, labels as class indices into `class_names`."""

    features: torch.Tensor
    labels: torch.Tensor
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]


def read_table(path: str | None, label_column: str, delimiter: str) -> Table:
    file = existing_file(path)
    if len(delimiter) != 1:
        raise DatasetError(
            f"data.options.delimiter: {delimiter!r} must be exactly one character, like ',' or ';'"
        )
    (header_line, header), rows = read_rows(file, delimiter)
    label_index = find_label_column(file, header_line, header, label_column)
    features, labels = _parse_rows(file, header, rows, label_index)
    class_names = sorted_classes(labels)
    lookup = {name: index for index, name in enumerate(class_names)}
    x = torch.tensor(features, dtype=torch.float32).reshape(len(rows), len(header) - 1)
    y = torch.tensor([lookup[label] for label in labels], dtype=torch.int64)
    names = tuple(name for index, name in enumerate(header) if index != label_index)
    return Table(x, y, names, class_names)


def existing_file(path: str | None) -> Path:
    if not path:
        raise DatasetError(
            'data.path: the csv dataset needs a file; set data.path = "table.csv" '
            "(a header row, numeric feature columns and a label column)"
        )
    file = Path(path).expanduser()
    if not file.exists():
        raise DatasetError(f"data.path: {file}: file not found; check the path")
    if not file.is_file():
        raise DatasetError(f"data.path: {file}: is a folder, not a CSV file")
    return file


Line = tuple[int, list[str]]


def read_rows(file: Path, delimiter: str) -> tuple[Line, list[Line]]:
    """The header and the non-blank rows, each with its line number in the file."""
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            lines = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{file}: not UTF-8 text ({exc.reason}); save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise DatasetError(f"{file}: not valid CSV ({exc})") from None
    except OSError as exc:
        raise DatasetError(f"{file}: cannot read the file ({exc.strerror})") from None
    lines = [(number, row) for number, row in lines if any(cell.strip() for cell in row)]
    if not lines:
        raise DatasetError(
            f"{file}: the file is empty; expected a header row, then one row per sample"
        )
    (header_line, header), rows = lines[0], lines[1:]
    if not rows:
        raise DatasetError(f"{file}: only a header row; add one row per sample below it")
    return (header_line, [cell.strip() for cell in header]), rows


def find_label_column(file: Path, line: int, header: list[str], label_column: str) -> int:
    if label_column not in header:
        raise DatasetError(
            f"{file}, line {line}: no column {label_column!r} in the header "
            f"(columns: {', '.join(header)}); set data.label_column to the column with the labels"
        )
    if len(header) < 2:
        raise DatasetError(f"{file}, line {line}: only the label column; add feature columns")
    return header.index(label_column)


def _parse_rows(
    file: Path, header: list[str], rows: list[Line], label_index: int
) -> tuple[list[float], list[str]]:
    features: list[float] = []
    labels: list[str] = []
    for line, row in rows:
        if len(row) != len(header):
            raise DatasetError(
                f"{file}, line {line}: {len(row)} cells, but the header has {len(header)} "
                "columns; every row needs one cell per column"
            )
        for index, cell in enumerate(row):
            if index == label_index:
                labels.append(label_text(file, line, header[index], cell))
            else:
                features.append(_number(file, line, header[index], cell))
    return features, labels


def label_text(file: Path, line: int, column: str, cell: str) -> str:
    label = cell.strip()
    if not label:
        raise DatasetError(f"{file}, line {line}, column {column!r}: the label is empty")
    return label


def _number(file: Path, line: int, column: str, cell: str) -> float:
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        shown = "an empty cell" if not text else repr(text)
        raise DatasetError(
            f"{file}, line {line}, column {column!r}: {shown} is not a number; "
            "feature columns must be numeric (only the label column may hold text)"
        ) from None
    if not math.isfinite(value):
        raise DatasetError(
            f"{file}, line {line}, column {column!r}: {text!r} is not a finite number"
        )
    return value


def sorted_classes(labels: list[str]) -> tuple[str, ...]:
    """Sorted label values: numerically when every label is a whole number, else as text."""
    distinct = set(labels)
    try:
        return tuple(sorted(distinct, key=lambda label: (int(label), label)))
    except ValueError:
        return tuple(sorted(distinct))


def standardizer(train_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per feature of the training rows (std 1 where a column is constant)."""
    std = train_x.std(dim=0, unbiased=False)
    return train_x.mean(dim=0), torch.where(std > 0, std, torch.ones_like(std))
