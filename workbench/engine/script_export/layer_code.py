"""One layer as the torch code that constructs it: `nn.Conv2d(1, 32, kernel_size=3)`."""

from __future__ import annotations

from collections.abc import Mapping

from workbench.engine.layers import CATALOGUE, LayerType
from workbench.engine.model_planner import LayerRow
from workbench.engine.script_export.rules import constructor_defaults
from workbench.engine.script_export.text import Code, literal


def layer_source(row: LayerRow, given: Mapping[str, Code] | None = None) -> str:
    """`nn.Linear(64, 32)`: the layer's constructor call on one line."""
    function, args = layer_call(row, given)
    return f"{function}({', '.join(args)})"


def layer_call(row: LayerRow, given: Mapping[str, Code] | None = None) -> tuple[str, list[str]]:
    """`nn.Linear` and its arguments: sizes positional as torch code writes them, then every
    argument that differs from torch's own default (Softmax's dim always).

    `given` replaces arguments with code, such as a block class's own parameter (`in_channels`);
    such an argument is always written.
    """
    kind = CATALOGUE[row.type]
    values: dict[str, object] = {**row.resolved, **(given or {})}
    defaults = constructor_defaults(kind.module_class)
    positional = _positional(kind)
    args = [literal(values[name]) for name in positional]
    for name, value in values.items():
        if name in positional:
            continue
        if kind.shape_rule == "pool" and name == "stride" and value == values["kernel_size"]:
            continue
        if name in defaults and defaults[name] == value and defaults[name] is not None:
            continue
        if name in defaults and defaults[name] is None and value is None:
            continue
        args.append(f"{kind.param(name).name}={literal(value)}")
    return f"nn.{kind.module_class.__name__}", args


def _positional(kind: LayerType) -> tuple[str, ...]:
    """The leading sizes (`in_features, out_features`): inferred ones and required whole numbers."""
    names: list[str] = []
    for param in kind.params:
        if not (param.inferred or (param.required and param.kind == "int")):
            break
        names.append(param.name)
    return tuple(names)
