"""Which deployment formats a quantized model (a `workbench quantize` file) can go to, and why not.

Measured with torch 2.14, torchao and onnxruntime 1.32 (tests/engine/test_export_quantized.py):
eager int8 models are packed torch.ao kernels, which TorchScript runs everywhere; the static ones
also map to ONNX's QuantizeLinear/DequantizeLinear through the TorchScript-based ONNX exporter.
PT2E int8 graphs are exported programs with quantize/dequantize ops: .pt2 and ONNX take them.
torchao's int8 weights are tensor subclasses that no format here stores without pickling them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from workbench.engine.errors import WorkbenchError
from workbench.engine.quantization.recipe import Recipe
from workbench.engine.quantization.saving import FILE_FORMAT, RECIPE_ENTRY


class UnsupportedExport(WorkbenchError):
    """This model cannot go to this format: the message says which formats it can go to."""


_PACKED = "its int8 layers are packed torch.ao kernels, which torch.export cannot trace"
_NO_ONNX_DYNAMIC = (
    "ONNX has no operator for torch.ao's dynamic int8 Linear (quantized::linear_dynamic)"
)
_SUBCLASSES = (
    "its int8 weights are torchao tensor subclasses: a .pt2 would store them as pickled "
    "objects, which run code when loaded (workbench refuses such files), and TorchScript and "
    "ONNX cannot trace them"
)
_DECOMPOSED_OPS = (
    "the traced graph calls quantized_decomposed ops that exist only once torchao is imported, "
    "so the file would not load in a plain TorchScript runtime"
)

# (recipe path, method) -> format -> None where it works, else why not.
SUPPORT: dict[tuple[str, str], dict[str, str | None]] = {
    ("eager", "dynamic"): {"torchscript": None, "onnx": _NO_ONNX_DYNAMIC, "pt2": _PACKED},
    ("eager", "static"): {"torchscript": None, "onnx": None, "pt2": _PACKED},
    ("eager", "qat"): {"torchscript": None, "onnx": None, "pt2": _PACKED},
    ("torchao", "dynamic"): {"torchscript": _SUBCLASSES, "onnx": _SUBCLASSES, "pt2": _SUBCLASSES},
    ("pt2e", "static"): {"torchscript": _DECOMPOSED_OPS, "onnx": None, "pt2": None},
    ("pt2e", "qat"): {"torchscript": _DECOMPOSED_OPS, "onnx": None, "pt2": None},
}


def is_quantized_file(path: Path) -> bool:
    """Whether `path` is a model `workbench quantize` wrote, told by its bytes, unpickling
    nothing: a torch.save archive marked with our format, or a .pt2 holding our recipe."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if any(name.endswith(f"/extra/{RECIPE_ENTRY}") for name in names):
                return True
            pickles = [name for name in names if name.endswith("/data.pkl")]
            return bool(pickles) and FILE_FORMAT.encode() in archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, KeyError):
        return False


def describe(recipe: Recipe) -> str:
    labels = {"eager": "eager mode", "torchao": "torchao", "pt2e": "PT2E"}
    return f"{recipe.method} int8 ({labels.get(recipe.path, recipe.path)})"


def check_supported(recipe: Recipe, fmt: str, source: Path) -> None:
    """Raise UnsupportedExport where this kind of int8 model cannot be written as `fmt`."""
    support = SUPPORT.get((recipe.path, recipe.method))
    if support is None:
        raise UnsupportedExport(
            f"{source}: a {describe(recipe)} model, which this version of workbench does not "
            "know how to export; quantize it again"
        )
    reason = support.get(fmt)
    if reason is None:
        return
    works = [name for name, why in support.items() if why is None]
    if works:
        instead = f"it exports to {' and '.join(works)}"
    else:
        instead = "quantize with --path eager to export to torchscript"
    raise UnsupportedExport(
        f"{source}: a {describe(recipe)} model cannot be exported to {fmt}: {reason}. Instead, "
        f"{instead}; or export the float weights and quantize in the target runtime"
    )
