"""The whole exported script: docstring, imports, settings, then each part in reading order."""

from __future__ import annotations

import ast
from pathlib import Path

from workbench.engine.atomic import atomic_write_text
from workbench.engine.experiment import Experiment
from workbench.engine.model_source import model_label
from workbench.engine.script_export.data import data_section
from workbench.engine.script_export.helpers import helpers_section
from workbench.engine.script_export.loop import loop_section
from workbench.engine.script_export.main import main_section
from workbench.engine.script_export.model import model_section
from workbench.engine.script_export.own_model import copy_companions
from workbench.engine.script_export.rules import ScriptPlan, plan_script
from workbench.engine.script_export.text import (
    doc_text,
    import_block,
    join_sections,
    literal,
    names_in,
)


def export_script(experiment: Experiment, source: str | None = None) -> str:
    """The Python source of a script that trains `experiment` without Torch Workbench.

    `source` names the experiment file in the script's docstring. The experiment is checked as
    loading its file would check it, and bad input (an unknown layer, a dataset option out of
    range) raises the same WorkbenchError training would. Values reach the script only as
    literals, so no value, however hostile, becomes code.
    """
    return _script(plan_script(experiment, source), source)


def _script(plan: ScriptPlan, source: str | None) -> str:
    settings = _settings(plan)
    others = [data_section(plan), helpers_section(plan), loop_section(plan), main_section(plan)]
    their_imports = import_block({line for section in others for line in section.imports})
    taken = names_in([settings, their_imports, *(section.text for section in others)])
    sections = [others[0], model_section(plan.built, taken), *others[1:]]
    imports = {line for section in sections for line in section.imports}
    head = f"{_docstring(plan, source)}\n\n{import_block(imports)}\n\n{settings}"
    main_guard = 'if __name__ == "__main__":\n    main()'
    script = join_sections([head, *(section.text for section in sections), main_guard]) + "\n"
    ast.parse(script)  # a template mistake fails here, not in the user's hands
    return script


def write_script(experiment: Experiment, path: str | Path, source: str | None = None) -> Path:
    """Write the exported script to `path` atomically and return the path; a model from the
    user's code has its file copied next to the script (script_export/own_model.py)."""
    target = Path(path)
    plan = plan_script(experiment, source)
    text = _script(plan, source)
    copy_companions(plan.built, target)
    atomic_write_text(target, text)
    return target


def _docstring(plan: ScriptPlan, source: str | None) -> str:
    experiment = plan.experiment
    what = (
        model_label(experiment.model)
        if experiment.model.from_code
        else f"a {len(experiment.model.layers)}-layer model"
    )
    origin = f" from {Path(source).name}" if source else ""
    ddp = experiment.train.ddp
    run = (
        f"torchrun --nproc_per_node={literal(ddp.nproc_per_node)} train.py"
        if ddp.enabled
        else "python train.py"
    )
    extra = "\nWithout torchrun it runs as a one-process group." if ddp.enabled else ""
    first = f"Train {what} on {experiment.data.name}: exported{origin} by Torch "
    return (
        f'"""{doc_text(first)}Workbench.\n\n'
        "Plain PyTorch; Torch Workbench is not needed. With the same seed it reproduces the\n"
        "workbench run: the same split, normalisation, shuffle order and initial weights.\n\n"
        f"    {run}{extra}\n"
        '"""'
    )


def _settings(plan: ScriptPlan) -> str:
    data, train = plan.experiment.data, plan.experiment.train
    lines = [
        f"SEED = {literal(train.seed)}",
        f"EPOCHS = {literal(train.epochs)}",
        f"BATCH_SIZE = {literal(data.batch_size)}",
        f"VAL_BATCH_SIZE = {literal(data.val_batch_size)}",
        f"DROP_LAST = {literal(data.drop_last)}",
        f"LEARNING_RATE = {literal(train.lr)}",
        f"DEVICE = {literal(train.device)}  # auto: CUDA if there is a GPU, then MPS, then the CPU",
    ]
    if plan.ddp:
        lines.insert(4, f"SHUFFLE = {literal(data.shuffle)}")
    if data.num_workers:
        lines.append(f"NUM_WORKERS = {literal(data.num_workers)}")
    if train.accumulate_grad_batches > 1 or plan.per_batch_scheduler:
        lines.append(f"ACCUMULATE_GRAD_BATCHES = {literal(train.accumulate_grad_batches)}")
    if train.gradient_clip_val is not None:
        lines.append(f"GRADIENT_CLIP_VAL = {literal(train.gradient_clip_val)}")
    if plan.ddp:
        lines.append(
            f"DDP_BACKEND = {literal(train.ddp.backend)}  # auto: nccl on CUDA, gloo otherwise"
        )
        lines.append(f"DDP_TIMEOUT_SECONDS = {literal(train.ddp.timeout_seconds)}")
    return "\n".join(lines)
