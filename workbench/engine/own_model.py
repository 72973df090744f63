"""Builds the user's own model: the class or factory `[model] module` names (or a torch.export
program), called with `kwargs`, surveyed with forward hooks on a batch of zeros, and checked
against the loss before training. Every error in the user's code is reported as theirs."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import torch
from torch import nn

from workbench.engine.errors import ModelBuildError, ModelCodeError
from workbench.engine.exported_model import load_exported_model
from workbench.engine.frozen import thaw
from workbench.engine.model_builder import BuiltModel
from workbench.engine.model_planner import resolve_input_shape
from workbench.engine.model_source import EXPORTED, ModelReference, model_reference
from workbench.engine.model_spec import ModelSpec
from workbench.engine.module_summary import (
    PROBE_BATCH,
    ForwardSurvey,
    survey_forward,
    total_macs,
)
from workbench.engine.user_code import (
    LoadedCode,
    check_arguments,
    code_error,
    find_target,
    load_code,
    shown_path,
    user_frame,
)

Shape = tuple[int, ...]
CLASS_LOSSES = ("cross_entropy", "nll")


@dataclass(frozen=True)
class CodeModel:
    """Where a model from code came from: the reference (files made absolute), the kwargs, the
    content hash of the file run, and the model's output as the survey saw it."""

    reference: ModelReference
    kwargs: Mapping[str, Any]
    digest: str
    files: tuple[Path, ...]  # the user's files: their frames locate errors
    output_dtype: torch.dtype
    return_line: tuple[str, int] | None  # where forward returned (file, line), for shape errors

    @property
    def label(self) -> str:
        return self.reference.label

    @property
    def path(self) -> Path | None:
        return self.reference.path

    def error_in_code(self, exc: BaseException, during: str) -> ModelCodeError | None:
        """The exception as an error in the user's code, or None when their code is not on the
        traceback (the failure is elsewhere)."""
        files = {str(path) for path in self.files}
        frame = user_frame(exc, files)
        if frame is None or str(Path(frame.filename).absolute()) not in files:
            return None
        return code_error(exc, self.files, during)


def build_code_model(spec: ModelSpec, input_shape: Sequence[int] | None = None) -> BuiltModel:
    """Import, make and survey the model `spec.module` names; errors name the user's file."""
    try:
        reference = model_reference(spec).resolved(None)
    except ValueError as exc:
        raise ModelBuildError(f"model.module: {exc}") from None
    if reference.kind == EXPORTED:
        return _build_exported(spec, reference, input_shape)
    shape = resolve_input_shape(spec, input_shape)
    with torch.random.fork_rng(devices=[]):  # code run at import draws nothing from the seed
        loaded = load_code(reference)
    files = (loaded.path,) if loaded.path is not None else ()
    target, module = _make(loaded, reference, thaw(spec.kwargs), files)
    survey, returned = _survey(module, target, shape, spec.input_dtype, reference, files)
    code = CodeModel(reference, spec.kwargs, loaded.digest, files, _output_dtype(survey), returned)
    return _built(module, survey, code)


def _make(
    loaded: LoadedCode, reference: ModelReference, kwargs: dict[str, Any], files: tuple[Path, ...]
) -> tuple[Callable[..., Any], nn.Module]:
    """The class or factory, and the model it makes with `kwargs`."""
    target = find_target(loaded, reference)
    name = f"{reference.attribute}"
    if inspect.isclass(target) and not issubclass(target, nn.Module):
        raise ModelCodeError(
            f"{reference.label}: {name} is a class but not a torch.nn.Module; derive it from "
            "nn.Module, or name a function that returns the model",
            _file_text(files),
        )
    check_arguments(target, kwargs, name, loaded)
    call = f"{name}({', '.join(f'{key}={value!r}' for key, value in kwargs.items())})"
    try:
        module = target(**kwargs)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        raise code_error(exc, files, f"creating {call}") from None
    if not isinstance(module, nn.Module):
        raise ModelCodeError(
            f"{reference.label}: {call} returned a {type(module).__name__}, not a "
            "torch.nn.Module; return the model (an nn.Module)",
            _file_text(files),
        )
    return target, module


def _survey(
    module: nn.Module,
    target: Callable[..., Any],
    shape: Shape,
    dtype: str,
    reference: ModelReference,
    files: tuple[Path, ...],
) -> tuple[ForwardSurvey, tuple[str, int] | None]:
    """Run the model once with hooks; refuse an output training cannot use, at the line of the
    user's forward that returned it (or their factory's, for a torch container)."""
    forward = _own_code(getattr(type(module).forward, "__code__", None), files)
    during = (
        f"running {reference.attribute}'s forward on a batch of {PROBE_BATCH} samples of "
        f"zeros, shaped {list(shape)}"
    )
    try:
        with torch.random.fork_rng(devices=[]), _return_line(forward) as returned:
            survey = survey_forward(module, shape, dtype)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code may raise anything
        raise code_error(exc, files, during) from None
    line = (forward.co_filename, returned[0]) if forward is not None and returned else None
    if line is None:
        made_by = _own_code(getattr(target, "__code__", None), files)  # a factory function
        line = (made_by.co_filename, made_by.co_firstlineno) if made_by is not None else None
    if survey.output_shape is None:
        raise ModelCodeError(
            f"{_at(line)}{reference.label}: forward returns a {survey.output_type}; training "
            "needs one tensor of outputs, [batch, classes]: return that tensor",
            *(line or (None, None)),
        )
    if not survey.batch_first:
        raise ModelCodeError(
            f"{_at(line)}{reference.label}: forward returns {list(survey.output_shape)} for a "
            f"batch of {PROBE_BATCH} samples; keep the batch as the first dimension "
            "(torch.flatten(x, 1) rather than x.view(-1) or x.squeeze())",
            *(line or (None, None)),
        )
    return survey, line


def _own_code(code: CodeType | None, files: tuple[Path, ...]) -> CodeType | None:
    """`code` if it lies in the user's files (their forward, not torch's nn.Sequential's)."""
    if code is None or Path(code.co_filename).absolute() not in files:
        return None
    return code


@contextlib.contextmanager
def _return_line(code: CodeType | None) -> Iterator[list[int]]:
    """The line `code` (the model's forward) returned from: [line] once it has."""
    found: list[int] = []
    if code is None:
        yield found
        return
    previous = sys.getprofile()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "return" and frame.f_code is code:
            found[:] = [frame.f_lineno]

    sys.setprofile(profile)
    try:
        yield found
    finally:
        sys.setprofile(previous)


def _output_dtype(survey: ForwardSurvey) -> torch.dtype:
    assert survey.output_dtype is not None
    return survey.output_dtype


def _built(module: nn.Module, survey: ForwardSurvey, code: CodeModel) -> BuiltModel:
    assert survey.output_shape is not None
    parameters = list(module.parameters())
    return BuiltModel(
        module=module,
        rows=(),
        input_shape=survey.input_shape,
        output_shape=survey.output_shape,
        total_parameters=sum(p.numel() for p in parameters),
        trainable_parameters=sum(p.numel() for p in parameters if p.requires_grad),
        total_macs=total_macs(survey.rows),
        code=code,
        module_rows=survey.rows,
    )


def _build_exported(
    spec: ModelSpec, reference: ModelReference, input_shape: Sequence[int] | None
) -> BuiltModel:
    assert reference.path is not None
    exported = load_exported_model(reference.path)
    shape = exported.input_shape
    wanted = input_shape if input_shape is not None else spec.input_shape
    if wanted is not None and tuple(wanted) != shape:
        raise ModelBuildError(
            f"{shown_path(reference.path)}: the program takes samples of {list(shape)}, but "
            f"the data gives {list(wanted)}; use data of that shape, or export the model for it"
        )
    if exported.input_dtype != spec.input_dtype:
        raise ModelBuildError(
            f"{shown_path(reference.path)}: the program takes {exported.input_dtype} input; "
            f'set model.input_dtype = "{exported.input_dtype}"'
        )
    try:
        survey = survey_forward(exported.module, shape, exported.input_dtype)
    except Exception as exc:  # noqa: BLE001 - a traced graph fails in torch's words
        raise ModelBuildError(
            f"{shown_path(reference.path)}: the program does not run on a batch of "
            f"{list(shape)} ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r})"
        ) from None
    # torch.export's input-shape guard is a module of the graph, not of the user's model
    rows = tuple(row for row in survey.rows if not row.path.startswith("_guards_fn"))
    survey = dataclasses.replace(survey, rows=rows)
    code = CodeModel(reference, spec.kwargs, "", (), _output_dtype(survey), None)
    if survey.output_shape is None:
        raise ModelBuildError(
            f"{shown_path(reference.path)}: the program returns a {survey.output_type}; "
            "training needs one tensor of outputs"
        )
    return _built(exported.module, survey, code)


# --------------------------------------------------------------------------- fitting the loss


def check_fits_loss(built: BuiltModel, loss: str, num_classes: int, dataset: str) -> None:
    """Explain, before training, an output the loss cannot take: not floating point, not one
    score per class, fewer classes than the data has. A ModelCodeError at forward's return."""
    code = built.code
    if code is None:
        return
    shape, dtype = built.output_shape, code.output_dtype
    problem = _loss_problem(shape, dtype, loss, num_classes, dataset)
    if problem is None:
        return
    line = code.return_line
    raise ModelCodeError(
        f"{_at(line)}{code.label} returns {_shown(shape)} {str(dtype).removeprefix('torch.')} "
        f"per sample, but {problem}",
        *(line or (None, None)),
    )


def _loss_problem(
    shape: Shape, dtype: torch.dtype, loss: str, classes: int, dataset: str
) -> str | None:
    wanted = f"[{classes}]" if classes > 1 else "[1]"
    if not dtype.is_floating_point:
        return (
            f'train.loss = "{loss}" needs floating-point scores; return the scores (logits), '
            "not predicted classes"
        )
    if len(shape) != 1:
        flat = "; flatten it first (torch.flatten(x, 1))" if len(shape) > 1 else ""
        return (
            f'train.loss = "{loss}" takes one vector per sample: {wanted}, a score for each of '
            f"the {classes} classes of {dataset}{flat}; keep the batch dimension first"
        )
    size = shape[0]
    if loss in CLASS_LOSSES and size < max(classes, 2):
        return (
            f'{dataset} has {classes} classes and train.loss = "{loss}" needs a score for '
            f"each: {wanted}; make the last layer give {classes} outputs"
        )
    if loss not in CLASS_LOSSES and size != 1 and size < classes:
        return (
            f'{dataset} has {classes} classes; train.loss = "{loss}" takes one output, or one '
            f"per class: [1] or {wanted}"
        )
    return None


def _shown(shape: Shape) -> str:
    return str(list(shape))


def _at(line: tuple[str, int] | None) -> str:
    return "" if line is None else f"{shown_path(line[0])}, line {line[1]}: "


def _file_text(files: tuple[Path, ...]) -> str | None:
    return str(files[0]) if files else None


# --------------------------------------------------------------------------- tracing


@contextlib.contextmanager
def explained_trace_failure(code: CodeModel | None, purpose: str) -> Iterator[None]:
    """Around torch.export of a model from code: torch's own logging muted, and a failure
    reported as the line of the user's forward that does not trace (a WorkbenchError)."""
    if code is None:
        yield
        return
    names = ["torch", *(n for n in logging.root.manager.loggerDict if n.startswith("torch."))]
    loggers = [(logger, logger.level) for logger in map(logging.getLogger, names)]
    for logger, _level in loggers:
        logger.setLevel(logging.CRITICAL)  # export logs the partial graph before it raises
    try:
        # A failing export also prints its partial graph to stderr, torch internals the
        # message below replaces with the user's line.
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    except Exception as exc:  # noqa: BLE001 - export fails in many ways; each is told as the line
        raise untraceable_error(code, exc, purpose) from None
    finally:
        for logger, level in loggers:
            logger.setLevel(level)


def untraceable_error(code: CodeModel, exc: BaseException, purpose: str) -> ModelCodeError:
    """`net.py, line 11, in forward: does not trace (...)` with the fixes that work."""
    frame = user_frame(exc, {str(path) for path in code.files})
    where = (
        f"{shown_path(frame.filename)}, line {frame.lineno}, in {frame.name}"
        if frame is not None
        else f"{code.label}'s forward"
    )
    line = f"\n    {frame.line.strip()}" if frame is not None and frame.line else ""
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return ModelCodeError(
        f"{purpose} traces the model with torch.export, which cannot trace {where}:{line}\n"
        f"({reason.rstrip(': ')})\nwrite that line without Python decisions on tensor values "
        "(torch.where, torch.cond), or use --method dynamic, which needs no tracing",
        frame.filename if frame is not None else None,
        frame.lineno if frame is not None else None,
    )
