"""Inside the model: weight and gradient histograms, gradient norms, activations, conv filters.

`ModelProbe.record(epoch, model, batch, loss_fn)` is what the window calls after each epoch:
one forward and backward pass on one batch, with gradients taken by `torch.autograd.grad`
so the model's `.grad` fields are never touched, and batch-norm statistics put back after.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.engine.insight.outputs import mode, model_device
from workbench.engine.reports import BaseObserver

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SATURATING = (nn.Tanh, nn.Sigmoid)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, *SATURATING)


@dataclass(frozen=True, eq=False)
class Histogram:
    counts: np.ndarray[Any, np.dtype[np.int64]]
    edges: np.ndarray[Any, np.dtype[np.float64]]  # len(counts) + 1

    @classmethod
    def of(cls, values: torch.Tensor, bins: int) -> Histogram:
        data = values.detach().float().reshape(-1).cpu()
        data = data[torch.isfinite(data)]
        if data.numel() == 0:
            return cls(np.zeros(bins, dtype=np.int64), np.linspace(-1.0, 1.0, bins + 1))
        low, high = float(data.min()), float(data.max())
        if high <= low:
            low, high = low - 0.5, high + 0.5
        counts = torch.histc(data, bins=bins, min=low, max=high)
        return cls(counts.numpy().astype(np.int64), np.linspace(low, high, bins + 1))

    @property
    def centres(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        return (self.edges[:-1] + self.edges[1:]) / 2


@dataclass(frozen=True, eq=False)
class ParameterStats:
    """One parameter tensor (e.g. "0.weight") at one epoch."""

    name: str
    layer: str  # "0 (Linear)"
    shape: tuple[int, ...]
    weights: Histogram
    weight_norm: float
    weight_std: float
    gradients: Histogram | None
    grad_norm: float | None


@dataclass(frozen=True)
class ActivationStats:
    """What an activation layer output on the probe batch.

    `dead_fraction`: units (features, or channels of a conv output) that were zero for every
    sample: a dead ReLU never passes a gradient back, so its weights stop learning.
    `saturated_fraction`: outputs of Tanh/Sigmoid within 1% of their limits, where the
    gradient nearly vanishes.
    """

    layer: str
    type: str
    dead_fraction: float
    zero_fraction: float
    saturated_fraction: float


@dataclass(frozen=True, eq=False)
class ProbeSnapshot:
    epoch: int
    parameters: tuple[ParameterStats, ...]
    activations: tuple[ActivationStats, ...]
    loss: float | None
    total_grad_norm: float | None
    batch_size: int

    def parameter(self, name: str) -> ParameterStats:
        return next(stats for stats in self.parameters if stats.name == name)


class ModelProbe:
    """Keeps one ProbeSnapshot per epoch. Cheap: one batch forward and backward, a histogram
    of each parameter and gradient (40 bins), and a few numbers per activation layer."""

    def __init__(self, bins: int = 40, max_batch: int = 256) -> None:
        self.bins, self.max_batch = bins, max_batch
        self.snapshots: list[ProbeSnapshot] = []

    def record(
        self,
        epoch: int,
        model: nn.Module,
        batch: tuple[torch.Tensor, torch.Tensor] | None = None,
        loss_fn: LossFn | None = None,
    ) -> ProbeSnapshot:
        """Measure `model` now. Without a batch and loss only the weights are measured.

        Call it on the training thread between batches, or on a `snapshot_model` copy.
        """
        snapshot = probe(model, epoch, batch, loss_fn, self.bins, self.max_batch)
        self.snapshots = [s for s in self.snapshots if s.epoch != epoch] + [snapshot]
        return snapshot

    @property
    def latest(self) -> ProbeSnapshot | None:
        return self.snapshots[-1] if self.snapshots else None

    @property
    def parameter_names(self) -> list[str]:
        return [stats.name for stats in self.latest.parameters] if self.latest else []

    def grad_norm_curves(self) -> dict[str, tuple[list[int], list[float]]]:
        """Per parameter: (epochs, gradient norms) over the recorded epochs."""
        curves: dict[str, tuple[list[int], list[float]]] = {}
        for snapshot in self.snapshots:
            for stats in snapshot.parameters:
                if stats.grad_norm is not None:
                    epochs, norms = curves.setdefault(stats.name, ([], []))
                    epochs.append(snapshot.epoch)
                    norms.append(stats.grad_norm)
        return curves

    def clear(self) -> None:
        self.snapshots.clear()


def probe(
    model: nn.Module,
    epoch: int,
    batch: tuple[torch.Tensor, torch.Tensor] | None,
    loss_fn: LossFn | None,
    bins: int = 40,
    max_batch: int = 256,
) -> ProbeSnapshot:
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    gradients: list[torch.Tensor | None] = [None] * len(named)
    activations: list[ActivationStats] = []
    loss_value: float | None = None
    size = 0
    if batch is not None and loss_fn is not None and named:
        x, y = (part[:max_batch] for part in batch)
        size = len(x)
        device = model_device(model)
        buffers = {
            key: value.clone()
            for key, value in model.state_dict().items()
            if _is_buffer(model, key)
        }
        with torch.enable_grad(), mode(model, training=True), _watch(model, activations):
            loss = loss_fn(model(x.to(device)), y.to(device))
            found = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        model.load_state_dict(buffers, strict=False)  # batch norm counted the probe batch
        gradients = list(found)
        loss_value = float(loss.detach())
    layers = _layer_names(model)
    parameters = tuple(
        _parameter_stats(name, p, grad, layers, bins)
        for (name, p), grad in zip(named, gradients, strict=True)
    )
    norms = [stats.grad_norm for stats in parameters if stats.grad_norm is not None]
    total = math.sqrt(sum(n * n for n in norms)) if norms else None
    return ProbeSnapshot(epoch, parameters, tuple(activations), loss_value, total, size)


def _is_buffer(model: nn.Module, key: str) -> bool:
    return key in dict(model.named_buffers())


def _layer_names(model: nn.Module) -> dict[str, str]:
    return {
        name: f"{name} ({type(module).__name__})" for name, module in model.named_modules() if name
    }


def _parameter_stats(
    name: str,
    parameter: torch.Tensor,
    gradient: torch.Tensor | None,
    layers: dict[str, str],
    bins: int,
) -> ParameterStats:
    owner = name.rpartition(".")[0]
    weights = parameter.detach()
    return ParameterStats(
        name=name,
        layer=layers.get(owner, owner or name),
        shape=tuple(weights.shape),
        weights=Histogram.of(weights, bins),
        weight_norm=float(weights.float().norm()),
        weight_std=float(weights.float().std()) if weights.numel() > 1 else 0.0,
        gradients=Histogram.of(gradient, bins) if gradient is not None else None,
        grad_norm=float(gradient.float().norm()) if gradient is not None else None,
    )


class _watch:
    """Forward hooks on activation layers that summarise their outputs into `found`."""

    def __init__(self, model: nn.Module, found: list[ActivationStats]) -> None:
        self.model, self.found = model, found
        self.handles: list[Any] = []

    def __enter__(self) -> None:
        for name, module in self.model.named_modules():
            if isinstance(module, ACTIVATIONS):
                self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            self.found.append(activation_stats(name, module, output.detach()))

        return record

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()


def activation_stats(name: str, module: nn.Module, output: torch.Tensor) -> ActivationStats:
    out = output.float()
    units = out.reshape(out.shape[0], out.shape[1], -1) if out.dim() > 2 else out.unsqueeze(-1)
    silent = out <= 0 if isinstance(module, nn.ReLU) else out.abs() < 1e-8
    dead = (units <= 0).all(dim=0).all(dim=-1) if isinstance(module, nn.ReLU) else torch.zeros(1)
    saturated = torch.zeros(())
    if isinstance(module, nn.Tanh):
        saturated = (out.abs() > 0.99).float().mean()
    elif isinstance(module, nn.Sigmoid):
        saturated = ((out < 0.01) | (out > 0.99)).float().mean()
    return ActivationStats(
        layer=name,
        type=type(module).__name__,
        dead_fraction=float(dead.float().mean()),
        zero_fraction=float(silent.float().mean()),
        saturated_fraction=float(saturated),
    )


# --------------------------------------------------------------------------- convolutions


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def first_conv_filters(model: nn.Module) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    """The first Conv2d's weights as [out_channels, in_channels, kh, kw], or None."""
    layers = conv_layers(model)
    if not layers:
        return None
    return layers[0][1].weight.detach().float().cpu().numpy()


def feature_maps(
    model: nn.Module, sample: torch.Tensor, layer: str | None = None
) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    """The output [channels, H, W] of a Conv2d layer (the first one by default) for one sample."""
    layers = dict(conv_layers(model))
    if not layers:
        return None
    module = layers[layer] if layer is not None else next(iter(layers.values()))
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda m, i, output: captured.append(output.detach()))
    try:
        with torch.inference_mode(), mode(model, training=False):
            model(sample.detach().float().unsqueeze(0).to(model_device(model)))
    finally:
        handle.remove()
    return captured[0][0].float().cpu().numpy()


def tile(
    images: np.ndarray[Any, Any], columns: int | None = None, gap: int = 1, symmetric: bool = False
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """[N, h, w] (or [N, h, w, 3]) pictures as one mosaic in 0..1, each scaled on its own;
    `symmetric` puts zero at 0.5 (for filters, whose sign matters). Gaps are NaN."""
    stack = np.asarray(images, dtype=np.float32)
    count = len(stack)
    columns = columns or max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    h, w = stack.shape[1:3]
    extra = stack.shape[3:]
    mosaic = np.full(
        (rows * (h + gap) - gap, columns * (w + gap) - gap, *extra), np.nan, np.float32
    )
    for index, image in enumerate(stack):
        row, column = divmod(index, columns)
        top, left = row * (h + gap), column * (w + gap)
        mosaic[top : top + h, left : left + w] = _scaled(image, symmetric)
    return mosaic


def _scaled(image: np.ndarray[Any, Any], symmetric: bool) -> np.ndarray[Any, Any]:
    if symmetric:
        bound = float(np.abs(image).max())
        return image / (2 * bound) + 0.5 if bound > 0 else np.full_like(image, 0.5)
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def filter_images(filters: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """[out, in, kh, kw] filters as pictures: RGB for 3 input channels, else the mean over them."""
    if filters.shape[1] == 3:
        rgb: np.ndarray[Any, np.dtype[np.float32]] = np.ascontiguousarray(
            filters.transpose(0, 2, 3, 1), dtype=np.float32
        )
        return rgb
    gray: np.ndarray[Any, np.dtype[np.float32]] = filters.mean(axis=1).astype(np.float32)
    return gray


# --------------------------------------------------------------------------- per-step gradients


class GradientNormRecorder(BaseObserver):
    """Per-step gradient norms, if the Trainer offers an `on_after_backward(model)` call.

    The Trainer clears gradients with `zero_grad(set_to_none=True)` right after each step,
    so per-step norms need a call between backward and the step; this is the observer half
    of that hook (see docs/insight.md). `every_n_steps` keeps the cost down.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = max(1, every_n_steps)
        self.calls = 0
        self.steps: list[int] = []
        self.total_norms: list[float] = []
        self.parameter_norms: dict[str, list[float]] = {}

    def on_after_backward(self, model: nn.Module) -> None:
        self.calls += 1
        if (self.calls - 1) % self.every_n_steps:
            return
        named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch.stack([grad.detach().float().norm() for _, grad in named]).cpu().tolist()
        self.steps.append(self.calls)
        self.total_norms.append(math.sqrt(sum(n * n for n in norms)))
        for (name, _), norm in zip(named, norms, strict=True):
            self.parameter_norms.setdefault(name, []).append(norm)


def parameters_of(snapshot: ProbeSnapshot, kind: str = "weight") -> Iterator[ParameterStats]:
    """The snapshot's parameters whose names end in `kind` ("weight" or "bias")."""
    return (stats for stats in snapshot.parameters if stats.name.endswith(kind))
