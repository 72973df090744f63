"""The layers that join branches of a graph model: Add (residual connections), Mul, Concat."""

from __future__ import annotations

import torch
from torch import nn


class Add(nn.Module):
    """Adds its inputs element by element, as `out = out + identity` in a residual block."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        total = inputs[0]
        for other in inputs[1:]:
            total = total + other
        return total


class Mul(nn.Module):
    """Multiplies its inputs element by element, e.g. a gate: `x * torch.sigmoid(g)`."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        product = inputs[0]
        for other in inputs[1:]:
            product = product * other
        return product


class Concat(nn.Module):
    """Joins its inputs along `dim` (counting the batch as 0), as `torch.cat(inputs, dim)`."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
