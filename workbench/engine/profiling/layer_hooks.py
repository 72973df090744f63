"""Per-layer wall time, forward and backward, from hooks on every leaf module of any nn.Module.

A layer is a module without children, named as `model.named_modules()` names it (`3` in a
Sequential, `layer1.0.conv1` in a graph model). Forward time runs from its forward pre-hook to
its forward hook. Backward time runs from the moment autograd has the gradient of the layer's
output to the moment it has the gradients of the layer's inputs and parameters (tensor hooks,
registered on each call). The time spent in the hooks themselves falls between those windows,
not inside them, and is counted apart so that the report can leave it out of the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Self

import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils.hooks import RemovableHandle


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every module without children, by qualified name ("" for a model that is one layer),
    in registration order; a module registered twice is listed once, by its first name."""
    return [(name, m) for name, m in model.named_modules() if next(m.children(), None) is None]


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Wait for the device's queued work, so that a clock reading means the work is done."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def grad_tensors(values: Any) -> list[torch.Tensor]:
    """The tensors in `values` (any nesting) that require grad; quick for the usual shapes."""
    if isinstance(values, torch.Tensor):
        return [values] if values.requires_grad else []
    if isinstance(values, tuple) and all(isinstance(v, torch.Tensor) for v in values):
        return [v for v in values if v.requires_grad]
    return [t for t in tree_leaves(values) if isinstance(t, torch.Tensor) and t.requires_grad]


class LeafHooks:
    """Base of the hook sets below: while entered, `before` and `after` run around the
    forward of every leaf module, with the layer's name."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = leaf_modules(model)
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> Self:
        for name, module in self.layers:
            self._handles.append(module.register_forward_pre_hook(partial(self._pre, name)))
            self._handles.append(module.register_forward_hook(partial(self._post, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre(self, name: str, module: nn.Module, args: Any) -> None:
        self.before(name, module, args)

    def _post(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        self.after(name, module, output)

    def before(self, name: str, module: nn.Module, args: Any) -> None:
        """Runs just before the layer's forward."""

    def after(self, name: str, module: nn.Module, output: Any) -> None:
        """Runs just after the layer's forward."""


@dataclass
class _Call:
    """One forward call of a layer, and when its backward began and ended."""

    name: str
    backward_started: int | None = None  # the first gradient of an output arrived
    backward_ended: int | None = None  # the last gradient of an input or parameter arrived


@dataclass
class LayerTimes:
    """Nanoseconds and calls per layer name, summed over the calls of one step."""

    forward_ns: dict[str, int] = field(default_factory=dict)
    backward_ns: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    first_backward_ns: int | None = None  # clock reading when the first layer's backward began
    hooks_forward_ns: int = 0  # time spent in the timer's own hooks, outside every window
    hooks_backward_ns: int = 0


class LayerTimer(LeafHooks):
    """While entered, every leaf module's forward and backward is timed; `take()` returns the
    times collected since the previous `take()`. Enter it around a whole step: the gradient
    hooks (on parameters too, which outlive the step) are removed on exit.

    Plain tensor hooks (a few microseconds each), not register_multi_grad_hook (tens to
    hundreds): the backward window ends at the last gradient hook of the call that fired.
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__(model)
        self._sync = synchronizer(device)
        self._times = LayerTimes()
        self._open: dict[str, tuple[int, _Call]] = {}
        self._calls: list[_Call] = []
        self._grad_hooks: list[RemovableHandle] = []
        self._weights = {
            name: [p for p in module.parameters() if p.requires_grad]
            for name, module in self.layers
        }

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks.clear()

    def take(self) -> LayerTimes:
        """The times since the last take, each backward window closed."""
        times, self._times = self._times, LayerTimes()
        for call in self._calls:
            started, ended = call.backward_started, call.backward_ended
            if started is not None and ended is not None and ended >= started:
                times.backward_ns[call.name] = times.backward_ns.get(call.name, 0) + ended - started
        self._calls.clear()
        return times

    def before(self, name: str, module: nn.Module, args: Any) -> None:
        entered = time.perf_counter_ns()
        call = _Call(name)
        self._calls.append(call)
        if torch.is_grad_enabled():
            ready = partial(self._input_grad_ready, call)
            for tensor in grad_tensors(args) + self._weights[name]:
                self._grad_hooks.append(tensor.register_hook(ready))  # type: ignore[no-untyped-call]
        self._sync()
        started = time.perf_counter_ns()
        self._open[name] = (started, call)
        self._times.hooks_forward_ns += started - entered

    def after(self, name: str, module: nn.Module, output: Any) -> None:
        self._sync()
        ended = time.perf_counter_ns()
        started, call = self._open.pop(name)
        times = self._times
        times.forward_ns[name] = times.forward_ns.get(name, 0) + ended - started
        times.calls[name] = times.calls.get(name, 0) + 1
        begun = partial(self._output_grad_ready, call)
        for tensor in grad_tensors(output):
            self._grad_hooks.append(tensor.register_hook(begun))  # type: ignore[no-untyped-call]
        times.hooks_forward_ns += time.perf_counter_ns() - ended

    def _output_grad_ready(self, call: _Call, _grad: torch.Tensor) -> None:
        if call.backward_started is not None:
            return
        self._sync()
        call.backward_started = now = time.perf_counter_ns()
        first = self._times.first_backward_ns
        self._times.first_backward_ns = now if first is None else min(first, now)
        self._times.hooks_backward_ns += time.perf_counter_ns() - now

    def _input_grad_ready(self, call: _Call, _grad: torch.Tensor) -> None:
        self._sync()
        call.backward_ended = now = time.perf_counter_ns()
        self._times.hooks_backward_ns += time.perf_counter_ns() - now


class TraceLabels(LeafHooks):
    """While entered, each layer's forward shows in a torch.profiler trace under its name."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self._open: dict[str, Any] = {}

    def before(self, name: str, module: nn.Module, args: Any) -> None:
        record: Any = torch.profiler.record_function(f"layer {name} ({type(module).__name__})")
        record.__enter__()
        self._open[name] = record

    def after(self, name: str, module: nn.Module, output: Any) -> None:
        self._open.pop(name).__exit__(None, None, None)


@dataclass
class ActivationBytes:
    """Bytes each layer keeps for its backward (saved tensors), and its output shape."""

    saved: dict[str, int] = field(default_factory=dict)
    output_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


class ActivationRecorder(LeafHooks):
    """While entered, counts the tensors autograd saves inside each layer's forward.

    A storage is counted once, for the first layer that saved it (a ReLU's output that the
    next Conv2d saves too belongs to the ReLU); parameters and buffers are not activations.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.result = ActivationBytes()
        self._weights = {
            t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]
        }
        self._seen: set[int] = set()
        self._open: dict[str, Any] = {}

    def before(self, name: str, module: nn.Module, args: Any) -> None:
        saving = torch.autograd.graph.saved_tensors_hooks(partial(self._pack, name), _unpack)
        saving.__enter__()
        self._open[name] = saving

    def after(self, name: str, module: nn.Module, output: Any) -> None:
        self._open.pop(name).__exit__(None, None, None)
        first = next((t for t in tree_leaves(output) if isinstance(t, torch.Tensor)), None)
        if first is not None and name not in self.result.output_shapes:
            self.result.output_shapes[name] = tuple(first.shape[1:])

    def _pack(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensor subclasses without one storage
            return tensor
        pointer = storage.data_ptr()
        if pointer not in self._weights and pointer not in self._seen:
            self._seen.add(pointer)
            self.result.saved[name] = self.result.saved.get(name, 0) + storage.nbytes()
        return tensor


def _unpack(tensor: torch.Tensor) -> torch.Tensor:
    return tensor
