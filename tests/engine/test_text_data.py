"""Text data: a file as character or byte ids cut into next-token blocks, a CSV text column for
classification, the vocabulary and its decoder, and every bad text named with its fix."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from workbench.engine.datasets import describe_dataset, load_splits, make_loaders
from workbench.engine.datasets.text import (
    OutOfVocabulary,
    Vocabulary,
    bundled_text_path,
    text_vocabulary,
    unigram_loss,
)
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec, parse_experiment


def text_spec(tmp_path: Path, text: str, **values: object) -> DataSpec:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    settings: dict[str, object] = {"block_size": 4, "val_split": 0.25, **values}
    return DataSpec(name="text", path=str(path), **settings)  # type: ignore[arg-type]


def test_the_text_becomes_blocks_whose_targets_are_the_next_characters(tmp_path: Path) -> None:
    spec = text_spec(tmp_path, "abcabcabcabcabcabcab")  # 20 characters: 15 train, 5 validation
    splits = load_splits(spec, seed=0)
    info = splits.info
    assert (info.kind, info.input_shape, info.input_dtype, info.vocab_size) == (
        "text",
        (4,),
        "long",
        3,
    )
    assert info.class_names == ("a", "b", "c")
    x, y = splits.train.tensors  # type: ignore[attr-defined]
    assert x.tolist() == [[0, 1, 2, 0], [1, 2, 0, 1], [2, 0, 1, 2]]  # abca bcab cabc
    assert torch.equal(y[:, :-1], x[:, 1:]) and y[0, -1] == 1
    val_x, val_y = splits.val.tensors  # type: ignore[attr-defined]
    assert val_x.tolist() == [[0, 1, 2, 0]] and val_y.tolist() == [[1, 2, 0, 1]]  # "abcab"


def test_a_stride_overlaps_the_training_blocks(tmp_path: Path) -> None:
    spec = text_spec(tmp_path, "abcdefghij" * 2, options={"stride": 1})
    assert len(load_splits(spec, seed=0).train) == 15 - 4  # every start that leaves a target


def test_describe_and_loaders_give_token_batches(tmp_path: Path) -> None:
    spec = text_spec(tmp_path, "hello world, " * 20, batch_size=3)
    info = describe_dataset(spec)
    assert info.vocab_size == len(set("hello world, ")) and info.baseline_loss is not None
    loaders = make_loaders(spec, seed=1)
    assert loaders.fast_path
    x, y = next(iter(loaders.train))
    assert x.dtype == torch.long and x.shape == (3, 4) and y.shape == (3, 4)


def test_ddp_ranks_get_disjoint_shards_of_the_blocks(tmp_path: Path) -> None:
    text = "abcdefghijklmnopqrstuvwxyz" * 4 + "ab"  # 26 blocks: an even split, no padding
    spec = text_spec(tmp_path, text, batch_size=2, val_split=0.0)
    shards = [make_loaders(spec, seed=1, rank=r, world_size=2).train for r in (0, 1)]
    orders = [shard.sample_order(1) for shard in shards]
    assert not set(orders[0]) & set(orders[1])
    assert len(orders[0]) + len(orders[1]) == len(load_splits(spec, seed=1).train)


def test_the_unigram_baseline_is_the_cross_entropy_of_token_frequencies() -> None:
    train = torch.tensor([0, 0, 0, 1])
    smoothed = torch.tensor([4.0, 2.0]) / 6.0  # add-one counts
    expected = -(smoothed.log()[torch.tensor([0, 1])]).mean()
    assert unigram_loss(train, torch.tensor([0, 1]), 2) == pytest.approx(float(expected))


def test_the_bundled_text_is_the_default(tmp_path: Path) -> None:
    spec = DataSpec(name="text", block_size=64, val_split=0.1)
    info = describe_dataset(spec)
    assert bundled_text_path().name == "sonnets.txt"
    assert info.vocab_size == 61 and info.train_size > 1000
    assert info.baseline_loss == pytest.approx(3.11, abs=0.01)


# --------------------------------------------------------------------------- vocabulary


def test_byte_tokens_cover_any_text_and_decode_streamed_pieces() -> None:
    vocabulary = Vocabulary.of([], "byte")
    ids = vocabulary.encode("é!")
    assert vocabulary.size == 256 and ids == [0xC3, 0xA9, 0x21]
    decoder = vocabulary.decoder()
    pieces = [decoder.piece(token) for token in ids]
    assert pieces == ["", "é", "!"]  # a character's first byte waits for its second
    assert vocabulary.decode(ids) == "é!"


def test_characters_outside_the_vocabulary_are_named() -> None:
    vocabulary = Vocabulary.of(["abc"], "char")
    with pytest.raises(OutOfVocabulary) as caught:
        vocabulary.encode("abZ€")
    assert str(caught.value) == (
        "'Z', '€' are not in the vocabulary (the 3 characters of the training text); use only "
        "characters that occur in it"
    )


def test_the_vocabulary_a_run_uses_is_read_again_from_its_text(tmp_path: Path) -> None:
    spec = text_spec(tmp_path, "to be or not to be")
    assert text_vocabulary(spec).tokens == tuple(sorted(set("to be or not to be")))


# --------------------------------------------------------------------------- bad text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeabc", "not UTF-8 text (byte 0xff at position 0 cannot be decoded); save the "
         "file as UTF-8"),
        (b"  \n ", "the file is empty; give a text to learn from"),
        (b"abcdefghij", "the training part (75% of the text) has 8 characters, but blocks of "
         "data.block_size = 8 need at least 9; use a longer text or a smaller block_size (at "
         "most 7)"),
    ],
)  # fmt: skip
def test_bad_text_files_are_named_with_the_fix(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    spec = DataSpec(name="text", path=str(path), block_size=8, val_split=0.25)
    with pytest.raises(DatasetError) as caught:
        load_splits(spec, seed=0)
    assert str(caught.value) == f"{path}: {message}"


def test_a_validation_part_shorter_than_a_block_is_refused(tmp_path: Path) -> None:
    spec = text_spec(tmp_path, "abcdefghijklmnopqrst", block_size=6, val_split=0.2)
    with pytest.raises(DatasetError, match=r"the validation part \(20% of the text\) has 4 "):
        load_splits(spec, seed=0)


def test_a_missing_text_file_and_a_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"data.path: .*nope\.txt: file not found"):
        load_splits(DataSpec(name="text", path=str(tmp_path / "nope.txt")), seed=0)
    with pytest.raises(DatasetError, match="is a folder; give a UTF-8 text file"):
        load_splits(DataSpec(name="text", path=str(tmp_path)), seed=0)


def test_the_text_keys_are_checked_when_the_file_is_read() -> None:
    with pytest.raises(Exception, match=r"data\.tokenizer: 'word' is not allowed; choose one of"):
        parse_experiment('[data]\nname = "text"\ntokenizer = "word"')
    with pytest.raises(Exception, match=r"data\.block_size: 0 is out of range"):
        parse_experiment('[data]\nname = "text"\nblock_size = 0')


# --------------------------------------------------------------------------- a CSV text column


def test_a_csv_text_column_becomes_left_padded_ids_with_labels(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"good, fine",pos\nbad,neg\nok,pos\n', encoding="utf-8")
    spec = DataSpec(name="csv", path=str(path), text_column="text", block_size=5, val_split=0.0)
    splits = load_splits(spec, seed=0)
    x, y = splits.train.tensors  # type: ignore[attr-defined]
    vocabulary = Vocabulary.of(["good, fine", "bad", "ok"], "char", padded=True)
    assert splits.info.vocab_size == vocabulary.size and splits.info.input_dtype == "long"
    assert x[1].tolist() == [0, 0, *vocabulary.encode("bad")]  # padded on the left
    assert x[0].tolist() == vocabulary.encode("good,")  # cut to block_size
    assert splits.info.class_names == ("neg", "pos") and y.tolist() == [1, 0, 1]


def test_a_missing_text_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("review,label\ngood,pos\nbad,neg\n", encoding="utf-8")
    spec = DataSpec(name="csv", path=str(path), text_column="text", val_split=0.0)
    with pytest.raises(DatasetError) as caught:
        load_splits(spec, seed=0)
    assert str(caught.value) == (
        f"{path}, line 1: no column 'text' in the header (columns: review, label); set "
        "data.text_column to the column with the texts"
    )


def test_perplexity_and_bits_are_the_loss_seen_two_ways() -> None:
    from workbench.engine.task import bits_per_token, perplexity

    assert perplexity(math.log(8.0)) == pytest.approx(8.0)
    assert bits_per_token(math.log(8.0)) == pytest.approx(3.0)
    assert perplexity(None) is None and bits_per_token(float("nan")) is None
