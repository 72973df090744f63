"""An exported script's `main()`: data, model, optimizer and schedule, the epoch loop with its
report line, early stopping, and the saved weights."""

from __future__ import annotations

import textwrap

from workbench.engine.experiment import EarlyStoppingSpec
from workbench.engine.script_export.loop import train_arguments
from workbench.engine.script_export.rules import (
    METRIC_VARIABLES,
    ScriptPlan,
    functional_loss,
    loss_class,
    optimizer_code,
    scheduler_code,
)
from workbench.engine.script_export.text import Section, literal

_DDP_IMPORTS = frozenset(
    {"from torch.nn.parallel import DistributedDataParallel", "from torch.utils.data import Subset"}
)


def main_section(plan: ScriptPlan) -> Section:
    lines = [*_setup(plan), *_validation_loader(plan), *_early_stopping_setup(plan)]
    first = "val_loss = None" if plan.next_token else "val_loss = val_accuracy = None"
    lines += [first, "", "for epoch in range(1, EPOCHS + 1):"]
    lines.append(textwrap.indent("\n".join(_epoch(plan)), "    "))
    lines += _finish(plan)
    body = textwrap.indent("\n".join(lines), "    ")
    body = "\n".join(line.rstrip() for line in body.splitlines())
    imports = {
        "import math",
        "import torch",
        "from torch import nn",
        "from torch.utils.data import DataLoader",
    }
    if plan.ddp:
        imports |= _DDP_IMPORTS
    return Section(f"def main():\n{body}", frozenset(imports))


def _say(plan: ScriptPlan) -> str:
    """print, on rank 0 only under DDP."""
    return "if main_process:\n    print" if plan.ddp else "print"


def _loader_args(plan: ScriptPlan) -> str:
    return "train_set, epoch, rank, world_size" if plan.ddp else "train_set, epoch"


def _setup(plan: ScriptPlan) -> list[str]:
    say = _say(plan)
    lines = (
        ["rank, world_size, device = setup_distributed()", "main_process = rank == 0"]
        if plan.ddp
        else ["device = pick_device()"]
    )
    lines += [
        "torch.manual_seed(SEED)",
        "train_set, val_set, class_names = load_data()",
        'sizes = f"{len(train_set)} training and {len(val_set)} validation samples"',
        f'{say}(f"{{sizes}}; classes: {{class_names}}")',
        "",
        "torch.manual_seed(SEED)  # the initial weights depend on the seed alone",
    ]
    if plan.channels_last:
        lines.append(
            "# channels_last memory: faster 2-D convolutions (inputs are converted in the loop)"
        )
        lines.append("model = build_model().to(device, memory_format=torch.channels_last)")
    else:
        lines.append("model = build_model().to(device)")
    lines += [
        f"{say}(model)",
        "trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)",
        f'{say}(f"Total number of trainable model parameters: {{trainable}}")',
    ]
    if plan.ddp:
        lines += [
            'if device.type == "cuda":',
            "    model = DistributedDataParallel(model, device_ids=[device.index])",
            "else:",
            "    model = DistributedDataParallel(model)",
        ]
    lines += ["", f"optimizer = {optimizer_code(plan, used=len('    optimizer = '))}"]
    if functional_loss(plan) is None:
        lines.append(f"loss_fn = nn.{loss_class(plan)}()")
    if plan.grad_scaler:
        lines.append(
            "scaler = torch.amp.GradScaler(device.type)  # scales the float16 loss, skips inf steps"
        )
    if plan.per_batch_scheduler:
        first_loader = f"make_train_loader({_loader_args(plan).replace('epoch', '1')})"
        lines.append(f"loader_batches = len({first_loader})")
        lines.append(
            "steps_per_epoch = max(1, math.ceil(loader_batches / ACCUMULATE_GRAD_BATCHES))"
        )
    scheduler = scheduler_code(plan, used=len("    scheduler = "))
    if scheduler is not None:
        lines.append(f"scheduler = {scheduler}")
    return lines


def _validation_loader(plan: ScriptPlan) -> list[str]:
    if not plan.ddp:
        return [
            "val_loader = DataLoader(val_set, batch_size=VAL_BATCH_SIZE, "
            "generator=loader_generator())"
        ]
    return [
        "# Validation is sharded without padding, so the summed counts are exact.",
        "val_shard = Subset(val_set, range(rank, len(val_set), world_size))",
        "val_loader = DataLoader(\n"
        "    val_shard, batch_size=VAL_BATCH_SIZE, generator=loader_generator()\n)",
    ]


def _early_stopping_setup(plan: ScriptPlan) -> list[str]:
    early = plan.experiment.train.early_stopping
    if early is None:
        return []
    monitor = METRIC_VARIABLES[early.monitor]
    start = "math.inf" if plan.minimize_monitor else "-math.inf"
    return [
        "",
        f"# Early stopping on {monitor}: stop after {literal(early.patience)} epochs without "
        "improvement.",
        f"best_value, best_epoch, best_state, bad_epochs = {start}, None, None, 0",
    ]


def _epoch(plan: ScriptPlan) -> list[str]:
    """The body of the epoch loop: train, validate, sum over ranks, report, schedule, stop."""
    arguments = ["model, train_loader, optimizer, loss_fn, device, epoch", *train_arguments(plan)]
    call = f"train_one_epoch({', '.join(arguments)}"
    lines = [
        f"train_loader = make_train_loader({_loader_args(plan)})",
        f"train_sums = {call})",
        "val_sums = evaluate(model, val_loader, loss_fn, device)",
    ]
    if plan.ddp:
        lines += [
            "totals = torch.tensor([*train_sums, *val_sums], dtype=torch.float64, device=device)",
            "dist.all_reduce(totals)  # sum over every rank",
            "train_loss_sum, train_correct, train_samples, *val_sums = totals.tolist()",
        ]
    else:
        lines.append("train_loss_sum, train_correct, train_samples = train_sums")
    if plan.next_token:  # scored by loss, perplexity and bits per character
        lines += [
            "val_loss_sum, _, val_samples = val_sums",
            "train_loss = train_loss_sum / train_samples",
            "if val_samples:",
            "    val_loss = val_loss_sum / val_samples",
        ]
    else:
        lines += [
            "val_loss_sum, val_correct, val_samples = val_sums",
            "train_loss = train_loss_sum / train_samples",
            "train_accuracy = train_correct / train_samples",
            "if val_samples:",
            "    val_loss, val_accuracy = val_loss_sum / val_samples, val_correct / val_samples",
        ]
    lines += [
        'lr = optimizer.param_groups[0]["lr"]',
        _report(plan),
    ]
    if plan.experiment.train.scheduler is not None and not plan.per_batch_scheduler:
        if plan.scheduler_steps_on_loss:
            lines.append("scheduler.step(val_loss if val_samples else train_loss)")
        else:
            lines.append("scheduler.step()")
    early = plan.experiment.train.early_stopping
    if early is not None:
        lines += _early_stopping_check(plan, early)
    return lines


def _report(plan: ScriptPlan) -> str:
    """The epoch line the engine prints: accuracies only where the engine reports them,
    perplexity and bits per character for a text model."""
    if plan.next_token:
        return _next_token_report(plan)
    train_acc = "{percent(train_accuracy)}" if plan.reports_accuracy else "n/a"
    val_acc = "{percent(val_accuracy)}" if plan.reports_accuracy else "n/a"
    message = [
        f'f"Epoch: {{epoch:03d}}/{{EPOCHS:03d}} | Train Acc: {train_acc} "',
        f'f"| Val Acc: {val_acc} | Train Loss: {{train_loss:.4f}} "',
        'f"| Val Loss: {number(val_loss)} | LR: {lr:.3g}"',
    ]
    report = "print(\n" + "\n".join(f"    {part}" for part in message) + "\n)"
    return f"if main_process:\n{textwrap.indent(report, '    ')}" if plan.ddp else report


def _next_token_report(plan: ScriptPlan) -> str:
    message = [
        'f"Epoch: {epoch:03d}/{EPOCHS:03d} | Train Loss: {train_loss:.4f} "',
        'f"| Val Loss: {number(val_loss)} | Val PPL: {number(perplexity)} "',
        'f"| Val BPC: {number(bits_per_char)} | LR: {lr:.3g}"',
    ]
    report = "print(\n" + "\n".join(f"    {part}" for part in message) + "\n)"
    lines = [
        "# Perplexity e^loss: how many characters the model hesitates between; bits per",
        "# character: the loss in bits.",
        "perplexity = math.exp(min(val_loss, 700.0)) if val_loss is not None else None",
        "bits_per_char = val_loss / math.log(2.0) if val_loss is not None else None",
        f"if main_process:\n{textwrap.indent(report, '    ')}" if plan.ddp else report,
    ]
    return "\n".join(lines)


def _early_stopping_check(plan: ScriptPlan, early: EarlyStoppingSpec) -> list[str]:
    monitor = METRIC_VARIABLES[early.monitor]
    delta = literal(early.min_delta)
    compare = (
        f"value < best_value - {delta}"
        if plan.minimize_monitor
        else f"value > best_value + {delta}"
    )
    patience = literal(early.patience)
    lines = [
        f"value = {monitor}",
        f"if {compare}:",
        "    best_value, best_epoch, bad_epochs = value, epoch, 0",
    ]
    if early.restore_best_weights:
        unwrap = "model.module" if plan.ddp else "model"
        lines.append(
            f'    best_state = {{k: v.detach().to("cpu", copy=True) for k, v in {unwrap}.state_dict().items()}}'
        )
    lines += ["else:", "    bad_epochs += 1", f"    if bad_epochs >= {patience}:"]
    stop = (
        f'print(f"Early stopping at epoch {{epoch}}: {monitor} has not improved '
        f'for {patience} epochs")'
    )
    if plan.ddp:
        lines += ["        if main_process:", f"            {stop}"]
    else:
        lines.append(f"        {stop}")
    lines.append("        break")
    return lines


def _finish(plan: ScriptPlan) -> list[str]:
    """Restore the best weights, save the state_dict, print the final accuracy."""
    early = plan.experiment.train.early_stopping
    final = "model.module" if plan.ddp else "model"
    lines = []
    if early is not None and early.restore_best_weights:
        lines += ["if best_state is not None:", f"    {final}.load_state_dict(best_state)"]
        restored = f'{_say(plan)}(f"Restored the best weights (epoch {{best_epoch}})")'
        lines.append("    " + restored.replace("\n", "\n    "))
    lines.append("")
    saving = [
        f'torch.save({final}.state_dict(), "model.pth")',
        'print("Saved the weights to model.pth")',
    ]
    if plan.reports_accuracy:
        saving += [
            "if val_accuracy is not None:",
            '    print(f"Final validation accuracy: {val_accuracy:.2%}")',
        ]
    if plan.ddp:
        lines.append("if main_process:")
        lines += [f"    {line}" for line in saving]
        lines.append("dist.destroy_process_group()")
    else:
        lines += saving
    return lines
