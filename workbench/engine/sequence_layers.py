"""Sequence layers of our own: learned positions, the last step, a pre-norm Transformer block,
and PyTorch's TransformerEncoderLayer with an optional causal mask.

Each class uses only `torch`, `nn` and `math`, so an exported script can carry its source as it
is (`export_source`). Inputs are batch first: `[batch, length, features]`.
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn


class PositionalEmbedding(nn.Module):
    """Adds a learned vector per position (GPT-2's `wpe`) to a [batch, length, dim] input."""

    def __init__(self, num_positions: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_positions = num_positions
        self.embedding_dim = embedding_dim
        self.weight = nn.Parameter(torch.empty(num_positions, embedding_dim))
        nn.init.normal_(self.weight)  # as nn.Embedding initialises its table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-2]
        if length > self.num_positions:
            raise ValueError(
                f"PositionalEmbedding: the input has {length} positions, but it learned "
                f"{self.num_positions}; feed at most block_size tokens"
            )
        return x + self.weight[:length]

    def extra_repr(self) -> str:
        return f"{self.num_positions}, {self.embedding_dim}"


class LastStep(nn.Module):
    """The last position of a [batch, length, features] sequence: [batch, features]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1]


class SelfAttention(nn.Module):
    """Multi-head self-attention with one qkv projection, as nanoGPT writes it."""

    def __init__(
        self, embed_dim: int, heads: int, causal: bool, dropout: float, bias: bool
    ) -> None:
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.dropout = dropout
        self.c_attn = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.c_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def heads_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values as [batch, heads, length, head_dim]."""
        batch, length, channels = x.shape
        q, k, v = self.c_attn(x).split(channels, dim=2)
        shape = (batch, length, self.heads, channels // self.heads)
        return (
            q.view(shape).transpose(1, 2),
            k.view(shape).transpose(1, 2),
            v.view(shape).transpose(1, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        q, k, v = self.heads_of(x)
        y = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=self.causal
        )
        y = y.transpose(1, 2).contiguous().view(batch, length, channels)
        out: torch.Tensor = self.resid_dropout(self.c_proj(y))
        return out

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention probabilities [batch, heads, length, length] the forward uses."""
        q, k, _ = self.heads_of(x)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if self.causal:
            length = x.shape[1]
            future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        return torch.softmax(scores, dim=-1)


class MLP(nn.Module):
    """The feed-forward half of a Transformer block: widen, GELU, narrow."""

    def __init__(self, embed_dim: int, hidden: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(embed_dim, hidden, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(hidden, embed_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.dropout(self.c_proj(self.gelu(self.c_fc(x))))
        return out


class TransformerBlock(nn.Module):
    """A pre-norm GPT block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(
        self,
        embed_dim: int,
        heads: int = 4,
        causal: bool = True,
        dropout: float = 0.0,
        mlp_ratio: int = 4,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(embed_dim, bias=bias)
        self.attn = SelfAttention(embed_dim, heads, causal, dropout, bias)
        self.ln_2 = nn.LayerNorm(embed_dim, bias=bias)
        self.mlp = MLP(embed_dim, mlp_ratio * embed_dim, dropout, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class TransformerEncoderLayer(nn.TransformerEncoderLayer):
    """PyTorch's own encoder layer, batch first (so its inference fast path applies), with an
    optional causal mask so that it can model language too. Its weights are torch's."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__(
            d_model,
            nhead,
            dim_feedforward,
            dropout,
            activation,
            layer_norm_eps,
            batch_first,
            norm_first,
            bias,
        )
        self.causal = causal

    def forward(  # type: ignore[override]
        self, src: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.causal and src_mask is None:
            mask = nn.Transformer.generate_square_subsequent_mask(
                src.shape[-2], device=src.device, dtype=src.dtype
            )
            return super().forward(src, src_mask=mask, is_causal=True)
        return super().forward(src, src_mask=src_mask)


class LSTM(nn.LSTM):
    """nn.LSTM giving only its output sequence, so that it fits in an nn.Sequential.

    Only exported scripts use this class: the engine keeps the plain nn.LSTM (whose dynamic
    int8 version exists) and takes item 0 of its (output, state) result in the model's forward.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


class GRU(nn.GRU):
    """nn.GRU giving only its output sequence (exported scripts only; see LSTM)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0]


def export_source(cls: type[nn.Module]) -> str:
    """The class's source, for an exported script (it needs only torch, nn and math)."""
    return inspect.getsource(cls).rstrip()


# Classes an exported script needs alongside each (SelfAttention and MLP live in a block).
EXPORT_CLASSES: dict[type[nn.Module], tuple[type[nn.Module], ...]] = {
    TransformerBlock: (SelfAttention, MLP, TransformerBlock),
}
