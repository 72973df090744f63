"""`workbench datasets`: each dataset `data.name` accepts: shape, classes, options, offline use."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from workbench.engine.experiment import DataSpec

if TYPE_CHECKING:
    from workbench.engine.datasets.catalogue import DatasetEntry

_SHOWN_CLASSES = 10


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "datasets", help="list the datasets, their shapes, classes and options"
    )
    parser.add_argument("name", nargs="?", help="show one dataset, with help for each option")
    parser.add_argument(
        "--root",
        default=DataSpec().root,
        help="where torchvision datasets live (data.root; default %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from workbench.engine.datasets import dataset_entry, dataset_names

    names = [dataset_entry(args.name).name] if args.name else list(dataset_names())
    print(f"Datasets for data.name (data.root = {args.root}):")
    for name in names:
        print()
        print(dataset_text(name, args.root, detailed=bool(args.name)))
    return 0


def dataset_text(name: str, root: str, detailed: bool = False) -> str:
    from workbench.engine.datasets import availability, dataset_entry

    entry = dataset_entry(name)
    lines = [f"{entry.name} — {entry.description}"]
    lines.extend(_shape_and_classes(entry, root))
    if not entry.options:
        lines.append("    options: none")
    elif detailed:
        lines.append("    options (data.options):")
        lines.extend(f"      {option.describe():<24} {option.help}" for option in entry.options)
    else:
        lines.append(f"    options: {', '.join(option.describe() for option in entry.options)}")
    offline = availability(name, root)[1]
    lines.append(f"    offline: {offline}")
    return "\n".join(lines)


def _shape_and_classes(entry: DatasetEntry, root: str) -> list[str]:
    from workbench.engine.datasets import describe_dataset
    from workbench.engine.datasets.catalogue import YOURS

    if entry.source == YOURS:
        return [f"    kind: {entry.kind}; input shape, classes and sizes come from data.path"]
    info = describe_dataset(DataSpec(name=entry.name, root=root))
    classes = ", ".join(info.class_names[:_SHOWN_CLASSES])
    if info.num_classes > _SHOWN_CLASSES:
        classes += ", ..."
    shape = ", ".join(str(size) for size in info.input_shape)
    return [
        f"    kind: {entry.kind}, input shape [{shape}], "
        f"{info.train_size:,} train / {info.val_size:,} validation samples",
        f"    classes ({info.num_classes}): {classes}",
    ]
