"""A backbone's pretrained weights: torchvision's (from the torch hub cache, downloaded into it
when the machine is online), a local state_dict file, or none; and the preprocessing they want.

Every file is opened through the project's safe loader (`weights_only=True`). A missing file
is one message naming the file, the address to fetch it from and the folder to put it in.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from workbench.engine.backbones import Backbone, backbones_in, torchvision_models
from workbench.engine.datasets.image_transforms import Preprocessing
from workbench.engine.errors import ModelBuildError

DOWNLOAD_TIMEOUT_SECONDS = 30
NONE, DEFAULT = "none", "DEFAULT"
_HASH_PREFIX = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's rule: resnet18-f37072fd.pth


class BackboneWeightsError(ModelBuildError):
    """Pretrained weights cannot be found, fetched or fitted; the message says what to do."""


@dataclass(frozen=True)
class WeightsChoice:
    """What `weights` names: torchvision weights (with their download address), a file, none."""

    arch: str
    kind: str  # "torchvision", "file" or "none"
    name: str  # `ResNet18_Weights.IMAGENET1K_V1`, the file's path, or "none"
    url: str = ""

    @property
    def file_name(self) -> str:
        """The file torchvision's weights are saved as (`resnet18-f37072fd.pth`)."""
        return Path(urlparse(self.url).path).name

    @property
    def short_name(self) -> str:
        return self.name.rpartition(".")[2] if self.kind == "torchvision" else self.name


def weights_enum(arch: str) -> Any:
    """The torchvision weights enum of `arch` (e.g. ResNet18_Weights)."""
    return torchvision_models().get_model_weights(arch)


def check_weights(arch: str, weights: str) -> WeightsChoice:
    """What `weights` means for `arch`; ValueError naming the choices when it means nothing."""
    if weights.lower() == NONE:
        return WeightsChoice(arch, NONE, NONE)
    enum = weights_enum(arch)
    names = [member.name for member in enum]
    wanted = weights.rpartition(".")[2] if weights.startswith(enum.__name__ + ".") else weights
    if wanted == DEFAULT or wanted in names:
        member = enum.DEFAULT if wanted == DEFAULT else enum[wanted]
        return WeightsChoice(arch, "torchvision", f"{enum.__name__}.{member.name}", member.url)
    path = Path(weights).expanduser()
    if path.is_file():
        return WeightsChoice(arch, "file", str(path))
    looks_like_file = any(mark in weights for mark in ("/", "\\", "."))
    what = "no such file" if looks_like_file else f"not a weights name of {arch}"
    raise ValueError(
        f'weights = {weights!r}: {what}; use "DEFAULT", one of {", ".join(names)}, the path '
        'of a state_dict file (e.g. "resnet18-f37072fd.pth") or "none"'
    )


def preprocessing_for(arch: str, weights: str) -> Preprocessing:
    """The resize, crop and normalisation the weights were trained with (`weights.transforms()`);
    a local file or no weights get those of the architecture's default weights."""
    choice = check_weights(arch, weights)
    member = torchvision_models().get_weight(choice.name) if choice.kind == "torchvision" else None
    if member is None:
        member = weights_enum(arch).DEFAULT
    transform = member.transforms()
    source = f"{arch} {member.name} weights' preprocessing"
    return Preprocessing(
        crop_size=int(transform.crop_size[0]),
        resize_size=int(transform.resize_size[0]),
        mean=tuple(float(value) for value in transform.mean),
        std=tuple(float(value) for value in transform.std),
        interpolation=str(transform.interpolation.value),
        source=source,
    )


# --------------------------------------------------------------------------- the hub cache


def hub_checkpoints() -> Path:
    """Where torch keeps downloaded weights: `$TORCH_HOME/hub/checkpoints`."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file(choice: WeightsChoice) -> Path:
    return hub_checkpoints() / choice.file_name


def is_cached(choice: WeightsChoice) -> bool:
    return choice.kind == "torchvision" and cached_file(choice).is_file()


def fetch(choice: WeightsChoice) -> Path:
    """The weights file in the hub cache, downloaded into it first when it is not there."""
    target = cached_file(choice)
    if target.is_file():
        return target
    try:
        download(choice.url, target)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise BackboneWeightsError(
            f"the {choice.arch} weights {choice.short_name} are not in the torch hub cache and "
            f"could not be downloaded ({reason}); download {choice.url} and put it at {target} "
            f'(TORCH_HOME moves that folder), or set weights to a local file or "none"'
        ) from None
    return target


def download(url: str, target: Path) -> None:
    """Fetch `url` to `target` through a temporary file in the same folder, checking the SHA-256
    prefix in its name as torch.hub does; the file appears whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    found = _HASH_PREFIX.search(target.name)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out, _open_url(url) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if found is not None and not digest.hexdigest().startswith(found[1]):
            raise ValueError(f"the download's checksum does not match {target.name}")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _open_url(url: str) -> Any:
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)


# --------------------------------------------------------------------------- loading


def pretrained_state_dict(choice: WeightsChoice) -> tuple[dict[str, torch.Tensor], Path]:
    """The weights of `choice` (not "none"), opened with weights_only=True, and their file."""
    from workbench.engine.checkpoints import open_checkpoint
    from workbench.engine.errors import CheckpointError

    path = fetch(choice) if choice.kind == "torchvision" else Path(choice.name)
    try:
        return dict(open_checkpoint(path).state_dict), path
    except CheckpointError as exc:
        raise BackboneWeightsError(f"weights of the {choice.arch} backbone: {exc}") from None


def load_pretrained(backbone: Backbone, where: str) -> str | None:
    """Put the backbone's pretrained weights in; a line saying what was loaded (None: none).

    The removed classifier's keys are not used; any other difference from the network is an
    error listing the keys, as `workbench reconcile` shows them.
    """
    from workbench.engine.checkpoints.reconcile import describe_misfit, reconcile

    choice = check_weights(backbone.arch, backbone.weights)
    if choice.kind == NONE:
        return None
    state, path = pretrained_state_dict(choice)
    used = {key: value for key, value in state.items() if not _is_classifier(key, backbone)}
    result = reconcile(used, backbone)
    if not result.fits:
        raise BackboneWeightsError(
            f"{where} ({backbone.arch}): {path} does not fit the network: "
            f"{describe_misfit(result)}; check that the file holds {backbone.arch} weights "
            "(`workbench reconcile FILE EXP.toml` shows every key)"
        )
    with torch.no_grad():
        backbone.load_state_dict(used, strict=True)
    ignored = len(state) - len(used)
    note = f", {ignored} classifier tensors not used" if ignored else ""
    return f"Backbone {where}: {backbone.arch} weights from {path}{note}"


def _is_classifier(key: str, backbone: Backbone) -> bool:
    return any(key == name or key.startswith(name + ".") for name in backbone.classifier_keys)


def load_pretrained_backbones(model: nn.Module) -> list[str]:
    """Load every backbone's pretrained weights; one line per backbone for the run log."""
    notes = []
    for name, backbone in backbones_in(model):
        note = load_pretrained(backbone, f"'{name}'")
        notes.append(note or f"Backbone '{name}': {backbone.arch} with random weights (none)")
    return notes


@dataclass(frozen=True)
class BackboneFit:
    """A state_dict that is the weights of one backbone layer, saved as torchvision saves them."""

    layer: str  # the backbone's module path, e.g. backbone
    arch: str
    used: int  # tensors that fit it
    classifier: tuple[str, ...]  # the file's classifier keys, which a backbone does not use

    @property
    def prefix(self) -> str:
        return f"{self.layer}."

    def advice(self, file: str) -> str:
        drops = "".join(f" --drop {key}" for key in self.classifier)
        ignored = f"; its classifier ({', '.join(self.classifier)}) is not used" * bool(
            self.classifier
        )
        return (
            f"The file holds {self.arch} weights for the Backbone layer '{self.layer}': its "
            f"{self.used} tensors fit under the prefix {self.prefix!r}{ignored}. Use it as the "
            f'layer\'s weights (weights = "{file}"), or add the prefix: workbench edit {file} '
            f"-o OUT{drops} --add-prefix {self.prefix} (the layers after it keep their own "
            "weights)"
        )


def backbone_fit(state_dict: dict[str, torch.Tensor], model: nn.Module) -> BackboneFit | None:
    """The backbone layer whose torchvision keys `state_dict` has (classifier aside), if any."""
    from workbench.engine.checkpoints.reconcile import reconcile

    for name, backbone in backbones_in(model):
        used = {
            key: value for key, value in state_dict.items() if not _is_classifier(key, backbone)
        }
        if used and reconcile(used, backbone).fits:
            classifier = tuple(key for key in state_dict if key not in used)
            return BackboneFit(name, backbone.arch, len(used), classifier)
    return None
