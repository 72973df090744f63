"""Quantized model files that reload by themselves: int8 weights plus the recipe and experiment.

Eager and torchao models are saved as plain tensors (int8 data, scales, zero points) with the
recipe and the experiment, in one torch.save archive that loads with weights_only=True; loading
rebuilds the float stack, replays the recipe's structure and copies the tensors in. PT2E
models are exported programs (.pt2) with the recipe as an extra file, loaded after a check
that no pickled object is inside.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.atomic import atomic_path, atomic_write
from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import Experiment, dump_experiment, parse_experiment
from workbench.engine.experiment_model import build_experiment_model, experiment_input_shape
from workbench.engine.quantization import legacy_eager, maintained
from workbench.engine.quantization.recipe import QuantizationError, Recipe

FILE_FORMAT = "workbench-quantized/1"
RECIPE_ENTRY, EXPERIMENT_ENTRY = "workbench/recipe.json", "workbench/experiment.toml"


@dataclass(frozen=True)
class LoadedQuantized:
    """A quantized model read back from disk, ready to run, with how it was made."""

    module: nn.Module
    recipe: Recipe
    experiment: Experiment
    path: Path


def default_file_name(method: str, path: str) -> str:
    """model-static-int8.pth; PT2E models are exported programs, hence .pt2."""
    return f"model-{method}-int8" + (".pt2" if path == "pt2e" else ".pth")


def save_quantized(
    model: nn.Module, recipe: Recipe, experiment: Experiment, path: str | Path, sample: torch.Tensor
) -> Path:
    """Write the quantized model atomically; returns the path written."""
    path = Path(path)
    if recipe.path == "pt2e":
        assert isinstance(model, torch.fx.GraphModule)
        extra = {RECIPE_ENTRY: recipe.to_json(), EXPERIMENT_ENTRY: dump_experiment(experiment)}
        with atomic_path(path) as temp:
            maintained.save_program(model, sample, temp, extra)
        return path
    if recipe.path == "torchao":
        tensors, layout = maintained.encode_subclass_state(model)
    else:
        tensors, layout = legacy_eager.encode_state(legacy_eager.model_state(model))
    payload = {
        "format": FILE_FORMAT,
        "recipe": recipe.to_json(),
        "experiment": dump_experiment(experiment),
        "layout": json.dumps(layout),
        "tensors": tensors,
    }
    atomic_write(path, lambda handle: torch.save(payload, handle))
    return path


def load_quantized(path: str | Path) -> LoadedQuantized:
    """Read a file written by `save_quantized`, without running code from it."""
    path = Path(path)
    if not path.is_file():
        raise QuantizationError(f"{path}: no such file; give the quantized model's path")
    if _is_exported_program(path):
        return _load_program(path)
    payload = _load_payload(path)
    recipe = Recipe.from_json(payload["recipe"])
    experiment = parse_experiment(payload["experiment"], source=f"{path} (embedded experiment)")
    model = build_experiment_model(experiment).module.eval()
    tensors, layout = payload["tensors"], json.loads(payload["layout"])
    if recipe.path == "torchao":
        maintained.torchao_dynamic(model)
        maintained.load_subclass_state(model, tensors, layout)
        return LoadedQuantized(model, recipe, experiment, path)
    sample = torch.zeros((2, *experiment_input_shape(experiment)))
    rebuilt = legacy_eager.rebuild(model, recipe, sample)
    try:
        legacy_eager.load_quantized_state(rebuilt, legacy_eager.decode_state(tensors, layout))
    except (RuntimeError, KeyError) as exc:
        raise QuantizationError(
            f"{path}: the saved int8 weights do not fit the rebuilt model "
            f"({str(exc).splitlines()[0]}); quantize again with this version of workbench"
        ) from None
    return LoadedQuantized(rebuilt.eval(), recipe, experiment, path)


def _is_exported_program(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/archive_format") for name in archive.namelist())


def _load_payload(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors vary; all mean "not our file"
        raise QuantizationError(
            f"{path}: not a quantized model saved by workbench ({str(exc).splitlines()[0][:160]}); "
            "create one with `workbench quantize`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
        raise QuantizationError(
            f"{path}: not a quantized model saved by workbench (expected format {FILE_FORMAT}); "
            "for a float checkpoint use --weights"
        )
    return payload


def _load_program(path: Path) -> LoadedQuantized:
    module, extra = maintained.load_program(path, (RECIPE_ENTRY, EXPERIMENT_ENTRY))
    if not extra.get(RECIPE_ENTRY):
        raise QuantizationError(f"{path}: an exported program without a workbench recipe")
    try:
        experiment = parse_experiment(
            extra[EXPERIMENT_ENTRY], source=f"{path} (embedded experiment)"
        )
    except WorkbenchError as exc:
        raise QuantizationError(str(exc)) from None
    return LoadedQuantized(module, Recipe.from_json(extra[RECIPE_ENTRY]), experiment, path)
