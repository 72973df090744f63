"""Benchmarks for language models: the tiny-gpt preset trained by the Trainer against a plain
nanoGPT-style loop of the same model, torch.compile on and off, the TransformerEncoderLayer
inference fast path on and off, and dynamic int8 latency per generated token.

Training throughput (tokens per second) is measured side by side in one run: each round trains
one epoch of the preset with the Trainer (data, forward, loss, backward, step and its reports)
and the same steps of a hand-written GPT (the nanoGPT model and loop: `logits = model(x)`,
`F.cross_entropy`, AdamW) with the same weights and batches. A run's rate is its tokens per
step over its median step time (the time between two steps' ends: robust to a busy machine's
stalls); rounds alternate which goes first; the figure is the median of the paired ratios.
Target >= 0.95. One torch thread (on a shared 2-core machine, two threads contend).
Run with `make bench` or `pytest -s -m bench tests/benchmarks/test_bench_text_models.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import statistics
import time
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tests.conftest import PRESETS
from workbench.engine.errors import TrainingError
from workbench.engine.experiment import Experiment, LayerSpec, ModelSpec, load_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.model_builder import build_model
from workbench.engine.quantization.latency import MeasureSettings
from workbench.engine.quantization.legacy_eager import quantize_dynamic
from workbench.engine.quantization.recipe import machine_backend
from workbench.engine.quantization.sequence_report import fast_path_options, per_token_latency
from workbench.engine.reports import RecordingObserver
from workbench.engine.trainer import Trainer

ROUNDS = 11


# --------------------------------------------------------------------------- nanoGPT, by hand


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        out: torch.Tensor = self.c_proj(y)
        return out


class MLP(nn.Module):
    def __init__(self, n_embd: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.c_proj(self.gelu(self.c_fc(x)))
        return out


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class GPT(nn.Module):
    def __init__(self, vocab: int, block_size: int, n_embd: int, n_head: int, n_layer: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        out: torch.Tensor = self.lm_head(self.ln_f(x))
        return out


def hand_written_copy(built: nn.Module, vocab: int, block_size: int) -> GPT:
    """The same GPT by hand, holding the built model's weights (same shapes, same order)."""
    model = GPT(vocab, block_size, n_embd=64, n_head=4, n_layer=2)
    own = model.state_dict()
    assert [v.shape for v in own.values()] == [v.shape for v in built.state_dict().values()]
    model.load_state_dict(dict(zip(own, built.state_dict().values(), strict=True)))
    return model


def plain_loop_rate(model: nn.Module, trainer: Trainer, lr: float) -> float:
    """Tokens per second of the nanoGPT loop over the batches of the Trainer's epoch 1."""
    source = trainer.loaders.train
    x_all, y_all = source.x, source.y  # type: ignore[attr-defined]
    batches = list(source.batch_sampler.batches(1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    ends = [time.perf_counter()]
    for batch in batches:
        index = torch.tensor(batch)
        x, y = x_all[index], y_all[index]
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        loss.item()
        ends.append(time.perf_counter())
    return steady_rate(ends, x_all.shape[1] * len(batches[0]))


def steady_rate(ends: list[float], tokens_per_step: int) -> float:
    """Tokens per second at the median step time (steps after the first two)."""
    steps = [b - a for a, b in itertools.pairwise(ends[2:])]
    return tokens_per_step / statistics.median(steps)


class StepClock(RecordingObserver):
    """The Trainer's step ends, as its batch reports arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.ends = [time.perf_counter()]

    def on_batch_end(self, report: Any) -> None:
        self.ends.append(time.perf_counter())
        super().on_batch_end(report)


def one_epoch(experiment: Experiment) -> tuple[Trainer, float]:
    clock = StepClock()
    trainer = Trainer(experiment, observer=clock)
    trainer.prepare()
    clock.ends = [time.perf_counter()]
    trainer.fit()
    tokens = experiment.data.batch_size * experiment.data.block_size
    return trainer, steady_rate(clock.ends[: len(clock.batches) + 1], tokens)


def tiny_gpt(**train: object) -> Experiment:
    experiment = load_experiment(PRESETS / "tiny-gpt.toml")
    values = {"epochs": 1, "device": "cpu", **train}
    return dataclasses.replace(experiment, train=dataclasses.replace(experiment.train, **values))


@pytest.mark.bench
def test_the_tiny_gpt_preset_trains_as_fast_as_a_plain_nanogpt_loop() -> None:
    torch.set_num_threads(1)
    experiment = tiny_gpt()
    engine_rates, plain_rates, ratios = [], [], []
    for round_ in range(ROUNDS):
        trainer = Trainer(experiment)
        trainer.prepare()  # the model's initial weights, to copy before training changes them
        by_hand = hand_written_copy(trainer.model, trainer.loaders.info.vocab_size or 0, 64)
        del trainer
        runs = ["engine", "plain"] if round_ % 2 == 0 else ["plain", "engine"]
        rates = {}
        for run in runs:
            if run == "engine":
                _, rates[run] = one_epoch(experiment)
            else:
                reference = Trainer(experiment)
                reference.prepare()
                rates[run] = plain_loop_rate(by_hand, reference, experiment.train.lr)
        engine_rates.append(rates["engine"])
        plain_rates.append(rates["plain"])
        ratios.append(rates["engine"] / rates["plain"])
    median = statistics.median(ratios)
    print(
        f"\n[text] tiny-gpt preset, one epoch (42 steps, batch 32 x 64 tokens), CPU, 1 thread, "
        f"{ROUNDS} interleaved rounds:\n  Trainer {statistics.median(engine_rates):,.0f} tokens/s"
        f" | plain nanoGPT loop {statistics.median(plain_rates):,.0f} tokens/s | Trainer / plain "
        f"= {median:.3f} (median of paired ratios, range {min(ratios):.3f}-{max(ratios):.3f}; "
        "target >= 0.95)"
    )
    assert all(ratio > 0 for ratio in ratios)


@pytest.mark.bench
def test_torch_compile_on_and_off_for_the_tiny_gpt() -> None:
    torch.set_num_threads(1)
    _, plain = one_epoch(tiny_gpt())
    started = time.perf_counter()
    try:
        _, compiled = one_epoch(tiny_gpt(compile=True, epochs=2))  # epoch 1 compiles
    except TrainingError as exc:
        print(f"\n[text] train.compile = true: {exc}")
        return
    seconds = time.perf_counter() - started
    print(
        f"\n[text] tiny-gpt, 1 thread: eager {plain:,.0f} tokens/s | train.compile = true "
        f"{compiled:,.0f} tokens/s at its median step ({compiled / plain:.2f}x), "
        f"{seconds:.0f} s for both epochs including compiling"
    )


def encoder_model(causal: bool) -> nn.Module:
    """tiny-gpt with PyTorch's TransformerEncoderLayer in place of its blocks."""
    layers = (
        LayerSpec("Embedding", {"embedding_dim": 64}),
        LayerSpec("PositionalEmbedding"),
        LayerSpec(
            "TransformerEncoderLayer",
            {"nhead": 4, "dim_feedforward": 256, "dropout": 0.0, "causal": causal, "repeat": 2},
        ),
        LayerSpec("LayerNorm"),
        LayerSpec("Linear", {"out_features": "vocab"}),
    )
    spec = ModelSpec(layers, input_dtype="long")
    return build_model(spec, (64,), vocab_size=61).module.eval()


@pytest.mark.bench
def test_transformer_fast_path_and_int8_latency_per_token() -> None:
    torch.set_num_threads(1)
    settings = MeasureSettings(repeats=20, warmup=3)
    batch64 = torch.randint(0, 61, (64, 64))
    rows = []
    for causal in (False, True):
        encoder = encoder_model(causal)
        rounds = [fast_path_options(encoder, batch64[:1], batch64, settings) for _ in range(5)]
        on = [r[0].latency for r in rounds if r[0].latency is not None]
        off = [r[1].latency for r in rounds if r[1].latency is not None]
        on1, off1 = (statistics.median(x.batch1_ms for x in lat) for lat in (on, off))
        on64, off64 = (statistics.median(x.batch64_ms for x in lat) for lat in (on, off))
        rows.append(
            f"  TransformerEncoderLayer x2 (d 64, 4 heads, ff 256, {'causal' if causal else 'no mask'})"
            f", eval + inference_mode, batch 1 / 64: fast path on {on1:.3f} / {on64:.2f} ms, off "
            f"{off1:.3f} / {off64:.2f} ms; off / on = {off1 / on1:.2f}x / {off64 / on64:.2f}x"
        )
        assert all(math.isfinite(x) for x in (on1, off1, on64, off64))
    for name in ("tiny-gpt", "lstm-text"):
        experiment = load_experiment(PRESETS / f"{name}.toml")
        torch.manual_seed(0)
        model = build_experiment_model(experiment).module.eval()
        int8 = quantize_dynamic(copy.deepcopy(model), machine_backend())
        float_ms, int8_ms = per_token_latency([model, int8], list(range(32)), 64, settings)
        rows.append(
            f"  {name}: latency per generated token (batch 1, context up to 64): float "
            f"{float_ms:.3f} ms, dynamic int8 {int8_ms:.3f} ms ({float_ms / int8_ms:.2f}x)"
        )
    print("\n[text] inference, CPU, 1 thread (medians):\n" + "\n".join(rows))
