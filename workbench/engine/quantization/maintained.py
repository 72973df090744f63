"""The maintained quantization API: torchao's `quantize_` (dynamic) and its PT2E export flow.

These are the successors of torch.ao.quantization's eager API. On this project's x86 CPUs they
measured slower than the eager kernels (PT2E's int8 graphs only pay off once torch.compile
lowers them), so `auto` picks them only where the eager API is gone; `path = "torchao"` or
`"pt2e"` asks for them explicitly. Numbers and reasons: docs/quantization.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.engine.checkpoints.pickle_scan import PickleScanError, unsafe_globals_in_zip_pickle
from workbench.engine.quantization.recipe import QuantizationError

_NO_COMPUTE = (nn.Flatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """torchao registers an Enum with pytree at import, which torch logs as deprecated; and
    torch's export caching warns that torchao's tensor subclasses lack a stable hash."""
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="(?s).*_stable_hash_for_caching")
            warnings.filterwarnings(
                "ignore", message=r"(?s).*torch\.ao\.quantization is deprecated"
            )
            yield
    finally:
        logger.setLevel(level)


def torchao_available() -> bool:
    try:
        with quiet():
            import torchao.quantization  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- torchao dynamic


def torchao_dynamic(model: nn.Module) -> nn.Module:
    """int8 dynamic activations with int8 weights on every Linear (torchao's tensor subclasses)."""
    with quiet():
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(
            model.eval(),
            Int8DynamicActivationInt8WeightConfig(),
            filter_fn=lambda module, _fqn: isinstance(module, nn.Linear),
        )
    return model


def encode_subclass_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights as plain tensors: a torchao tensor is saved as its inner tensors (int8 data,
    scales), so the file loads with weights_only=True and no torchao class is unpickled."""
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, Any] = {}
    for key, value in model.state_dict().items():
        if type(value) in (torch.Tensor, nn.Parameter):
            tensors[key] = value.detach().contiguous()
            layout[key] = {"kind": "tensor"}
            continue
        inner, _context = value.__tensor_flatten__()
        for name in inner:
            tensors[f"{key}::{name}"] = getattr(value, name).detach().contiguous()
        layout[key] = {"kind": "subclass", "class": type(value).__name__, "inner": list(inner)}
    return tensors, layout


def load_subclass_state(
    model: nn.Module, tensors: dict[str, torch.Tensor], layout: dict[str, Any]
) -> None:
    """Copy saved inner tensors into a model that `torchao_dynamic` has just quantized."""
    with torch.no_grad():
        for key, spec in layout.items():
            owner_name, _, attribute = key.rpartition(".")
            target = getattr(model.get_submodule(owner_name), attribute)
            if spec["kind"] == "tensor":
                target.copy_(tensors[key])
                continue
            if type(target).__name__ != spec["class"]:
                raise QuantizationError(
                    f"{key}: the file holds a {spec['class']}, but quantizing gives a "
                    f"{type(target).__name__}; quantize the model again with this torchao"
                )
            for name in spec["inner"]:
                getattr(target, name).copy_(tensors[f"{key}::{name}"])


# --------------------------------------------------------------------------- PT2E


def export_graph(model: nn.Module, sample: torch.Tensor) -> torch.fx.GraphModule:
    """The model as an exported graph with a dynamic batch dimension."""
    batch = torch.export.Dim.DYNAMIC
    with quiet():
        program = torch.export.export(model, (_batch_of_two(sample),), dynamic_shapes=({0: batch},))
    module = program.module()
    assert isinstance(module, torch.fx.GraphModule)
    _separate_repeated_calls(module)
    return module


def _separate_repeated_calls(graph: torch.fx.GraphModule) -> None:
    """Name each call of a module called twice apart (`layer1.0.relu@1`), as export's own keys
    do. The quantizer groups nodes by that name, and torchvision's ResNet blocks call one ReLU
    twice: as one group with two outputs, its pattern matching refuses the whole graph."""
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        node.meta["nn_module_stack"] = {
            key: (f"{path}@{key.rpartition('@')[2]}" if "@" in key else path, kind)
            for key, (path, kind) in stack.items()
        }


def _batch_of_two(sample: torch.Tensor) -> torch.Tensor:
    """Export specialises a batch of one to a constant; two keeps the batch size symbolic.

    A copy, not a view: export saves its example input, and a view would drag the whole
    calibration batch into the file.
    """
    return (sample[:2] if len(sample) >= 2 else torch.cat([sample, sample])[:2]).clone()


def _quantizer(backend: str, observer: str, qat: bool) -> Any:
    with quiet():
        if backend == "qnnpack":
            from torchao.quantization.pt2e.quantizer import arm_inductor_quantizer as arm

            quantizer = arm.ArmInductorQuantizer()
            quantizer.set_global(arm.get_default_arm_inductor_quantization_config(is_qat=qat))
            return quantizer
        from torchao.quantization.pt2e import MinMaxObserver, MovingAverageMinMaxObserver
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

        config = x86.get_default_x86_inductor_quantization_config(is_qat=qat)
        if not qat and observer != "histogram":
            kind = MinMaxObserver if observer == "minmax" else MovingAverageMinMaxObserver
            activation = dataclasses.replace(
                config.input_activation, observer_or_fake_quant_ctr=kind.with_args(eps=2**-12)
            )
            config = dataclasses.replace(config, input_activation=activation)
        quantizer = x86.X86InductorQuantizer()
        quantizer.set_global(config)
        return quantizer


def pt2e_prepare(
    model: nn.Module, sample: torch.Tensor, backend: str, observer: str, *, qat: bool
) -> torch.fx.GraphModule:
    """Export, then insert observers (static) or fake quantization (QAT) where the backend's
    quantizer annotates operators; everything else stays float by construction."""
    with quiet():
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

        model.train(qat)
        graph = export_graph(model, sample)
        quantizer = _quantizer(backend, observer, qat)
        prepared = prepare_qat_pt2e(graph, quantizer) if qat else prepare_pt2e(graph, quantizer)
        if qat:
            # QAT trains then evaluates the graph: .train()/.eval() must swap dropout and BN.
            # A static graph was exported in eval mode already, and that rewrite is slow.
            allow_exported_model_train_eval(prepared)
    assert isinstance(prepared, torch.fx.GraphModule)
    return prepared


def pt2e_observe(prepared: torch.fx.GraphModule, batches: Iterable[torch.Tensor]) -> None:
    """Calibrate a static graph (exported in eval mode; exported graphs refuse .eval())."""
    with quiet(), torch.no_grad():
        for x in batches:
            prepared(x)


def pt2e_convert(prepared: torch.fx.GraphModule, *, qat: bool) -> torch.fx.GraphModule:
    with quiet():
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        if qat:
            prepared.eval()  # dropout and BatchNorm to their inference form first
        converted = convert_pt2e(prepared)
    assert isinstance(converted, torch.fx.GraphModule)
    _drop_unused_weights(converted)
    return converted


def _drop_unused_weights(graph: torch.fx.GraphModule) -> None:
    """convert_pt2e folds int8 copies of the weights into the graph but keeps the float
    originals as attributes; left in, they would make the saved file larger than float."""
    used = {str(node.target) for node in graph.graph.nodes if node.op == "get_attr"}
    named = [*graph.named_parameters(), *graph.named_buffers()]
    for name, _value in named:
        if name in used:
            continue
        owner_name, _, attribute = name.rpartition(".")
        owner = graph.get_submodule(owner_name) if owner_name else graph
        delattr(owner, attribute)
    graph.delete_all_unused_submodules()
    graph.recompile()


def pt2e_freeze(prepared: torch.fx.GraphModule) -> None:
    """Stop range updates for the last QAT epoch (BN statistics follow eval/train)."""
    with quiet():
        from torchao.quantization.pt2e import disable_observer

        prepared.apply(disable_observer)


def pt2e_float_layers(prepared: torch.fx.GraphModule, model: nn.Module) -> list[int]:
    """Layers of `model` (its children, by position) with operators the quantizer left
    unannotated (they run in float).

    Read from the prepared graph, where each operator still carries the quantizer's
    annotation and the layer it came from.
    """
    layers = list(model.named_children())
    positions = {name: index for index, (name, _) in enumerate(layers)}
    annotated: set[int] = set()
    computing: set[int] = set()
    for node in prepared.graph.nodes:
        index = _layer_of(node, positions) if node.op == "call_function" else None
        if index is None:
            continue
        computing.add(index)
        annotation = node.meta.get("quantization_annotation")
        if annotation is not None and getattr(annotation, "_annotated", False):
            annotated.add(index)
    return sorted(
        index for index in computing - annotated if not isinstance(layers[index][1], _NO_COMPUTE)
    )


def _layer_of(node: torch.fx.Node, positions: dict[str, int]) -> int | None:
    """The position of the model's child an operator came from (`conv1`, `0`, `layer1.0...`)."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, _kind in stack.values():
        text = str(path).removeprefix("L['self']").lstrip(".")
        head = text.split(".")[0].strip("[]'")
        if head in positions:
            return positions[head]
    return None


def pt2e_float_note(index: int, layer: nn.Module, backend: str) -> str:
    return (
        f"layer {index} ({type(layer).__name__}): the {backend} PT2E quantizer has no int8 "
        "pattern for it; kept in float"
    )


# --------------------------------------------------------------------------- .pt2 files


def save_program(
    model: torch.fx.GraphModule, sample: torch.Tensor, target: Path, extra: dict[str, str]
) -> None:
    """torch.export.save of the int8 graph, with our recipe and experiment as extra files."""
    batch = torch.export.Dim.DYNAMIC
    with quiet():
        program = torch.export.export(model, (_batch_of_two(sample),), dynamic_shapes=({0: batch},))
        torch.export.save(program, target, extra_files=extra)


def load_program(path: Path, extra_names: Iterable[str]) -> tuple[nn.Module, dict[str, str]]:
    """Load a .pt2 after checking it holds no pickled objects (torch.export.load would unpickle
    them with weights_only=False); a PT2E int8 graph has plain tensors only."""
    _refuse_pickled_payloads(path)
    extra = dict.fromkeys(extra_names, "")
    with quiet():
        # The graph calls quantized_decomposed ops, which exist once torchao's PT2E flow is
        # imported; without it a fresh process cannot deserialize the file.
        import torchao.quantization.pt2e  # noqa: F401

        program = torch.export.load(path, extra_files=extra)
    module = program.module()
    return module, extra


def _refuse_pickled_payloads(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(("_weights_config.json", "_constants_config.json")):
                    _check_payload_config(path, name, json.loads(archive.read(name)))
                elif "/data/sample_inputs/" in name:
                    _check_pickle(path, name, archive.read(name))
                elif name.endswith(".pt") and (
                    "/data/weights/" in name or "/data/constants/" in name
                ):
                    raise QuantizationError(
                        f"{path}: an old .pt2 layout whose weights are pickled; re-export it"
                    )
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise QuantizationError(f"{path}: not a readable .pt2 archive ({exc})") from None


def _check_payload_config(path: Path, name: str, config: dict[str, Any]) -> None:
    for key, entry in config.get("config", {}).items():
        pickled = entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
            ("weight_", "tensor_")
        )
        if pickled:
            raise QuantizationError(
                f"{path}: {key!r} is stored as a pickled object, which loading would run as "
                "code; refusing it. Save quantized models with workbench (PT2E graphs hold "
                "plain tensors only)"
            )


def _check_pickle(path: Path, name: str, data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            pickle_name = next(n for n in inner.namelist() if n.endswith("data.pkl"))
            unsafe = unsafe_globals_in_zip_pickle(inner.read(pickle_name))
    except (zipfile.BadZipFile, StopIteration, PickleScanError):
        raise QuantizationError(f"{path}: {name} is damaged") from None
    if unsafe:
        raise QuantizationError(
            f"{path}: {name} would import {', '.join(unsafe[:3])} when loaded; refusing it"
        )
