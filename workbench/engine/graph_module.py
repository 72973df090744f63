"""A graph model as an nn.Module: named children, and a forward written out from the graph.

The forward is Python source generated once per graph (cached), in the order the planner
chose, so a built residual net runs the same calls a hand-written `forward` would, with no
interpreter loop in between. Only names the planner checked and slot numbers go into it.
"""

from __future__ import annotations

import functools
import linecache
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class GraphProgram:
    """Which child runs when, on which earlier results.

    Slot 0 is the input, slot k the output of step k (1-based); `steps` holds (child name,
    input slots) in running order and `output` the slot the model returns.
    """

    steps: tuple[tuple[str, tuple[int, ...]], ...]
    output: int
    first_item: frozenset[str] = frozenset()  # children returning a tuple: take its item 0

    def source(self) -> str:
        """The generated forward, e.g. `x3 = m['skip'](x2, x1)`; a slot is freed after its
        last use, as a hand-written forward lets its locals go."""
        last_use = {slot: step for step, (_, slots) in enumerate(self.steps, 1) for slot in slots}
        lines = ["def forward(self, x0):", "    m = self._modules"]
        for step, (name, slots) in enumerate(self.steps, 1):
            args = ", ".join(f"x{slot}" for slot in slots)
            item = "[0]" if name in self.first_item else ""
            lines.append(f"    x{step} = m[{name!r}]({args}){item}")
            done = sorted({s for s in slots if last_use[s] == step and s != self.output})
            if done:
                lines.append("    del " + ", ".join(f"x{slot}" for slot in done))
        lines.append(f"    return x{self.output}")
        return "\n".join(lines) + "\n"

    def compiled(self) -> Forward:
        return _compile(self)


@functools.lru_cache(maxsize=256)
def _compile(program: GraphProgram) -> Forward:
    source = program.source()
    filename = f"<workbench graph {abs(hash(program)):x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)  # our own code: slot numbers and names
    forward: Forward = namespace["forward"]
    return forward


class GraphModel(nn.Module):
    """A model (or one use of a block) whose layers are named children, joined as a graph.

    It prints as hand-written code does: `Net(` or the block's name, then `(conv1): ...`.
    """

    def __init__(
        self, class_name: str, children: Iterable[tuple[str, nn.Module]], program: GraphProgram
    ) -> None:
        super().__init__()
        for name, child in children:
            self.add_module(name, child)
        self.class_name = class_name
        self.program = program
        self._forward = program.compiled()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self, x)

    def _get_name(self) -> str:
        return self.class_name

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_forward", None)  # generated code does not pickle; it is made again
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call]
        self._forward = self.program.compiled()
