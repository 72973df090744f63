"""The model part of an exported script: `build_model()`, written as torch code a person writes.

The one seam between the exporter and the model builder: `model_section(built)` turns a
`BuiltModel` into a `Section` defining `build_model()`, which returns a freshly initialised
`nn.Module` whose state_dict keys and initial weights (under the same `torch.manual_seed`) equal
the engine's. Nothing else in the exporter looks inside the model, so a builder that makes named
layers or graphs changes only this module (then a readable `nn.Module` class).
"""

from __future__ import annotations

from torch import nn

from workbench.engine.layers import CATALOGUE, LayerType
from workbench.engine.model_builder import BuiltModel, LayerRow
from workbench.engine.script_export.rules import constructor_defaults
from workbench.engine.script_export.text import Section, doc_text, join_sections, literal
from workbench.engine.sequence_layers import EXPORT_CLASSES, export_source


def model_section(built: BuiltModel) -> Section:
    """`def build_model():` returning the stack as an `nn.Sequential` with every size written out."""
    lines = [layer_source(row) for row in built.rows]
    body = "\n".join(f"        {line}," for line in lines)
    shapes = doc_text(
        f"{len(lines)} layers; one sample goes in as {literal(list(built.input_shape))}, "
        f"out as {literal(list(built.output_shape))}."
    )
    text = f'def build_model():\n    """{shapes}"""\n    return nn.Sequential(\n{body}\n    )'
    classes = [export_source(cls) for cls in _own_classes(built.rows)]
    imports = {"from torch import nn"} | ({"import math", "import torch"} if classes else set())
    return Section(join_sections([*classes, text]), frozenset(imports))


def _own_classes(rows: tuple[LayerRow, ...]) -> list[type[nn.Module]]:
    """The classes of our own the layers use (a Transformer block's parts first), once each."""
    found: list[type[nn.Module]] = []
    for row in rows:
        own = CATALOGUE[row.type].exported_class
        for cls in EXPORT_CLASSES.get(own, (own,)) if own is not None else ():
            if cls not in found:
                found.append(cls)
    return found


def layer_source(row: LayerRow) -> str:
    """`nn.Linear(64, 32)`: sizes positional as torch code writes them, then every argument
    that differs from torch's own default (Softmax's dim always)."""
    kind = CATALOGUE[row.type]
    # nn.LSTM takes *args: its documented defaults are RNNBase's.
    recurrent = issubclass(kind.module_class, nn.RNNBase)
    defaults = constructor_defaults(nn.RNNBase if recurrent else kind.module_class)
    positional = _positional(kind)
    args = [literal(row.resolved[name]) for name in positional]
    fixed = dict(kind.fixed)
    for name, value in row.resolved.items():
        if name in positional:
            continue
        if name in fixed:  # batch_first=True: workbench feeds [batch, length, features]
            args.append(f"{name}={literal(value)}")
            continue
        if kind.shape_rule == "pool" and name == "stride" and value == row.resolved["kernel_size"]:
            continue
        if name in defaults and defaults[name] == value and defaults[name] is not None:
            continue
        if name in defaults and defaults[name] is None and value is None:
            continue
        args.append(f"{kind.param(name).name}={literal(value)}")
    own = kind.exported_class
    made = f"{own.__name__ if own else 'nn.' + kind.module_class.__name__}({', '.join(args)})"
    if row.repeat > 1:  # copies made in turn, as the engine makes them
        return f"nn.Sequential(*[{made} for _ in range({row.repeat})])"
    return made


def _positional(kind: LayerType) -> tuple[str, ...]:
    """The leading sizes (`in_features, out_features`): inferred ones and required whole numbers."""
    names: list[str] = []
    for param in kind.params:
        if not (param.inferred or (param.required and param.kind == "int")):
            break
        names.append(param.name)
    return tuple(names)
