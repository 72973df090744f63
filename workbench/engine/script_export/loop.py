"""The training loop of an exported script: `train_one_epoch()` and `evaluate()`, with the
engine's precision, accumulation, clipping and step order."""

from __future__ import annotations

import textwrap

from workbench.engine.script_export.rules import ScriptPlan
from workbench.engine.script_export.text import Section, block, join_sections

CHANNELS_LAST = "x = x.contiguous(memory_format=torch.channels_last)"
FINITE_LOSS = """
loss_value = loss.item()
if not math.isfinite(loss_value):
    raise SystemExit(
        f"the loss became {loss_value} at epoch {epoch}, batch {index}; "
        "lower the learning rate or set a gradient clip"
    )
"""
PROGRESS = """
if index % 50 == 0:
    print(
        f"Epoch: {epoch:03d}/{EPOCHS:03d} | Batch {index:03d}/{batches:03d} "
        f"| Train Loss: {loss_value:.4f}"
    )
"""


def loop_section(plan: ScriptPlan) -> Section:
    imports = {"import math", "import torch", "from torch import nn"}
    if plan.ddp and plan.experiment.train.accumulate_grad_batches > 1:
        imports.add("import contextlib")
    return Section(join_sections([_train_one_epoch(plan), _evaluate(plan)]), frozenset(imports))


def autocast(plan: ScriptPlan) -> str | None:
    """The engine's autocast context for the forward pass, or None without one."""
    if plan.autocast_dtype is None:
        return None
    return f"torch.autocast(device_type=device.type, dtype={plan.autocast_dtype})"


def train_arguments(plan: ScriptPlan) -> list[str]:
    """What train_one_epoch takes beyond the model, loader, optimizer, loss, device and epoch."""
    return ["scaler"] * plan.grad_scaler + ["scheduler"] * plan.per_batch_scheduler


def _train_one_epoch(plan: ScriptPlan) -> str:
    train = plan.experiment.train
    k = train.accumulate_grad_batches
    forward = "output = model(x)\nloss = loss_fn(output, y)"
    context = autocast(plan)
    if context:
        forward = f"with {context}:\n" + textwrap.indent(forward, "    ")
    backward_loss = "loss / ACCUMULATE_GRAD_BATCHES" if k > 1 else "loss"
    if plan.grad_scaler:
        backward = f"scaler.scale({backward_loss}).backward()"
    else:
        backward = f"({backward_loss}).backward()" if k > 1 else "loss.backward()"
    step = "\n".join(_step_lines(plan))
    boundary = ""
    if k > 1:
        boundary = "boundary = (index + 1) % ACCUMULATE_GRAD_BATCHES == 0 or index + 1 == batches"
        step = "if boundary:\n" + textwrap.indent(step, "    ")
    pass_lines = f"{forward}\n{backward}"
    if plan.ddp and k > 1:
        pass_lines = (
            "# Accumulating micro-batches skip the gradient all-reduce; the last one syncs.\n"
            "sync = contextlib.nullcontext() if boundary else model.no_sync()\n"
            "with sync:\n" + textwrap.indent(pass_lines, "    ")
        )
    args = ", ".join(["model, loader, optimizer, loss_fn, device, epoch", *train_arguments(plan)])
    lines = [
        "x, y = x.to(device), y.to(device)",
        CHANNELS_LAST if plan.channels_last else "",
        boundary,
        pass_lines,
        block(FINITE_LOSS),
        "correct += count_correct(output.detach(), y)",
        "loss_sum += loss_value * len(y)",
        "samples += len(y)",
        step,
        block(PROGRESS),
    ]
    inner = "\n".join(line for line in lines if line)
    return (
        f"def train_one_epoch({args}):\n"
        '    """One pass over the training data; returns the summed loss, correct and samples."""\n'
        "    model.train()\n"
        "    loss_sum, correct, samples = 0.0, 0, 0\n"
        "    batches = len(loader)\n"
        "    for index, (x, y) in enumerate(loader):\n"
        f"{textwrap.indent(inner, ' ' * 8)}\n"
        "    return loss_sum, correct, samples"
    )


def _step_lines(plan: ScriptPlan) -> list[str]:
    """Clip (unscaled first under a GradScaler), step, zero the gradients, step OneCycle."""
    lines = []
    if plan.experiment.train.gradient_clip_val is not None:
        if plan.grad_scaler:
            lines.append("scaler.unscale_(optimizer)")
        lines.append("nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP_VAL)")
    if plan.grad_scaler:
        lines += ["scaler.step(optimizer)", "scaler.update()"]
    else:
        lines.append("optimizer.step()")
    lines.append("optimizer.zero_grad(set_to_none=True)")
    if plan.per_batch_scheduler:
        lines.append("if scheduler.last_epoch < scheduler.total_steps:")
        lines.append("    scheduler.step()  # OneCycle follows optimizer steps")
    return lines


def _evaluate(plan: ScriptPlan) -> str:
    channels_last = f"\n{' ' * 20}{CHANNELS_LAST}" if plan.channels_last else ""
    context = autocast(plan)
    contexts = "torch.inference_mode()" + (f", {context}" if context else "")
    return block(
        f'''
        def evaluate(model, loader, loss_fn, device):
            """Summed loss, correct predictions and samples of the model on `loader`."""
            model.eval()
            loss_sum, correct, samples = 0.0, 0, 0
            with {contexts}:
                for x, y in loader:
                    x, y = x.to(device), y.to(device){channels_last}
                    output = model(x)
                    loss_sum += loss_fn(output, y).item() * len(y)
                    correct += count_correct(output, y)
                    samples += len(y)
            return loss_sum, correct, samples
        '''
    )
