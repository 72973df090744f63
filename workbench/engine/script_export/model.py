"""The model part of an exported script: `build_model()`, written as torch code a person writes.

The one seam between the exporter and the model builder: `model_section(built)` turns a
`BuiltModel` into a `Section` defining `build_model()`, which returns a freshly initialised
`nn.Module` whose state_dict keys and initial weights (under the same `torch.manual_seed`) equal
the engine's. Nothing else in the exporter looks inside the model, so a builder that makes named
layers or graphs changes only this module (then a readable `nn.Module` class).
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.engine.layer_export import LayerCode
from workbench.engine.layers import CATALOGUE, LayerType
from workbench.engine.model_builder import BuiltModel, LayerRow
from workbench.engine.script_export.rules import constructor_defaults
from workbench.engine.script_export.text import Section, doc_text, join_sections, literal


def model_section(built: BuiltModel) -> Section:
    """`def build_model():` returning the stack as an `nn.Sequential` with every size written out."""
    lines = [layer_source(row) for row in built.rows]
    body = "\n".join(f"        {line}," for line in lines)
    shapes = doc_text(
        f"{len(lines)} layers; one sample goes in as {literal(list(built.input_shape))}, "
        f"out as {literal(list(built.output_shape))}."
    )
    text = f'def build_model():\n    """{shapes}"""\n    return nn.Sequential(\n{body}\n    )'
    extras = layer_extras(built.rows)
    return Section(join_sections([*extras.definitions, text]), extras.imports | {_NN})


def layer_source(row: LayerRow) -> str:
    """`nn.Linear(64, 32)`: sizes positional as torch code writes them, then every argument
    that differs from torch's own default (Softmax's dim always)."""
    kind = CATALOGUE[row.type]
    if kind.export is not None:
        return kind.export(row.resolved).expression
    defaults = constructor_defaults(kind.module_class)
    positional = _positional(kind)
    args = [literal(row.resolved[name]) for name in positional]
    for name, value in row.resolved.items():
        if name in positional:
            continue
        if kind.shape_rule == "pool" and name == "stride" and value == row.resolved["kernel_size"]:
            continue
        if name in defaults and defaults[name] == value and defaults[name] is not None:
            continue
        if name in defaults and defaults[name] is None and value is None:
            continue
        args.append(f"{kind.param(name).name}={literal(value)}")
    return f"nn.{kind.module_class.__name__}({', '.join(args)})"


def layer_extras(rows: Sequence[LayerRow]) -> LayerCode:
    """The definitions and imports the layers' own export code needs, each once."""
    codes = []
    for row in rows:
        export = CATALOGUE[row.type].export if row.type in CATALOGUE else None
        if export is not None:
            codes.append(export(row.resolved))
    definitions = dict.fromkeys(text for code in codes for text in code.definitions)
    imports = frozenset(line for code in codes for line in code.imports)
    return LayerCode("", tuple(definitions), imports)


_NN = "from torch import nn"


def _positional(kind: LayerType) -> tuple[str, ...]:
    """The leading sizes (`in_features, out_features`): inferred ones and required whole numbers."""
    names: list[str] = []
    for param in kind.params:
        if not (param.inferred or (param.required and param.kind == "int")):
            break
        names.append(param.name)
    return tuple(names)
