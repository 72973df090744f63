"""The workbench's model written as a person writes it: a chain as an `nn.Sequential`, a graph
as `class Net(nn.Module)` with `__init__` and `forward`, each block as its own class.

Every module gets the engine's name, so the state_dict keys are the engine's (`conv1.weight`,
`layer1.0.conv1.weight`), and modules are made in the engine's order, so the same
`torch.manual_seed` gives the same initial weights. Merge layers hold no weights and become
expressions in `forward` (`bn2 + x`, `torch.cat([a, b], dim=1)`).

Names reach the code only as checked identifiers: a layer name that is not a plain Python
identifier is written as a string literal (`self.add_module("0", ...)`, `getattr(self, "0")`),
and a class, argument or local name that would clash with a name the script uses gets another.
"""

from __future__ import annotations

import keyword
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from workbench.engine.graph_module import GraphModel, GraphProgram
from workbench.engine.model_builder import BuiltModel, LayerRow
from workbench.engine.script_export.layer_code import layer_call, layer_extras, own_classes
from workbench.engine.script_export.text import (
    WIDTH,
    Code,
    ModelCode,
    call,
    doc_text,
    literal,
    names_in,
)
from workbench.engine.sequence_layers import export_source

MODEL_CLASS = "Net"
AMBIGUOUS = frozenset({"l", "O", "I"})  # pycodestyle refuses these as names (E741, E742)
# The names `forward` reads; no layer's local may take one.
FORWARD_NAMES = frozenset({"self", "x", "torch", "getattr"} | AMBIGUOUS)
# Every name the model code reads or sets; no class or constructor argument may take one.
OWN_NAMES = FORWARD_NAMES | {
    "nn",
    "OrderedDict",
    "build_model",
    "layers",
    MODEL_CLASS,
    "super",
    "range",
    "_",
}
OPERATORS = {"Add": " + ", "Mul": " * "}
Slot = tuple[str, int, str]  # (layer, repeat or -1, argument): a value one use of a block takes


@dataclass(frozen=True)
class _Use:
    """One repeat of one use of a block: its module path, layer rows and running order."""

    path: str
    rows: tuple[LayerRow, ...]
    program: GraphProgram


@dataclass(frozen=True)
class _Scope:
    """The layers of one class: how `__init__` and `forward` name each (by layer name)."""

    attributes: Mapping[str, str]  # `self.conv1`, or `getattr(self, "0")`
    locals: Mapping[str, str]  # `conv1`, `layer0`


def model_code(built: BuiltModel, taken: Collection[str] = frozenset()) -> ModelCode:
    """The classes and `build_model()` body for `built`; `taken` are names the rest of the
    script uses, which no class the model adds may take."""
    return _Writer(built, taken).code()


def plain(name: str) -> bool:
    """A name that can stand in code as it is: an ASCII identifier, no keyword, not mangled
    inside a class (`__name`)."""
    return (
        name.isidentifier()
        and name.isascii()
        and not keyword.iskeyword(name)
        and not name.startswith("__")
    )


def free(wanted: str, used: set[str]) -> str:
    """`wanted`, or it with underscores added until no name in `used` is the same; now used."""
    name = wanted
    while name in used:
        name += "_"
    used.add(name)
    return name


class _Writer:
    def __init__(self, built: BuiltModel, taken: Collection[str]) -> None:
        self.built = built
        self.imports = {"from torch import nn"}
        self.uses: dict[str, list[_Use]] = {}  # block -> its repeats, inner blocks first
        self._collect(built.rows)
        self.own = own_classes(built.rows)  # classes of ours the layers need, e.g. LSTM
        if self.own:
            self.imports |= {"import math", "import torch"}
        self.extras = layer_extras(built.rows)  # functions layers call, e.g. make_backbone
        self.imports |= self.extras.imports
        used = set(taken) | OWN_NAMES | {cls.__name__ for cls in self.own}
        used |= names_in(self.extras.definitions)
        self.classes = {block: self._class_name(block, used) for block in self.uses}
        self.parameters: dict[str, tuple[str, ...]] = {}  # block -> its class's arguments
        self.given: dict[str, dict[Slot, Code]] = {}  # block -> values its arguments give
        self.arguments: dict[str, tuple[object, ...]] = {}  # a repeat's path -> its arguments
        for block in self.uses:
            self._parameters(block)

    # ------------------------------------------------------------------ the whole model

    def code(self) -> ModelCode:
        definitions = [*self.extras.definitions, *(export_source(cls) for cls in self.own)]
        definitions += [self._block_class(block) for block in self.uses]
        rows = self.built.rows
        if self.built.is_chain and all(row.name in ("", str(row.index)) for row in rows):
            body = self._numbered_chain(rows)
        elif self.built.is_chain:
            body = self._named_chain(rows)
        else:
            module = self.built.module
            assert isinstance(module, GraphModel)
            definitions.append(self._class(MODEL_CLASS, "", (), rows, module.program, {}))
            body = f"    return {MODEL_CLASS}()"
        return ModelCode(tuple(definitions), body, frozenset(self.imports))

    def _numbered_chain(self, rows: Sequence[LayerRow]) -> str:
        """`nn.Sequential(` with one layer a line: each is keyed by its position."""
        lines = [self._constructor(row, {}) for row in rows]
        body = "\n".join(f"        {function}({', '.join(args)})," for function, args in lines)
        return f"    return nn.Sequential(\n{body}\n    )"

    def _named_chain(self, rows: Sequence[LayerRow]) -> str:
        """`("conv1", nn.Conv2d(...))` a line, made into an nn.Sequential keyed by the names."""
        self.imports.add("from collections import OrderedDict")
        entries = []
        for row in rows:
            function, args = self._constructor(row, {})
            entry = call("", [literal(row.name), f"{function}({', '.join(args)})"], 8, 8)
            entries.append(textwrap.indent(f"{entry},", " " * 8))
        listed = "\n".join(entries)
        return f"    layers = [\n{listed}\n    ]\n    return nn.Sequential(OrderedDict(layers))"

    # ------------------------------------------------------------------ blocks

    def _collect(self, rows: Sequence[LayerRow]) -> None:
        """Every repeat of every block use, a block's inner blocks before the block."""
        for row in rows:
            for repeat, inner in enumerate(row.blocks):
                self._collect(inner)
                path = f"{row.path}.{repeat}"
                module = self.built.module.get_submodule(path)
                assert isinstance(module, GraphModel)
                self.uses.setdefault(row.type, []).append(_Use(path, inner, module.program))

    def _class_name(self, block: str, used: set[str]) -> str:
        wanted = block if plain(block) else "Block"
        return free(f"{wanted}Block" if wanted in used else wanted, used)

    def _parameters(self, block: str) -> None:
        """The block class's arguments: the values that differ between its uses (sizes the
        builder inferred from each use's input); values that are equal in all are written in."""
        uses = self.uses[block]
        slots = [self._slots(use) for use in uses]
        groups: dict[tuple[str, ...], list[Slot]] = {}
        for slot in slots[0]:
            texts = tuple(literal(values[slot]) for values in slots)
            if len(set(texts)) > 1:
                groups.setdefault(texts, []).append(slot)
        scope = self._scope(uses[0].rows)
        used = set(OWN_NAMES | set(self.classes.values()))
        firsts = [group[0] for group in groups.values()]
        names = [free(_parameter_name(slot, firsts, scope), used) for slot in firsts]
        self.parameters[block] = tuple(names)
        self.given[block] = {
            slot: Code(name)
            for name, group in zip(names, groups.values(), strict=True)
            for slot in group
        }
        for use, values in zip(uses, slots, strict=True):
            self.arguments[use.path] = tuple(values[slot] for slot in firsts)

    def _slots(self, use: _Use) -> dict[Slot, object]:
        found: dict[Slot, object] = {}
        for row in use.rows:
            if not row.blocks:
                found.update({(row.name, -1, arg): value for arg, value in row.resolved.items()})
            for repeat in range(len(row.blocks)):
                inner = self.arguments[f"{row.path}.{repeat}"]
                names = self.parameters[row.type]
                found.update(
                    {(row.name, repeat, name): v for name, v in zip(names, inner, strict=True)}
                )
        return found

    def _block_class(self, block: str) -> str:
        use = self.uses[block][0]
        doc = f"[model.blocks.{doc_text(block)}] of the experiment file."
        parameters = self.parameters[block]
        return self._class(
            self.classes[block], doc, parameters, use.rows, use.program, self.given[block]
        )

    # ------------------------------------------------------------------ one class

    def _class(
        self,
        name: str,
        doc: str,
        parameters: Sequence[str],
        rows: Sequence[LayerRow],
        program: GraphProgram,
        given: Mapping[Slot, Code],
    ) -> str:
        scope = self._scope(rows)
        head = call("def __init__", ["self", *parameters], 4, 4) + ":"
        lines = [textwrap.indent(head, "    "), "        super().__init__()"]
        for row in rows:
            if row.type in OPERATORS or row.type == "Concat":
                continue  # no weights: written in forward
            function, args = self._constructor(row, given)
            lines.append(self._assign_module(row.name, scope, function, args))
        init = "\n".join(lines)
        forward = self._forward(rows, program, scope, given)
        docstring = f'    """{doc}"""\n\n' if doc else ""
        return f"class {name}(nn.Module):\n{docstring}{init}\n\n{forward}"

    def _scope(self, rows: Sequence[LayerRow]) -> _Scope:
        attributes = {
            row.name: f"self.{row.name}"
            if plain(row.name)
            else f"getattr(self, {literal(row.name)})"
            for row in rows
        }
        used = set(FORWARD_NAMES)
        natural = {row.name for row in rows if plain(row.name)} - used
        used |= natural
        locals_ = {}
        for row in rows:
            own = row.name in natural
            locals_[row.name] = row.name if own else free(_local_name(row.name), used)
        return _Scope(attributes, locals_)

    def _constructor(self, row: LayerRow, given: Mapping[Slot, Code]) -> tuple[str, list[str]]:
        """The call that makes the layer: a torch layer, or an nn.Sequential of block classes."""
        if not row.blocks:
            own = {arg: code for (layer, _, arg), code in given.items() if layer == row.name}
            return layer_call(row, own)
        names = self.parameters[row.type]
        made = []
        for repeat in range(len(row.blocks)):
            values = self.arguments[f"{row.path}.{repeat}"]
            args = [
                given.get((row.name, repeat, name), Code(literal(value)))
                for name, value in zip(names, values, strict=True)
            ]
            made.append(f"{self.classes[row.type]}({', '.join(a.text for a in args)})")
        if len(made) > 2 and len(set(made)) == 1:
            return "nn.Sequential", [f"*[{made[0]} for _ in range({len(made)})]"]
        return "nn.Sequential", made

    def _assign_module(self, name: str, scope: _Scope, function: str, args: list[str]) -> str:
        if plain(name):
            target = f"{scope.attributes[name]} = "
            text = target + call(function, args, 8 + len(target), 8)
        else:
            made = f"{function}({', '.join(args)})"
            text = call("self.add_module", [literal(name), made], 8, 8)
        return textwrap.indent(text, " " * 8)

    def _forward(
        self,
        rows: Sequence[LayerRow],
        program: GraphProgram,
        scope: _Scope,
        given: Mapping[Slot, Code],
    ) -> str:
        """`def forward(self, x):` with a local named after each layer, in running order."""
        by_name = {row.name: row for row in rows}
        values = ["x", *(scope.locals[name] for name, _ in program.steps)]
        lines = ["    def forward(self, x):"]
        for step, (name, slots) in enumerate(program.steps, 1):
            row = by_name[name]
            inputs = [values[slot] for slot in slots]
            target = f"{values[step]} = "
            used = 8 + len(target)
            if row.type in OPERATORS:
                text = target + _joined(OPERATORS[row.type], inputs, used)
            elif row.type == "Concat":
                self.imports.add("import torch")
                dim = given.get((name, -1, "dim"), Code(literal(row.resolved["dim"])))
                listed = f"[{', '.join(inputs)}]"
                text = target + call("torch.cat", [listed, f"dim={dim.text}"], used, 8)
            else:
                text = target + call(scope.attributes[name], inputs, used, 8)
            lines.append(textwrap.indent(text, " " * 8))
        lines.append(f"        return {values[program.output]}")
        return "\n".join(lines)


def _parameter_name(slot: Slot, firsts: Sequence[Slot], scope: _Scope) -> str:
    """`in_channels`; `conv1_in_channels` where two arguments would share that name."""
    layer, repeat, arg = slot
    if sum(other[2] == arg for other in firsts) == 1:
        return arg
    local = scope.locals[layer]
    return f"{local}_{arg}" if repeat < 0 else f"{local}_{repeat}_{arg}"


def _local_name(name: str) -> str:
    """A local for a layer whose name cannot be one: `x_` for `x`, `layer0` for `0`."""
    if plain(name):
        return f"{name}_"  # a name forward itself uses
    stripped = name.lstrip("_")
    if plain(stripped) and stripped not in FORWARD_NAMES:
        return stripped  # `__hidden`: `hidden`, as a class would mangle it
    return f"layer{name}" if name.isascii() and name.isdigit() else "layer"


def _joined(operator: str, values: Sequence[str], used: int) -> str:
    """`a + b`, or the operands a line each inside parentheses when that is too long."""
    one_line = operator.join(values)
    if used + len(one_line) <= WIDTH:
        return one_line
    lines = [values[0], *(f"{operator.strip()} {value}" for value in values[1:])]
    return "(\n" + "".join(f"    {line}\n" for line in lines) + ")"
