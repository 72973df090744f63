"""Hostile dataset files in data.root: archives, pickles and gzip bombs never escape or run."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine.test_datasets_files import _fake_cifar
from workbench.cli import main
from workbench.engine.datasets import load_splits, make_loaders
from workbench.engine.datasets.archives import md5_of
from workbench.engine.datasets.vision import CIFAR10_FILES, IDX_SIZE_LIMIT
from workbench.engine.errors import DatasetError
from workbench.engine.experiment import DataSpec

FOLDER = "cifar-10-batches-py"


def _add_file(tar: tarfile.TarFile, name: str, data: bytes = b"payload") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def _official_members(tar: tarfile.TarFile, source: Path) -> None:
    for name in CIFAR10_FILES:
        tar.add(source / FOLDER / name, arcname=f"{FOLDER}/{name}")


Attack = Callable[[tarfile.TarFile, Path], None]
ATTACKS: dict[str, Attack] = {
    "dot-dot": lambda tar, outside: _add_file(tar, "../../outside/marker"),
    "dot-dot-inside-folder": lambda tar, outside: _add_file(tar, f"{FOLDER}/../../outside/marker"),
    "absolute": lambda tar, outside: _add_file(tar, str(outside / "marker")),
    "symlink-out": lambda tar, outside: _add_link(
        tar, f"{FOLDER}/readme.html", str(outside / "marker"), tarfile.SYMTYPE
    ),
    "hardlink-out": lambda tar, outside: _add_link(
        tar, f"{FOLDER}/readme.html", str(outside / "marker"), tarfile.LNKTYPE
    ),
    "other-folder": lambda tar, outside: _add_file(tar, "site-packages/evil.pth"),
}


def _hostile_root(tmp_path: Path, attack: Attack) -> tuple[Path, Path]:
    """data.root holding a cifar-10-python.tar.gz with real-looking batches plus the attack."""
    source, root, outside = tmp_path / "source", tmp_path / "data" / "root", tmp_path / "outside"
    _fake_cifar(source)
    root.mkdir(parents=True)
    outside.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        attack(tar, outside)
        _official_members(tar, source)
    return root, outside


def _nothing_escaped(root: Path, outside: Path) -> None:
    assert not (outside / "marker").exists()
    assert list(outside.iterdir()) == []
    assert sorted(path.name for path in root.parent.iterdir()) == ["root"]
    assert sorted(path.name for path in root.iterdir()) == ["cifar-10-python.tar.gz"]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_hostile_archive_fails_the_checksum_and_is_never_unpacked(
    tmp_path: Path, attack: str
) -> None:
    root, outside = _hostile_root(tmp_path, ATTACKS[attack])
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="cifar10", root=str(root)), seed=0)
    message = str(caught.value)
    assert message.startswith(f"{root / 'cifar-10-python.tar.gz'}: its checksum (MD5 ")
    assert "is not the published one (c58f30108f718f92721af3b95e74349a)" in message
    _nothing_escaped(root, outside)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_even_with_a_matching_checksum_no_member_leaves_the_folder(
    tmp_path: Path, attack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were the MD5 ever matched, the member check still refuses."""
    import torchvision.datasets

    root, outside = _hostile_root(tmp_path, ATTACKS[attack])
    archive = root / "cifar-10-python.tar.gz"
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", md5_of(archive))
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="cifar10", root=str(root)), seed=0)
    assert str(caught.value).startswith(f"{archive}: holds ")
    assert "is not the official one and was not unpacked" in str(caught.value)
    _nothing_escaped(root, outside)


def test_the_official_layout_unpacks_into_data_root_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets
    import torchvision.datasets.cifar as tv_cifar

    root, outside = _hostile_root(tmp_path, lambda tar, out: None)
    archive = root / "cifar-10-python.tar.gz"
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", md5_of(archive))
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    loaders = make_loaders(DataSpec(name="cifar10", root=str(root)), seed=0)
    assert (loaders.info.train_size, loaders.info.val_size) == (10, 2)
    assert sorted(path.name for path in root.iterdir()) == [FOLDER, "cifar-10-python.tar.gz"]
    assert sorted(path.name for path in (root / FOLDER).iterdir()) == sorted(CIFAR10_FILES)
    assert list(outside.iterdir()) == []


class _Payload:
    """Unpickling this writes a marker file: proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.write_text, (self.marker, "ran"))


def test_a_hostile_batch_pickle_is_never_unpickled(tmp_path: Path) -> None:
    root, marker = tmp_path / "root", tmp_path / "marker"
    _fake_cifar(root)
    for name in CIFAR10_FILES:
        (root / FOLDER / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(DatasetError, match="do not match the official checksums"):
        load_splits(DataSpec(name="cifar10", root=str(root)), seed=0)
    assert not marker.exists()


def test_a_gzip_bomb_in_place_of_an_idx_file_stops_at_the_limit(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    bomb = gzip.compress(b"\0" * (IDX_SIZE_LIMIT + 1_000_000), compresslevel=1)
    assert len(bomb) < 1_000_000
    (raw / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    with pytest.raises(DatasetError) as caught:
        load_splits(DataSpec(name="mnist", root=str(tmp_path)), seed=0)
    assert str(caught.value).startswith(f"{raw / 'train-images-idx3-ubyte.gz'}: unpacks to more")
    assert sorted(path.name for path in raw.iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_a_truncated_gzip_is_named(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"x" * 1000)[:20])
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.gz: cannot unpack it"):
        load_splits(DataSpec(name="mnist", root=str(tmp_path)), seed=0)


def test_training_on_a_hostile_archive_exits_2_and_writes_nothing_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, outside = _hostile_root(tmp_path, ATTACKS["dot-dot"])
    experiment = tmp_path / "cifar.toml"
    experiment.write_text(
        f'[model]\nlayers = [{{ type = "Flatten" }}, {{ type = "Linear", out_features = 10 }}]\n'
        f'[data]\nname = "cifar10"\nroot = "{root}"\n'
    )
    assert main(["train", str(experiment), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is not the published one" in err and "unexpected" not in err
    assert not (outside / "marker").exists()
    assert not (tmp_path / "run").exists()
