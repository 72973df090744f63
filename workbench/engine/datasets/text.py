"""Text as token ids: a UTF-8 file read as characters or bytes and cut into blocks for next-token
training, and a CSV text column for text classification. Errors name the file and the fix."""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from workbench.engine.datasets import tabular
from workbench.engine.datasets.base import LoadedData, OptionSpec, tensor_splits
from workbench.engine.errors import DatasetError, WorkbenchError
from workbench.engine.experiment import DataSpec
from workbench.engine.resources import resources_dir

BUNDLED_TEXT = "sonnets.txt"  # Shakespeare's Sonnets (1609), public domain
TEXT_OPTIONS = (
    OptionSpec(
        "stride",
        int,
        None,
        "tokens between the starts of two training blocks (default: block_size, no overlap; "
        "smaller gives more, overlapping blocks)",
        1,
    ),
)
PADDING = ""  # id 0 of a text column's vocabulary: fills short texts on the left


class OutOfVocabulary(WorkbenchError):
    """Text with characters the vocabulary (the training text's) does not have."""


def bundled_text_path() -> Path:
    return resources_dir() / "texts" / BUNDLED_TEXT


def token_label(token: str) -> str:
    """A token as a list shows it: printable characters as they are, others escaped."""
    if token == PADDING:
        return "<pad>"
    return token if token.isprintable() else repr(token)[1:-1]


@dataclass(frozen=True)
class Vocabulary:
    """Token ids for text: the text's distinct characters in sorted order ("char"), or the 256
    byte values of its UTF-8 encoding ("byte"). `padded` puts a padding token at id 0."""

    kind: str
    tokens: tuple[str, ...]  # char: the characters; byte: latin-1 characters standing for bytes
    padded: bool = False

    @classmethod
    def of(cls, texts: Iterable[str], kind: str, padded: bool = False) -> Vocabulary:
        pad = (PADDING,) if padded else ()
        if kind == "byte":
            return cls(kind, (*pad, *(chr(value) for value in range(256))), padded)
        return cls(kind, (*pad, *sorted(set().union(*(set(text) for text in texts)))), padded)

    @property
    def size(self) -> int:
        return len(self.tokens)

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` that have no id (always none for bytes)."""
        if self.kind == "byte":
            return []
        known = set(self.tokens)
        return sorted({char for char in text if char not in known})

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; OutOfVocabulary names the characters that have none."""
        offset = 1 if self.padded else 0
        if self.kind == "byte":
            return [value + offset for value in text.encode("utf-8")]
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(char) for char in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise OutOfVocabulary(
                f"{shown}{more} {'is' if len(missing) == 1 else 'are'} not in the vocabulary "
                f"(the {self.size} characters of the training text); use only characters "
                "that occur in it"
            )
        index = {token: position for position, token in enumerate(self.tokens)}
        return [index[char] for char in text]

    def decoder(self) -> TokenDecoder:
        return TokenDecoder(self)

    def decode(self, ids: Iterable[int]) -> str:
        decoder = self.decoder()
        return "".join(decoder.piece(token) for token in ids) + decoder.flush()


class TokenDecoder:
    """Turns ids into text one at a time, as they are generated: a byte that starts a
    multi-byte character gives "" until the character is complete."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def piece(self, token: int) -> str:
        text = self.vocabulary.tokens[token] if 0 <= token < self.vocabulary.size else ""
        if self.vocabulary.kind == "byte" and text != PADDING:
            return self._bytes.decode(bytes([ord(text)]))
        return text

    def flush(self) -> str:
        return self._bytes.decode(b"", final=True) if self.vocabulary.kind == "byte" else ""


# --------------------------------------------------------------------------- reading the text


def text_file(path: str | None) -> Path:
    """`data.path`, or the bundled text when it is unset; refuses a missing file or a folder."""
    if not path:
        return bundled_text_path()
    file = Path(path).expanduser()
    if not file.exists():
        raise DatasetError(f"data.path: {file}: file not found; check the path")
    if not file.is_file():
        raise DatasetError(f"data.path: {file}: is a folder; give a UTF-8 text file")
    return file


def read_text(path: str | None) -> tuple[Path, str]:
    file = text_file(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{file}: cannot read the file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{file}: not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start} "
            "cannot be decoded); save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DatasetError(f"{file}: the file is empty; give a text to learn from")
    return file, text.removeprefix("\ufeff")


def text_vocabulary(spec: DataSpec) -> Vocabulary:
    """The vocabulary a run on `spec` uses (what generating from its model needs)."""
    if spec.name == "csv" and spec.text_column is not None:
        return _column_vocabulary(_read_column(spec, ",")[1], spec.tokenizer)
    _, text = read_text(spec.path)
    return Vocabulary.of([text], spec.tokenizer)


# --------------------------------------------------------------------------- next-token blocks


def token_blocks(ids: torch.Tensor, block_size: int, stride: int) -> tuple[torch.Tensor, ...]:
    """Inputs [N, block_size] and their targets, the same tokens shifted by one."""
    count = (len(ids) - block_size - 1) // stride + 1 if len(ids) > block_size else 0
    starts = torch.arange(count) * stride
    offsets = torch.arange(block_size)
    index = starts[:, None] + offsets[None, :]
    return ids[index], ids[index + 1]


def unigram_loss(train: torch.Tensor, val: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats per token) on `val` of a model that ignores context and predicts the
    training text's token frequencies (add-one smoothed): the score a model must beat."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_probs = (counts / counts.sum()).log()
    return float(-log_probs[val].mean())


def text_splits(spec: DataSpec, options: Mapping[str, Any]) -> LoadedData:
    """The text's first (1 - val_split) as training blocks, the rest as validation blocks."""
    file, text = read_text(spec.path)
    vocabulary = Vocabulary.of([text], spec.tokenizer)
    ids = torch.tensor(vocabulary.encode(text), dtype=torch.long)
    block = spec.block_size
    n_val = math.floor(len(ids) * spec.val_split) if spec.val_split > 0 else 0
    train_ids, val_ids = ids[: len(ids) - n_val], ids[len(ids) - n_val :]
    noun = "characters" if spec.tokenizer == "char" else "bytes"
    for part, name in ((train_ids, "training"), (val_ids, "validation")):
        if (name == "training" or n_val) and len(part) < block + 1:
            share = f"{1 - spec.val_split:.0%}" if name == "training" else f"{spec.val_split:.0%}"
            raise DatasetError(
                f"{file}: the {name} part ({share} of the text) has {len(part)} {noun}, but "
                f"blocks of data.block_size = {block} need at least {block + 1}; use a longer "
                f"text or a smaller block_size (at most {max(len(part) - 1, 1)})"
            )
    stride = options.get("stride") or block
    train = TensorDataset(*token_blocks(train_ids, block, stride))
    val = TensorDataset(*token_blocks(val_ids, block, block))
    baseline = unigram_loss(train_ids, val_ids, vocabulary.size) if n_val else None
    names = tuple(token_label(token) for token in vocabulary.tokens)
    return LoadedData(train, val, names, (block,), "long", vocabulary.size, baseline)


# --------------------------------------------------------------------------- a CSV text column


def _read_column(spec: DataSpec, delimiter: str) -> tuple[list[str], list[str]]:
    """The labels and texts of a CSV with a text column (errors name the file and line)."""
    file = tabular.existing_file(spec.path)
    (header_line, header), rows = tabular.read_rows(file, delimiter)
    label_index = tabular.find_label_column(file, header_line, header, spec.label_column)
    column = spec.text_column
    if column not in header:
        raise DatasetError(
            f"{file}, line {header_line}: no column {column!r} in the header "
            f"(columns: {', '.join(header)}); set data.text_column to the column with the texts"
        )
    text_index = header.index(column)
    labels, texts = [], []
    for line, row in rows:
        if len(row) != len(header):
            raise DatasetError(
                f"{file}, line {line}: {len(row)} cells, but the header has {len(header)} "
                "columns; every row needs one cell per column (quote texts with commas)"
            )
        labels.append(tabular.label_text(file, line, header[label_index], row[label_index]))
        texts.append(row[text_index])
    return labels, texts


def _column_vocabulary(texts: Sequence[str], kind: str) -> Vocabulary:
    return Vocabulary.of(texts, kind, padded=True)


def padded_ids(vocabulary: Vocabulary, text: str, length: int) -> list[int]:
    """The text's first `length` token ids, padded on the left (so the last step is the
    text's last token, where an LSTM has read it all)."""
    ids = vocabulary.encode(text)[:length]
    return [0] * (length - len(ids)) + ids


def csv_text_splits(spec: DataSpec, options: Mapping[str, Any], seed: int) -> LoadedData:
    """Text classification: each row's text as `block_size` token ids, its label the class."""
    labels, texts = _read_column(spec, options["delimiter"])
    vocabulary = _column_vocabulary(texts, spec.tokenizer)
    x = torch.tensor(
        [padded_ids(vocabulary, text, spec.block_size) for text in texts], dtype=torch.long
    )
    class_names = tabular.sorted_classes(labels)
    lookup = {name: index for index, name in enumerate(class_names)}
    y = torch.tensor([lookup[label] for label in labels], dtype=torch.long)
    train, val = tensor_splits(x, y, spec.val_split, seed)
    return LoadedData(train, val, class_names, (spec.block_size,), "long", vocabulary.size)
