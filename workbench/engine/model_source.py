"""What `[model] module` names, read without importing anything: a Python file and a class or
factory in it, an importable module and a name in it, or a program saved by torch.export."""

from __future__ import annotations

import ast
import dataclasses
import keyword
import os
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.errors import ExperimentError
from workbench.engine.model_spec import ModelSpec

PYTHON_FILE, IMPORTED, EXPORTED = "file", "import", "exported"
PT2_SUFFIX = ".pt2"
EXAMPLES = '"models/net.py:Net", "package.module:Net" or "model.pt2"'


@dataclass(frozen=True)
class ModelReference:
    """A parsed `module` value. `path` is the file (.py or .pt2) as written, made absolute by
    `resolved`; `module_name` is the dotted name of an importable module; `attribute` is the
    class or factory function (None for a .pt2)."""

    text: str
    kind: str  # PYTHON_FILE, IMPORTED or EXPORTED
    path: Path | None = None
    module_name: str | None = None
    attribute: str | None = None

    @property
    def label(self) -> str:
        """How the window and run lists name the model: `Net from net.py`, `model.pt2`."""
        if self.kind == EXPORTED:
            assert self.path is not None
            return f"{self.path.name} (torch.export program)"
        origin = self.path.name if self.path is not None else self.module_name
        return f"{self.attribute} from {origin}"

    def resolved(self, folder: Path | None) -> ModelReference:
        """The reference with a relative file made absolute against `folder` (else the current
        folder): a file named by an experiment is relative to the experiment file."""
        if self.path is None:
            return self
        path = self.path.expanduser()
        if not path.is_absolute():
            path = (folder or Path.cwd()) / path
        path = Path(os.path.normpath(path.absolute()))
        return dataclasses.replace(self, path=path, text=_text(path, self.attribute))


def parse_reference(text: str) -> ModelReference:
    """Read `module`; a ValueError's message says what is wrong and what to write instead."""
    target, colon, attribute = text.rpartition(":") if ":" in text else (text, "", "")
    if _is_windows_drive(text, target):
        target, colon, attribute = text, "", ""
    target = target.strip()
    if target.lower().endswith(PT2_SUFFIX):
        if colon:
            raise ValueError(
                f'{text!r}: a .pt2 file holds one program; name the file alone, like "{target}"'
            )
        return ModelReference(text, EXPORTED, path=Path(target))
    if not colon:
        raise ValueError(
            f"{text!r}: name the class or function after a colon, like "
            f'"{target or "models/net.py"}:Net"; or give a .pt2 file saved by torch.export'
        )
    attribute = attribute.strip()
    if not _is_name(attribute):
        raise ValueError(
            f"{text!r}: {attribute!r} is not a Python name; after the colon comes the class or "
            f'function, like "{target}:Net"'
        )
    if target.lower().endswith(".py"):
        return ModelReference(text, PYTHON_FILE, path=Path(target), attribute=attribute)
    if "/" in target or "\\" in target:
        raise ValueError(
            f"{text!r}: {target!r} is neither a .py file nor an importable module name; "
            f"use {EXAMPLES}"
        )
    if not all(_is_name(part) for part in target.split(".")):
        raise ValueError(
            f"{text!r}: {target!r} is not a module name; use a .py file or a dotted module "
            f"name, like {EXAMPLES}"
        )
    return ModelReference(text, IMPORTED, module_name=target, attribute=attribute)


def model_reference(spec: ModelSpec) -> ModelReference:
    """The spec's reference, as written (a file relative to the current folder)."""
    assert spec.module is not None
    return parse_reference(spec.module)


def model_label(spec: ModelSpec) -> str:
    """A short name for the model: `Net from net.py`, or `5 layers` for a layer stack."""
    if spec.module is not None:
        try:
            return model_reference(spec).label
        except ValueError:
            return spec.module
    count = len(spec.layers)
    return f"{count} layer" + ("" if count == 1 else "s")


def code_spec_problem(spec: ModelSpec) -> tuple[str, str] | None:
    """(key path, message) for a `module` the file gets wrong, checked when the file is read."""
    if spec.module is None:
        if spec.kwargs:
            return "model.kwargs", "kwargs are passed to model.module; set module, or remove kwargs"
        return None
    for key, present in (
        ("layers", bool(spec.layers)),
        ("outputs", spec.outputs is not None),
        ("blocks", bool(spec.blocks)),
    ):
        if present:
            return (
                f"model.module and model.{key}",
                "a model comes either from your code (module) or from layers, not both; "
                f"remove model.{key} to use {spec.module!r}, or remove model.module",
            )
    try:
        reference = model_reference(spec)
    except ValueError as exc:
        return "model.module", str(exc)
    if reference.kind == EXPORTED and spec.kwargs:
        return "model.kwargs", "a .pt2 program is built already and takes no kwargs; remove them"
    for key in spec.kwargs:
        if not _is_name(key):
            return f"model.kwargs.{key!r}", "not a parameter name; use the name as Python spells it"
    return None


def check_code_spec(spec: ModelSpec, source: str) -> None:
    problem = code_spec_problem(spec)
    if problem is not None:
        raise ExperimentError(f"{source}: {problem[0]}: {problem[1]}")


def with_resolved_module(spec: ModelSpec, folder: Path) -> ModelSpec:
    """The spec with a relative model file made absolute against the experiment's folder, so
    that copies of the experiment (a run's experiment.toml, a checkpoint) still find it."""
    if spec.module is None:
        return spec
    reference = model_reference(spec).resolved(folder)
    return dataclasses.replace(spec, module=reference.text)


def with_module_relative_to(spec: ModelSpec, folder: Path) -> ModelSpec:
    """The spec with a model file inside `folder` written relative to it (a project file
    saved next to its code keeps `models/net.py`); other references are left as they are."""
    if spec.module is None:
        return spec
    reference = model_reference(spec)
    if reference.path is None or not reference.path.is_absolute():
        return spec
    try:
        relative = reference.path.relative_to(Path(os.path.normpath(folder.absolute())))
    except ValueError:
        return spec
    return dataclasses.replace(spec, module=_text(Path(relative.as_posix()), reference.attribute))


def _text(path: Path, attribute: str | None) -> str:
    shown = path.as_posix() if not path.is_absolute() else str(path)
    return shown if attribute is None else f"{shown}:{attribute}"


def _is_name(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text)


def _is_windows_drive(text: str, target: str) -> bool:
    """`C:\\models\\net.py` has a colon that names no class."""
    return len(target) == 1 and target.isalpha() and text[2:3] in ("\\", "/")


def model_candidates(path: str | Path) -> list[str]:
    """The classes and functions a Python file defines at its top level, read with `ast`, not
    imported: what File > Open Model Code offers to choose from before anything runs. Classes
    that derive from something named `Module` come first. A file that does not parse gives []
    (building it reports the syntax error at its line)."""
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    modules: list[str] = []
    others: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
            (modules if "Module" in bases else others).append(node.name)
        elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            others.append(node.name)
    return modules + others
