"""Edits are pure: each returns a new state_dict, refuses collisions and names the keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.engine.checkpoints import (
    Edit,
    add_prefix,
    apply_edits,
    cast_floating,
    delete_keys,
    detect_wrapper_prefixes,
    preview_regex_rename,
    rename_module,
    rename_regex,
    rename_substring,
    strip_compile_prefix,
    strip_model_prefix,
    strip_module_prefix,
    strip_prefix,
    strip_wrapper_prefixes,
)
from workbench.engine.errors import CheckpointError


def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 2, 3))
    model.add_module("conv10", nn.Conv2d(2, 2, 1))
    model.add_module("bn", nn.BatchNorm2d(2))
    return dict(model.state_dict())


def test_rename_returns_a_new_dict_and_leaves_the_old_one() -> None:
    before = state()
    keys_before = list(before)
    after = rename_substring(before, "bn", "norm")
    assert list(before) == keys_before
    assert "norm.running_mean" in after and "bn.running_mean" not in after
    assert after["norm.weight"] is before["bn.weight"]  # untouched tensors are shared
    assert list(after)[:4] == keys_before[:4]  # order kept


def test_substring_rename_hits_every_occurrence_but_module_rename_is_exact() -> None:
    substring = rename_substring(state(), "conv1", "embed_1")
    assert "embed_10.weight" in substring  # substring semantics, as documented
    exact = rename_module(state(), "conv1", "embed_1")
    assert "embed_1.weight" in exact and "conv10.weight" in exact


def test_regex_preview_lists_changes() -> None:
    changes = preview_regex_rename(state(), r"^conv(\d+)\.", r"layer\1.")
    assert changes == [
        ("conv1.weight", "layer1.weight"),
        ("conv1.bias", "layer1.bias"),
        ("conv10.weight", "layer10.weight"),
        ("conv10.bias", "layer10.bias"),
    ]
    assert list(rename_regex(state(), r"^conv(\d+)\.", r"layer\1."))[:2] == [
        "layer1.weight",
        "layer1.bias",
    ]


def test_regex_rename_that_collides_is_refused_naming_the_keys() -> None:
    with pytest.raises(CheckpointError) as caught:
        preview_regex_rename(state(), r"conv\d+", "conv")
    message = str(caught.value)
    assert "'conv1.weight', 'conv10.weight' would all become 'conv.weight'" in message


def test_rename_onto_an_existing_key_is_refused() -> None:
    with pytest.raises(CheckpointError, match=r"'conv10\.bias'.*already exists"):
        preview_regex_rename(state(), r"^conv1\.bias$", "conv10.bias")


def test_regex_errors_are_user_errors() -> None:
    with pytest.raises(CheckpointError, match="unterminated"):
        preview_regex_rename(state(), "conv(", "x")
    with pytest.raises(CheckpointError, match="changes no key"):
        preview_regex_rename(state(), "^fc", "x")
    with pytest.raises(CheckpointError, match="invalid group reference"):
        preview_regex_rename(state(), "conv", r"\2")


def test_rename_of_absent_text_suggests_close_names() -> None:
    with pytest.raises(CheckpointError, match=r"no key contains 'conv2'.*Did you mean"):
        rename_substring(state(), "conv2", "x")


def test_prefix_helpers() -> None:
    base = state()
    ddp = add_prefix(base, "module.")
    assert list(strip_module_prefix(ddp)) == list(base)
    assert list(strip_compile_prefix(add_prefix(base, "_orig_mod."))) == list(base)
    assert list(strip_model_prefix(add_prefix(base, "model."))) == list(base)
    with pytest.raises(CheckpointError, match=r"no key starts with 'module\.'"):
        strip_prefix(base, "module.")


@pytest.mark.parametrize(
    "prefixes",
    [[], ["module."], ["_orig_mod."], ["model."], ["_orig_mod.", "module."]],
)
def test_detect_and_strip_wrapper_prefixes(prefixes: list[str]) -> None:
    wrapped = state()
    for prefix in reversed(prefixes):
        wrapped = add_prefix(wrapped, prefix)
    assert detect_wrapper_prefixes(wrapped) == prefixes
    assert list(strip_wrapper_prefixes(wrapped)) == list(state())


def test_prefix_on_only_some_keys_is_not_a_wrapper() -> None:
    mixed = {"module.a": torch.ones(1), "b": torch.ones(1)}
    assert detect_wrapper_prefixes(mixed) == []


def test_strip_wrappers_makes_a_ddp_file_load_strictly() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ddp_file = {f"module.{k}": v for k, v in model.state_dict().items()}
    nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).load_state_dict(
        strip_wrapper_prefixes(ddp_file), strict=True
    )


def test_delete_keys_and_whole_modules() -> None:
    after = delete_keys(state(), ["conv1.bias", "bn"])
    assert list(after) == ["conv1.weight", "conv10.weight", "conv10.bias"]
    with pytest.raises(CheckpointError, match="no key or module 'conv3'"):
        delete_keys(state(), ["conv3"])


def test_cast_changes_floating_tensors_only() -> None:
    before = state()
    after = cast_floating(before, "bfloat16")
    assert after["conv1.weight"].dtype == torch.bfloat16
    assert after["bn.num_batches_tracked"].dtype == torch.int64
    assert after["bn.num_batches_tracked"] is before["bn.num_batches_tracked"]
    assert before["conv1.weight"].dtype == torch.float32
    with pytest.raises(CheckpointError, match="unknown dtype 'int8'"):
        cast_floating(before, "int8")


def test_edits_apply_in_order_and_report_changes() -> None:
    edits = [
        Edit("add_prefix", "module."),
        Edit("strip_wrappers"),
        Edit("rename", "conv1=stem"),
        Edit("drop", "bn"),
        Edit("cast", "float16"),
    ]
    result, outcomes = apply_edits(state(), edits)
    assert list(result) == ["stem.weight", "stem.bias", "stem0.weight", "stem0.bias"]
    assert [o.summary() for o in outcomes] == [
        "add prefix 'module.': 9 key(s) renamed",
        "strip wrapper prefixes: 9 key(s) renamed",
        "rename 'conv1' -> 'stem': 4 key(s) renamed",
        "drop 'bn': 5 key(s) deleted",
        "cast 'float16': 4 tensor(s) cast",
    ]


def test_edit_argument_is_checked() -> None:
    with pytest.raises(CheckpointError, match="--rename OLD=NEW"):
        Edit("rename", "conv1")
    assert Edit("regex", "(?=x)a=b").pair == ("(?=x)a", "b")
