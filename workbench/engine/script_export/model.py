"""The model part of an exported script: `build_model()`, written as torch code a person writes.

The one seam between the exporter and the model builder: `model_section(built)` turns a
`BuiltModel` into a `Section` defining `build_model()`, which returns a freshly initialised
`nn.Module` whose state_dict keys and initial weights (under the same `torch.manual_seed`) equal
the engine's. Each kind of model has its writer, returning `ModelCode` (the classes before
`build_model()` and its body): today the workbench's own layers and blocks (`model_classes`).
"""

from __future__ import annotations

from collections.abc import Collection

from workbench.engine.model_builder import BuiltModel
from workbench.engine.script_export.model_classes import model_code
from workbench.engine.script_export.own_model import code_model_section
from workbench.engine.script_export.text import Section, doc_text, join_sections, literal


def model_section(built: BuiltModel, taken: Collection[str] = frozenset()) -> Section:
    """`def build_model():` (after the classes it uses) with every size written out.

    `taken` are the names the rest of the script uses; no class of the model takes one.
    """
    if built.code is not None:  # the user's own class, imported from a copy of their file
        return code_model_section(built)
    code = model_code(built, taken)
    shapes = doc_text(
        f"{len(built.rows)} layers; one sample goes in as {literal(list(built.input_shape))}, "
        f"out as {literal(list(built.output_shape))}."
    )
    function = f'def build_model():\n    """{shapes}"""\n{code.body}'
    return Section(join_sections([*code.definitions, function]), code.imports)
