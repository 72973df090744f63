"""Write a model as ONNX, a .pt2 exported program or TorchScript, and load the file back to run.

Every file gets a dynamic batch dimension and is written atomically. ONNX goes through the
torch.export-based exporter (opset 18 and later), or the TorchScript-based one where that is
what works: an older opset, or an eager int8 model.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.jit import TracerWarning  # type: ignore[attr-defined]
from torch.utils._pytree import tree_leaves

from workbench.engine.atomic import atomic_path, atomic_write_bytes
from workbench.engine.errors import WorkbenchError

FORMATS = ("onnx", "pt2", "torchscript")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
DYNAMO_MIN_OPSET = 18  # the torch.export-based ONNX exporter writes opset 18 and later
INPUT_NAME, OUTPUT_NAME, BATCH = "input", "output", "batch"

Runner = Callable[[torch.Tensor], list[torch.Tensor]]


class ExportFailed(WorkbenchError):
    """The exporter refused the model, or the file it wrote did not load: the message says
    which, in one line, and what to try (another format); the command line exits 2."""


@dataclass(frozen=True)
class Written:
    """How a file was made, and anything the exporter warned about."""

    how: str
    notes: tuple[str, ...] = ()


def outputs_of(result: Any) -> list[torch.Tensor]:
    """A model's output(s) as a flat list of tensors, whatever the nesting."""
    return [t for t in tree_leaves(result) if isinstance(t, torch.Tensor)]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:240]


@contextlib.contextmanager
def _quiet(caught: list[str]) -> Iterator[None]:
    """Keep exporters' deprecation notices off the user's terminal; tracer warnings (a trace
    that may not generalise to other inputs) are collected into `caught`."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        yield
    for record in records:
        if issubclass(record.category, TracerWarning):
            sentence = str(record.message).split(". ")[0].rstrip(".")
            note = f"the tracer warned: {sentence} (the batch 1 check tries another input)"
            if note not in caught:
                caught.append(note)


def write(
    fmt: str,
    model: nn.Module,
    sample: torch.Tensor,
    target: Path,
    *,
    opset: int | None = None,
    legacy_onnx: bool = False,
) -> Written:
    """Export `model` (in eval mode) traced on `sample` to `target`; ExportFailed if it can't."""
    writer = {"onnx": _write_onnx, "pt2": _write_pt2, "torchscript": _write_torchscript}[fmt]
    try:
        return writer(model, sample, target, opset, legacy_onnx)
    except ExportFailed:
        raise
    except Exception as exc:
        raise ExportFailed(
            f"{fmt} export failed: {first_line(exc)}; {_other_formats(fmt)}"
        ) from exc


def load(fmt: str, path: Path) -> tuple[Runner, str]:
    """The written file, loaded back as a function of a batch; and what ran it."""
    loader = {"onnx": _load_onnx, "pt2": _load_pt2, "torchscript": _load_torchscript}[fmt]
    try:
        return loader(path)
    except Exception as exc:
        raise ExportFailed(
            f"{path}: the {fmt} file does not load back: {first_line(exc)}; {_other_formats(fmt)}"
        ) from exc


def _other_formats(fmt: str) -> str:
    others = " or ".join(f"--format {other}" for other in FORMATS if other != fmt)
    return f"try {others}"


# --------------------------------------------------------------------------- ONNX


def _write_onnx(
    model: nn.Module, sample: torch.Tensor, target: Path, opset: int | None, legacy: bool
) -> Written:
    with torch.no_grad():
        single = isinstance(model(sample), torch.Tensor)
    names: dict[str, Any] = {"input_names": [INPUT_NAME]}
    if single:
        names["output_names"] = [OUTPUT_NAME]
    notes: list[str] = []
    why_legacy = ""
    if legacy:
        why_legacy = "the TorchScript-based exporter, which maps eager int8 kernels to ONNX"
    elif opset is not None and opset < DYNAMO_MIN_OPSET:
        why_legacy = f"the TorchScript-based exporter, for opset {opset} (below 18)"
    with atomic_path(target) as temp:
        if not why_legacy:
            try:
                with _quiet(notes):
                    torch.onnx.export(
                        model,
                        (sample,),
                        str(temp),
                        dynamo=True,
                        external_data=False,
                        dynamic_shapes=({0: torch.export.Dim(BATCH)},),
                        opset_version=opset,
                        verbose=False,
                        **names,
                    )
            except Exception as exc:  # noqa: BLE001 - retried with the older exporter below
                why_legacy = (
                    "the TorchScript-based exporter, as the torch.export-based one failed "
                    f"({first_line(exc)})"
                )
        if why_legacy:
            axes = {
                name: {0: BATCH} for name in (*names["input_names"], *names.get("output_names", ()))
            }
            with _quiet(notes):
                torch.onnx.export(
                    model,
                    (sample,),
                    str(temp),
                    dynamo=False,
                    dynamic_axes=axes,
                    opset_version=opset or 17,
                    verbose=False,
                    **names,
                )
        written = _onnx_opset(temp)
    if opset is not None and written != opset:
        raise ExportFailed(
            f"onnx export wrote opset {written}, not the {opset} asked for; "
            f"use --opset {written} or leave it out"
        )
    how = why_legacy or "the torch.export-based exporter"
    return Written(f"torch.onnx.export, {how}; opset {written}", tuple(notes))


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _load_onnx(path: Path) -> tuple[Runner, str]:
    import onnx
    import onnxruntime

    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run(batch: torch.Tensor) -> list[torch.Tensor]:
        results = session.run(None, {input_name: batch.detach().cpu().numpy()})
        return [torch.from_numpy(result) for result in results]

    return run, f"onnxruntime {onnxruntime.__version__} (CPU)"


# --------------------------------------------------------------------------- .pt2


def _write_pt2(
    model: nn.Module, sample: torch.Tensor, target: Path, opset: int | None, legacy: bool
) -> Written:
    notes: list[str] = []
    with _quiet(notes):
        program = torch.export.export(
            model, (sample,), dynamic_shapes=({0: torch.export.Dim(BATCH)},)
        )
        archive = io.BytesIO()  # torch.export.save wants a name ending in .pt2, or a buffer
        torch.export.save(program, archive)
    atomic_write_bytes(target, archive.getvalue())
    return Written("torch.export.export, torch.export.save", tuple(notes))


def _load_pt2(path: Path) -> tuple[Runner, str]:
    from workbench.engine.quantization.maintained import load_program

    module, _extra = load_program(path, ())  # refuses pickled payloads, as the window does

    def run(batch: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return outputs_of(module(batch))

    return run, "torch.export.load"


# --------------------------------------------------------------------------- TorchScript


def _write_torchscript(
    model: nn.Module, sample: torch.Tensor, target: Path, opset: int | None, legacy: bool
) -> Written:
    notes: list[str] = []
    with _quiet(notes):
        traced = torch.jit.trace(model, sample)  # type: ignore[no-untyped-call]
        with atomic_path(target) as temp:
            torch.jit.save(traced, str(temp))
    return Written("torch.jit.trace, torch.jit.save", tuple(notes))


def _load_torchscript(path: Path) -> tuple[Runner, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still loads
        module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]

    def run(batch: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return outputs_of(module(batch))

    return run, "torch.jit.load"
