"""Sequence models built from specs: GPT-style blocks, recurrent layers, their keys, their rules,
causality, attention maps, and the probe and doctor on them."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from workbench.engine.experiment import LayerSpec, ModelSpec
from workbench.engine.insight.attention import attention_maps
from workbench.engine.insight.doctor import diagnose
from workbench.engine.insight.model_probe import probe
from workbench.engine.model_builder import build_model, plan_model
from workbench.engine.reports import EpochReport
from workbench.engine.task import NEXT_TOKEN, task_loss

VOCAB, LENGTH = 23, 12


def layer(type_: str, name: str | None = None, **params: Any) -> LayerSpec:
    return LayerSpec(type_, params, name)


def gpt(width: int = 16, blocks: int = 2, **block: Any) -> ModelSpec:
    return ModelSpec(
        (
            layer("Embedding", "tok", embedding_dim=width),
            layer("PositionalEmbedding", "pos"),
            layer("TransformerBlock", "blocks", heads=4, repeat=blocks, **block),
            layer("LayerNorm", "ln_f"),
            layer("Linear", "head", out_features="vocab"),
        ),
        input_dtype="long",
    )


def lstm_model() -> ModelSpec:
    return ModelSpec(
        (
            layer("Embedding", embedding_dim=8),
            layer("LSTM", hidden_size=16),
            layer("Linear", out_features="vocab"),
        ),
        input_dtype="long",
    )


def encoder_model() -> ModelSpec:
    return ModelSpec(
        (
            layer("Embedding", embedding_dim=16),
            layer("TransformerEncoderLayer", nhead=4, dim_feedforward=32, dropout=0.0, causal=True),
            layer("Linear", out_features="vocab"),
        ),
        input_dtype="long",
    )


def built(spec: ModelSpec) -> nn.Module:
    torch.manual_seed(0)
    return build_model(spec, (LENGTH,), vocab_size=VOCAB).module.eval()


def problem(spec: ModelSpec, shape: tuple[int, ...] = (LENGTH,), vocab: int | None = VOCAB) -> str:
    plan = plan_model(spec, shape, vocab_size=vocab)
    assert plan.problem is not None
    return str(plan.problem)


# --------------------------------------------------------------------------- structure


def test_a_tiny_gpt_has_nanogpt_style_keys_and_one_score_per_token_and_position() -> None:
    result = build_model(gpt(), (LENGTH,), vocab_size=VOCAB)
    keys = list(result.module.state_dict())
    assert keys[:3] == ["tok.weight", "pos.weight", "blocks.0.ln_1.weight"]
    assert "blocks.1.attn.c_attn.weight" in keys and "blocks.1.mlp.c_proj.bias" in keys
    assert result.output_shape == (LENGTH, VOCAB)
    assert result.rows[0].resolved["num_embeddings"] == VOCAB  # from the vocabulary
    assert result.rows[1].resolved["num_positions"] == LENGTH  # from the block size
    blocks = result.rows[2]
    assert blocks.repeat == 2 and blocks.parameters == 2 * 3_280  # each copy counted
    assert "TransformerBlock ×2" in result.table()
    x = torch.randint(0, VOCAB, (3, LENGTH))
    assert result.module(x).shape == (3, LENGTH, VOCAB)


def test_repeated_blocks_are_initialised_in_turn_like_hand_written_code() -> None:
    from workbench.engine.sequence_layers import PositionalEmbedding, TransformerBlock

    torch.manual_seed(3)
    ours = build_model(gpt(blocks=2), (LENGTH,), vocab_size=VOCAB).module
    torch.manual_seed(3)
    theirs = nn.Sequential(
        nn.Embedding(VOCAB, 16),
        PositionalEmbedding(LENGTH, 16),
        nn.Sequential(TransformerBlock(16), TransformerBlock(16)),
        nn.LayerNorm(16),
        nn.Linear(16, VOCAB),
    )
    for mine, other in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(mine, other)


def test_an_lstm_chain_takes_the_output_sequence_and_keeps_plain_lstm_keys() -> None:
    model = built(lstm_model())
    assert isinstance(model.get_submodule("1"), nn.LSTM)  # torch's own: dynamic int8 exists
    assert list(model.state_dict())[1] == "1.weight_ih_l0"
    assert model(torch.randint(0, VOCAB, (2, LENGTH))).shape == (2, LENGTH, VOCAB)
    assert "(1): LSTM(8, 16, batch_first=True)" in str(model)


def test_an_lstm_classifier_reads_the_last_step() -> None:
    spec = ModelSpec(
        (
            layer("Embedding", embedding_dim=8),
            layer("GRU", hidden_size=6, bidirectional=True),
            layer("LastStep"),
            layer("Linear", out_features=3),
        ),
        input_dtype="long",
    )
    result = build_model(spec, (LENGTH,), vocab_size=VOCAB)
    assert [row.output_shape for row in result.rows] == [(LENGTH, 8), (LENGTH, 12), (12,), (3,)]
    assert result.module(torch.randint(0, VOCAB, (4, LENGTH))).shape == (4, 3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            ModelSpec((layer("Embedding", embedding_dim=8),)),
            "layer 0 (Embedding) receives float32 values, but it needs token ids (long)",
        ),
        (
            ModelSpec((layer("Linear", out_features=4),), input_dtype="long"),
            "layer 0 (Linear) receives long values (token ids), but it needs float32; token "
            "ids go through an embedding layer first",
        ),
        (
            dataclasses.replace(
                gpt(), layers=(*gpt().layers[:2], layer("TransformerBlock", heads=5))
            ),
            "layer 2 (TransformerBlock) receives [12, 16]: heads = 5 does not divide the width "
            "16; use a divisor of it, e.g. heads = 16",
        ),
        (
            ModelSpec(
                (layer("Embedding", embedding_dim=8), layer("LSTM", hidden_size=8, dropout=0.2)),
                input_dtype="long",
            ),
            "layer 1 (LSTM): dropout = 0.2 drops between stacked layers, and num_layers = 1 "
            "stacks none; raise num_layers, or put a Dropout layer after it",
        ),
        (
            ModelSpec(
                (layer("Embedding", embedding_dim=8), layer("LSTM", hidden_size=8, repeat=2)),
                input_dtype="long",
            ),
            "layer 1 (LSTM): repeat stacks layers that give one tensor; for a deeper LSTM set "
            "num_layers = 2 instead",
        ),
        (
            ModelSpec(
                (layer("Embedding", embedding_dim=8), layer("Linear", out_features=4, repeat=2)),
                input_dtype="long",
            ),
            "layer 1 (Linear): repeat = 2 feeds each copy the one before, but it turns [12, 8] "
            "into [12, 4]; remove repeat, or use a layer that keeps the shape",
        ),
        (
            ModelSpec(
                (layer("Embedding", num_embeddings=10, embedding_dim=8),), input_dtype="long"
            ),
            "layer 0 (Embedding): num_embeddings = 10, but the vocabulary has 23 tokens; remove "
            "num_embeddings to take it from the vocabulary",
        ),
    ],
)
def test_sequence_mistakes_are_refused_with_the_fix(spec: ModelSpec, message: str) -> None:
    assert problem(spec).startswith(message), problem(spec)


def test_vocabulary_sizes_need_text_data() -> None:
    message = problem(gpt(), vocab=None)
    assert message == (
        "layer 0 (Embedding): num_embeddings follows the vocabulary, but the data has none; use "
        'text data (data.name = "text", or csv with data.text_column), or give a number'
    )
    spec = ModelSpec((layer("Linear", out_features="vocab"),))
    assert "out_features follows the vocabulary, but the data has none" in problem(spec, (4,), None)


def test_a_linear_after_a_sequence_acts_per_position_only_in_a_token_model() -> None:
    assert plan_model(gpt(), (LENGTH,), vocab_size=VOCAB).ok
    float_sequence = ModelSpec((layer("Linear", out_features=3),))
    assert "add a Flatten before it, or set in_features = 8" in problem(float_sequence, (4, 8))


# --------------------------------------------------------------------------- causality


@pytest.mark.parametrize("make", [gpt, lstm_model, encoder_model], ids=["gpt", "lstm", "encoder"])
def test_changing_token_t_leaves_the_logits_before_t_unchanged(make: Any) -> None:
    model = built(make())
    torch.manual_seed(1)
    x = torch.randint(0, VOCAB, (1, LENGTH))
    t = 7
    changed = x.clone()
    changed[0, t] = (x[0, t] + 1) % VOCAB
    with torch.inference_mode():
        before, after = model(x), model(changed)
    torch.testing.assert_close(before[:, :t], after[:, :t], rtol=0, atol=1e-6)
    assert not torch.allclose(before[:, t:], after[:, t:])  # the change is seen from t on


def test_a_non_causal_block_sees_the_future() -> None:
    model = built(gpt(causal=False))
    x = torch.randint(0, VOCAB, (1, LENGTH))
    changed = x.clone()
    changed[0, -1] = (x[0, -1] + 1) % VOCAB
    with torch.inference_mode():
        assert not torch.allclose(model(x)[:, 0], model(changed)[:, 0])


# --------------------------------------------------------------------------- insight


def test_attention_maps_per_layer_and_head_are_causal_probabilities() -> None:
    maps = attention_maps(built(gpt()), list(range(8)))
    assert [m.layer for m in maps] == ["blocks.0.attn", "blocks.1.attn"]
    weights = maps[0].weights
    assert weights.shape == (4, 8, 8) and maps[0].heads == 4
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(np.triu(weights, k=1) == 0)  # no position looks ahead


def test_attention_maps_of_pytorchs_encoder_layer() -> None:
    maps = attention_maps(built(encoder_model()), [1, 2, 3, 4, 5])
    assert [m.layer for m in maps] == ["1.self_attn"]
    assert maps[0].weights.shape == (4, 5, 5)
    assert np.all(np.triu(maps[0].weights, k=1) < 1e-7)


@pytest.mark.parametrize("make", [gpt, lstm_model], ids=["gpt", "lstm"])
def test_the_probe_and_the_doctor_work_on_sequence_models(make: Any) -> None:
    model = built(make())
    x = torch.randint(0, VOCAB, (4, LENGTH))
    y = torch.randint(0, VOCAB, (4, LENGTH))
    snapshot = probe(model, 1, (x, y), task_loss("cross_entropy", NEXT_TOKEN))
    assert snapshot.loss is not None and snapshot.loss > 0
    assert snapshot.total_grad_norm is not None and snapshot.total_grad_norm > 0
    assert all(stats.grad_norm is not None for stats in snapshot.parameters)
    history = [
        EpochReport(e, 3, 3.0, None, 3.0, None, 1e-3, 100.0, 1.0, val_perplexity=20.0)
        for e in (1, 2, 3)
    ]
    codes = [finding.code for finding in diagnose(history, snapshot)]
    assert "not_learning" in codes  # a flat loss is seen on a text model too
