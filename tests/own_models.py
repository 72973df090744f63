"""Model files a user writes, for the own-model tests: each test writes them into its tmp_path.

Three shapes of user code, all sized for scikit-learn's 8x8 digits (offline): a CNN class with
F.relu/F.max_pool2d in forward, a factory function taking kwargs, and a residual forward.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
from torch import nn

CNN = """
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


def main():  # a user's file often trains too; the workbench and exported scripts never run it
    raise SystemExit("main() must not run")


if __name__ == "__main__":
    main()
"""

FACTORY = """
from torch import nn


def make_mlp(hidden=32, depth=1, num_classes=10):
    layers = [nn.Flatten()]
    width = 64
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
"""

RESIDUAL = """
import torch
from torch import nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)


class ResNet(nn.Module):
    def __init__(self, channels=8, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.layer1 = Block(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.layer1(F.relu(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))
"""


@dataclass(frozen=True)
class OwnModel:
    """A user's model file and how an experiment names it."""

    file: str
    source: str
    attribute: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str = "cross_entropy"
    parameters: int = 0

    @property
    def module(self) -> str:
        return f"models/{self.file}:{self.attribute}"


# The seed's MNIST `Net` as docs/own-models.md shows it (conv 32/64, fc 9216-128-10).
MNIST_NET = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)
"""


MODELS = {
    "cnn": OwnModel("net.py", CNN, "Net", loss="nll", parameters=3_658),
    "factory": OwnModel(
        "mlp.py", FACTORY, "make_mlp", {"hidden": 24, "depth": 2}, parameters=2_410
    ),
    "residual": OwnModel("resnet.py", RESIDUAL, "ResNet", {"channels": 8}, parameters=1_354),
}


def write_project(folder: Path, model: OwnModel, **train: Any) -> Path:
    """`folder/models/FILE` and `folder/exp.toml` naming it (relative), on digits; the path."""
    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "models" / model.file).write_text(model.source.lstrip(), encoding="utf-8")
    values: dict[str, Any] = {"model": {"module": model.module}}
    if model.kwargs:
        values["model"]["kwargs"] = model.kwargs
    values["data"] = {"name": "digits", "batch_size": 64, "val_batch_size": 512}
    values["train"] = {
        "epochs": 1,
        "optimizer": "adam",
        "lr": 0.01,
        "loss": model.loss,
        "device": "cpu",
        **train,
    }
    path = folder / "exp.toml"
    path.write_text(tomli_w.dumps(values), encoding="utf-8")
    return path


def reference_model(folder: Path, model: OwnModel) -> nn.Module:
    """The model as the user's own code makes it, imported here without the workbench."""
    path = folder / "models" / model.file
    spec = importlib.util.spec_from_file_location(f"reference_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = getattr(module, model.attribute)(**model.kwargs)
    assert isinstance(made, nn.Module)
    return made
