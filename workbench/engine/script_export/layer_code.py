"""One layer as the torch code that constructs it: `nn.Conv2d(1, 32, kernel_size=3)`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from workbench.engine.layer_export import LayerCode
from workbench.engine.layers import CATALOGUE, LayerType
from workbench.engine.model_planner import LayerRow
from workbench.engine.script_export.rules import constructor_defaults
from workbench.engine.script_export.text import Code, literal
from workbench.engine.sequence_layers import EXPORT_CLASSES


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
    if kind.export is not None:  # a layer torch.nn has no class for, e.g. a Backbone
        code = kind.export(row.resolved)
        return code.function, list(code.args)
    # nn.LSTM takes *args: its documented defaults are RNNBase's.
    recurrent = issubclass(kind.module_class, nn.RNNBase)
    defaults = constructor_defaults(nn.RNNBase if recurrent else kind.module_class)
    positional = _positional(kind)
    args = [literal(values[name]) for name in positional]
    fixed = dict(kind.fixed)
    for name, value in values.items():
        if name in positional:
            continue
        if name in fixed:  # batch_first=True: workbench feeds [batch, length, features]
            args.append(f"{name}={literal(value)}")
            continue
        if kind.shape_rule == "pool" and name == "stride" and value == values["kernel_size"]:
            continue
        if name in defaults and defaults[name] == value and defaults[name] is not None:
            continue
        if name in defaults and defaults[name] is None and value is None:
            continue
        args.append(f"{kind.param(name).name}={literal(value)}")
    own = kind.exported_class
    function = own.__name__ if own is not None else f"nn.{kind.module_class.__name__}"
    if row.repeat > 1:  # copies made in turn, as the engine makes them
        return "nn.Sequential", [f"*[{function}({', '.join(args)}) for _ in range({row.repeat})]"]
    return function, args


def layer_extras(rows: Sequence[LayerRow]) -> LayerCode:
    """The definitions and imports the layers' own export code needs (a Backbone's
    `make_backbone`), each once, inside blocks too."""
    codes: list[LayerCode] = []
    for row in rows:
        codes += [layer_extras(repeat) for repeat in row.blocks]
        export = CATALOGUE[row.type].export if row.type in CATALOGUE else None
        if export is not None:
            codes.append(export(row.resolved))
    definitions = dict.fromkeys(text for code in codes for text in code.definitions)
    imports = frozenset(line for code in codes for line in code.imports)
    return LayerCode("", (), tuple(definitions), imports)


def own_classes(rows: Sequence[LayerRow]) -> list[type[nn.Module]]:
    """The classes of our own the layers use (a Transformer block's parts first), once each,
    inside blocks too."""
    found: list[type[nn.Module]] = []
    for row in rows:
        inner = [cls for repeat in row.blocks for cls in own_classes(repeat)]
        own = CATALOGUE[row.type].exported_class if row.type in CATALOGUE else None
        needed = EXPORT_CLASSES.get(own, (own,)) if own is not None else ()
        for cls in (*inner, *needed):
            if cls not in found:
                found.append(cls)
    return found


def _positional(kind: LayerType) -> tuple[str, ...]:
    """The leading sizes (`in_features, out_features`): inferred ones and required whole numbers."""
    names: list[str] = []
    for param in kind.params:
        if not (param.inferred or (param.required and param.kind == "int")):
            break
        names.append(param.name)
    return tuple(names)
