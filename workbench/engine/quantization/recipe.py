"""What a quantization run does, as plain data: method, path, backend, observer and what stays float.

The recipe is saved with the quantized weights, so a file reloads by replaying it on the
experiment's model; nothing has to be redone by hand.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.engine.errors import WorkbenchError
from workbench.engine.quantization_choices import METHODS as METHODS
from workbench.engine.quantization_choices import OBSERVERS as OBSERVERS
from workbench.engine.quantization_choices import PATHS as PATHS

METHOD_LABELS = {
    "dynamic": "int8 weights, activations quantized on the fly",
    "static": "post-training: int8 weights and activations, calibrated",
    "qat": "quantization-aware training: fine-tuned with fake quantization, then int8",
}
# Which maintained-API path stands in for the eager API, per method.
MAINTAINED_PATH = {"dynamic": "torchao", "static": "pt2e", "qat": "pt2e"}


class QuantizationError(WorkbenchError):
    """A model cannot be quantized, saved or reloaded as asked: the message says what to do."""


class QuantizationCancelled(QuantizationError):
    """The user cancelled the run; nothing was written."""


@dataclass(frozen=True)
class QuantizationOptions:
    """What the user chose: method, how many calibration samples or QAT epochs, and the path."""

    method: str = "dynamic"
    calibration_samples: int = 256
    qat_epochs: int = 1
    qat_lr_scale: float = 0.1  # QAT fine-tunes a trained model: a tenth of the training lr
    observer: str = "histogram"
    path: str = "auto"
    backend: str | None = None  # None: the one this machine runs best

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        _check_choice("path", self.path, PATHS)
        _check_choice("observer", self.observer, OBSERVERS)
        if self.calibration_samples < 1:
            raise QuantizationError(
                f"calibration: {self.calibration_samples} samples is too few; use at least 1 "
                "(a few hundred is typical)"
            )
        if self.qat_epochs < 1:
            raise QuantizationError(
                f"qat-epochs: {self.qat_epochs} is too few; use at least 1 epoch"
            )
        if self.path == "torchao" and self.method != "dynamic":
            raise QuantizationError(
                f"path 'torchao' runs dynamic quantization only; for {self.method} use "
                "path 'pt2e' (torchao's export flow) or 'eager'"
            )
        if self.path == "pt2e" and self.method == "dynamic":
            raise QuantizationError(
                "path 'pt2e' runs static and qat; for dynamic use path 'torchao' or 'eager'"
            )


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise QuantizationError(
            f"{name}: {value!r} is not known; choose one of {', '.join(allowed)}"
        )


@dataclass(frozen=True)
class Recipe:
    """Everything needed to rebuild the quantized model's structure from the float one."""

    method: str
    path: str  # eager | torchao | pt2e
    backend: str  # x86 | fbgemm | qnnpack | onednn
    observer: str = "histogram"
    fused: tuple[tuple[str, ...], ...] = ()  # names of the Sequential children fused together
    float_layers: tuple[int, ...] = ()  # layer indices kept in float
    calibration_samples: int = 0
    qat_epochs: int = 0
    path_reason: str = ""
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        values: Mapping[str, Any] = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        args = {key: value for key, value in values.items() if key in known}
        args["fused"] = tuple(tuple(group) for group in args.get("fused", ()))
        args["float_layers"] = tuple(args.get("float_layers", ()))
        args["notes"] = tuple(args.get("notes", ()))
        return cls(**args)


def machine_backend(engines: Sequence[str] | None = None, machine: str | None = None) -> str:
    """The quantized engine for this CPU: x86 (fbgemm + onednn) on Intel/AMD, qnnpack on ARM.

    `engines` and `machine` default to what torch and the platform report.
    """
    engines = list(torch.backends.quantized.supported_engines if engines is None else engines)
    machine = platform.machine() if machine is None else machine
    arm = machine.lower() in ("arm64", "aarch64", "armv7l", "armv8l")
    preferred = ("qnnpack", "x86", "fbgemm") if arm else ("x86", "fbgemm", "qnnpack", "onednn")
    for name in preferred:
        if name in engines:
            return name
    raise QuantizationError(
        f"this build of torch has no quantized CPU engine (it offers {engines}); install a CPU "
        "build of torch with fbgemm (x86) or qnnpack (ARM)"
    )


def check_backend(name: str) -> str:
    engines = torch.backends.quantized.supported_engines
    if name not in engines:
        raise QuantizationError(
            f"backend {name!r} is not available on this machine; choose one of "
            f"{', '.join(e for e in engines if e != 'none')} or leave it to auto"
        )
    return name
