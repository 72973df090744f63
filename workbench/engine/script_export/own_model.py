"""The model part of a script exported from a model in the user's own code.

The script does not paste the user's class: their file is copied, unchanged, next to the
script (`net.py`), and `build_model()` imports the class from it and calls it with the
experiment's kwargs. So their imports, helpers and `if __name__ == "__main__":` block stay
theirs, and no name of theirs can clash with the script's (`main`, `train`, `evaluate`). A
model from an importable package is imported from that package, which the script's machine
must have installed. A .pt2 program is copied next to the script too and loaded with
torch.export.load.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.engine.atomic import atomic_write_bytes
from workbench.engine.errors import ExperimentError
from workbench.engine.model_builder import BuiltModel
from workbench.engine.model_source import EXPORTED, IMPORTED, ModelReference
from workbench.engine.script_export.text import WIDTH, Section, doc_text, literal


def code_model_section(built: BuiltModel) -> Section:
    """`def build_model():` that imports the user's class (or loads their program) and makes it."""
    assert built.code is not None
    reference = built.code.reference
    shapes = (
        f"one sample goes in as {literal(list(built.input_shape))}, "
        f"out as {literal(list(built.output_shape))}."
    )
    if reference.kind == EXPORTED:
        return _exported_section(reference, shapes)
    module = reference.module_name if reference.kind == IMPORTED else copied_module_name(reference)
    assert module is not None and reference.attribute is not None
    arguments = ", ".join(f"{key}={_value(value)}" for key, value in built.code.kwargs.items())
    if reference.kind == IMPORTED:
        origin = f"{reference.attribute} from the installed module {module}"
        where = f"{module} must be importable where this script runs"
    else:
        assert reference.path is not None
        origin = f"{reference.attribute} from {reference.path.name}"
        where = (
            f"{module}.py is a copy of your file, next to this script; copy any other file of "
            "your project it imports there too"
        )
    doc = _paragraphs(f"{origin}, as the experiment makes it; {shapes}", f"{where}.")
    text = (
        f'def build_model():\n    """{doc}\n    """\n'
        f"    from {module} import {reference.attribute}\n\n"
        f"    return {reference.attribute}({arguments})"
    )
    return Section(text)


def _paragraphs(*paragraphs: str) -> str:
    """Docstring text: each paragraph wrapped to the script's width, indented for a function."""
    return "\n\n    ".join(
        "\n    ".join(doc_text(line) for line in textwrap.wrap(text, WIDTH - 8))
        for text in paragraphs
    )


def _exported_section(reference: ModelReference, shapes: str) -> Section:
    assert reference.path is not None
    name = reference.path.name
    doc = doc_text(
        f"The program saved by torch.export in {name} (copied next to this script); {shapes}"
    )
    text = f'''def build_model():
    """{doc}

    An exported graph refuses train() and eval(): its dropout and batch-norm operators carry
    their mode. These two set it, so validation runs without dropout, as the workbench does.
    """
    flag_at = {{getattr(torch.ops.aten, op).default: 2 for op in DROPOUT_OPERATORS}}
    flag_at[torch.ops.aten.batch_norm.default] = 5
    model = torch.export.load(Path(__file__).with_name({literal(name)})).module()

    def train(mode=True):
        for node in model.graph.nodes:
            if node.op == "call_function" and node.target in flag_at:
                node.update_arg(flag_at[node.target], mode)
        model.recompile()
        model.training = mode
        return model

    model.train = train
    model.eval = lambda: train(False)
    return model


DROPOUT_OPERATORS = ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout")'''
    return Section(text, frozenset({"import torch", "from pathlib import Path"}))


def _value(value: Any) -> str:
    """A kwargs value as a literal; TOML tables become dicts."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(str(k))}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return literal(value)


def copied_module_name(reference: ModelReference) -> str:
    """The module name the copy is imported as: the file's stem made a Python name, and moved
    aside (`torch_model`) where it would hide a module the script or Python itself needs."""
    assert reference.path is not None
    name = re.sub(r"\W", "_", reference.path.stem) or "model"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"model_{name}"
    if name in sys.stdlib_module_names or _importable(name):
        name = f"{name}_model"
    return name


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def companion_files(built: BuiltModel) -> dict[str, Path]:
    """What must sit next to the script: {file name there: the user's file}."""
    code = built.code
    if code is None or code.reference.kind == IMPORTED or code.reference.path is None:
        return {}
    reference = code.reference
    assert reference.path is not None
    if reference.kind == EXPORTED:
        return {reference.path.name: reference.path}
    return {f"{copied_module_name(reference)}.py": reference.path}


def copy_companions(built: BuiltModel, script: Path) -> list[Path]:
    """Copy the model's file(s) next to `script`, refusing to replace a different file there."""
    written = []
    for name, source in companion_files(built).items():
        target = script.parent / name
        if target.name == script.name:
            raise ExperimentError(
                f"{script}: the model's file is copied next to the script as {name}; give the "
                f"script another name, e.g. train_{Path(name).stem}.py"
            )
        content = source.read_bytes()
        if target.exists():
            if target.resolve() == source.resolve() or target.read_bytes() == content:
                continue
            raise ExperimentError(
                f"{target}: exists and is not a copy of {source}; the script imports the model "
                "from there, so export into another folder or remove that file"
            )
        atomic_write_bytes(target, content)
        written.append(target)
    return written
