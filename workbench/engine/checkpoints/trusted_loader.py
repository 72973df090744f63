"""Child process for a file the user trusted: full unpickle here, plain tensors handed back.

Run as `python -m workbench.engine.checkpoints.trusted_loader SOURCE HANDOFF.safetensors`.
Whatever code the pickle runs, runs in this throw-away process, never in the GUI's.
"""

from __future__ import annotations

import json
import pickle
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.checkpoints.loading import (
    HANDOFF_LAYOUT,
    HANDOFF_LOCATION,
    HANDOFF_METADATA,
    HANDOFF_ORDER,
)
from workbench.engine.checkpoints.saving import save_safetensors
from workbench.engine.checkpoints.wrappers import find_state_dict


def modules_to_state_dicts(value: Any) -> Any:
    """Replace every pickled nn.Module (torch.save(model)) by its state_dict."""
    if isinstance(value, nn.Module):
        return value.state_dict()
    if isinstance(value, Mapping):
        return {key: modules_to_state_dicts(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(modules_to_state_dicts(item) for item in value)
    return value


class _StandInUnpickler(pickle.Unpickler):
    """Classes the file names but this process cannot import (a model class defined in the
    `__main__` script that saved it) become empty nn.Module subclasses: their pickled state is
    restored as is, which is all state_dict() needs."""

    stand_ins: list[str] = []

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            self.stand_ins.append(f"{module}.{name}")
            return type(name, (nn.Module,), {"__module__": module})


_stand_in_pickle = types.SimpleNamespace(
    Unpickler=_StandInUnpickler, load=pickle.load, __name__="pickle"
)


def convert(source: Path, handoff: Path) -> None:
    loaded = torch.load(
        source, map_location="cpu", weights_only=False, pickle_module=_stand_in_pickle
    )
    found = find_state_dict(modules_to_state_dicts(loaded))
    if found is None:
        raise SystemExit(f"{source}: holds a {type(loaded).__name__} with no tensors in it")
    metadata = dict(found.metadata)
    if _StandInUnpickler.stand_ins:
        metadata["classes_not_importable"] = sorted(set(_StandInUnpickler.stand_ins))
    header = {
        HANDOFF_LOCATION: found.location or "",
        HANDOFF_LAYOUT: found.layout,
        HANDOFF_METADATA: json.dumps(metadata),
        HANDOFF_ORDER: json.dumps(list(found.state_dict)),
    }
    save_safetensors(found.state_dict, handoff, header)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: trusted_loader SOURCE HANDOFF.safetensors", file=sys.stderr)
        return 2
    convert(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
