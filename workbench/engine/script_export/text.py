"""Source text for exported scripts: values only as safe literals, and the layout around them.

Every value an experiment holds reaches a script through `literal` (or `doc_text` inside the
docstring), never pasted: a string that contains quotes, backslashes, newlines or braces stays a
string in the script and runs nothing.
"""

from __future__ import annotations

import ast
import builtins
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workbench.engine.errors import ExperimentError

WIDTH = 100  # the line length the exported script keeps (it passes ruff at this width)
STDLIB = frozenset({"collections", "contextlib", "csv", "datetime", "math", "os", "pathlib"})


@dataclass(frozen=True)
class Code:
    """Script source standing where a value could go (`EPOCHS`): written as it is."""

    text: str


@dataclass(frozen=True)
class Section:
    """A part of the script and the import lines it needs (`from torch import nn`)."""

    text: str
    imports: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelCode:
    """How a script builds its model: definitions before `build_model()` (classes), the
    function's statements (indented), and the import lines they need."""

    definitions: tuple[str, ...]
    body: str
    imports: frozenset[str]


def literal(value: object) -> str:
    """`value` as a Python literal that evaluates back to it: data, never code.

    Only None, bools, ints, floats, strings, tuples, lists and `Code` are accepted; subclasses
    are written as their base type, so no `__repr__` of theirs reaches the script.
    """
    if isinstance(value, Code):
        return value.text
    if value is None or isinstance(value, bool):
        return "True" if value is True else "False" if value is False else "None"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        text = float.__repr__(value)
        return text if math.isfinite(value) else f'float("{text}")'
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise ExperimentError(
        f"a {type(value).__name__} value cannot be written into a script; use numbers, "
        "strings, true/false and lists"
    )


def _string(text: str) -> str:
    """repr, in double quotes where that needs no escape (as a formatter writes strings)."""
    quoted = str.__repr__(text)
    if quoted.startswith("'") and '"' not in text:
        return f'"{quoted[1:-1]}"'  # repr chose ' only because text has no quote at all
    return quoted


def doc_text(text: str) -> str:
    """`text` for a place inside a triple-quoted docstring, reading back unchanged.

    Backslashes and double quotes are escaped, so no `\"\"\"` can close the docstring early, and
    every character that is not printable (newlines, NUL, line separators) becomes an escape.
    """
    return "".join(_doc_char(char) for char in text)


def _doc_char(char: str) -> str:
    if char in '\\"':
        return "\\" + char
    if char.isprintable():
        return char
    return str.__repr__(char)[1:-1]


def block(text: str, indent: int = 0) -> str:
    """A template's text without its common indentation, then indented by `indent` spaces."""
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * indent)


def call(function: str, args: Sequence[str], used: int = 0, indent: int = 0) -> str:
    """`function(a, b)` on one line where it fits after `used` columns, else wrapped as ruff
    format wraps it: the arguments on one line of their own, or one per line. Continuation
    lines are indented relative to the statement; `indent` is the statement's own indentation."""
    one_line = f"{function}({', '.join(args)})"
    if used + len(one_line) <= WIDTH:
        return one_line
    joined = ", ".join(args)
    if indent + 4 + len(joined) <= WIDTH:
        return f"{function}(\n    {joined}\n)"
    return f"{function}(\n" + "".join(f"    {arg},\n" for arg in args) + ")"


def join_sections(parts: Iterable[str]) -> str:
    """Top-level parts two blank lines apart, as PEP 8 spaces functions."""
    return "\n\n\n".join(part for part in parts if part)


def import_block(lines: Iterable[str]) -> str:
    """The import lines in isort's order, `from` imports of one module merged."""
    plain: set[str] = set()
    names: dict[str, set[str]] = {}
    for line in lines:
        if line.startswith("from "):
            module, _, imported = line.removeprefix("from ").partition(" import ")
            names.setdefault(module, set()).update(name.strip() for name in imported.split(","))
        else:
            plain.add(line)
    merged = plain | {f"from {module} import {', '.join(sorted(n))}" for module, n in names.items()}
    stdlib = sorted((line for line in merged if _module(line) in STDLIB), key=_import_key)
    third_party = sorted((line for line in merged if line not in stdlib), key=_import_key)
    return "\n".join(stdlib) + "\n\n" + "\n".join(third_party)


def _module(line: str) -> str:
    return line.split()[1].split(".")[0]


def _import_key(line: str) -> tuple[bool, str]:
    """isort's order: plain `import x` lines first, then `from x import y`, each by module."""
    return line.startswith("from "), line.split()[1]


def names_in(sources: Iterable[str]) -> frozenset[str]:
    """Every name the sources define or read (variables, functions, classes, arguments,
    imports), with Python's builtins: the names a definition added to them must not take."""
    found = set(dir(builtins))
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name):
                found.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add(node.name)
            elif isinstance(node, ast.arg):
                found.add(node.arg)
            elif isinstance(node, ast.alias):
                found.add((node.asname or node.name).split(".")[0])
    return frozenset(found)
