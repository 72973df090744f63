"""How a layer type that torch.nn has no class for is written in an exported script."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerCode:
    """`function(*args)` builds the layer in the script; `definitions` are the functions it
    calls (each written once per script) and `imports` the import lines they need."""

    function: str
    args: tuple[str, ...] = ()
    definitions: tuple[str, ...] = ()
    imports: frozenset[str] = frozenset()

    @property
    def expression(self) -> str:
        return f"{self.function}({', '.join(self.args)})"
