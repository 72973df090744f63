"""Downloaded archives on disk: checksum first, then only the expected members, filtered.

A `.tar.gz` found in `data.root` may come from anywhere. It is unpacked only when its MD5 is the
published one (torchvision's own table), and even then member by member: regular files inside
the one expected folder, through tarfile's "data" filter, so no name, link or device can reach
outside `data.root`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import zlib
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from workbench.engine.atomic import atomic_path
from workbench.engine.errors import DatasetError

_CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: Path, expected: str, fix: str) -> None:
    """Raise a DatasetError naming `path` unless its MD5 is `expected`."""
    try:
        actual = md5_of(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read it ({exc.strerror or exc}); {fix}") from None
    if actual != expected:
        raise DatasetError(
            f"{path}: its checksum (MD5 {actual}) is not the published one ({expected}): the "
            f"file is damaged or not the official one, so it was not unpacked; {fix}"
        )


def extract_folder(archive: Path, folder: str, names: Collection[str], destination: Path) -> None:
    """Unpack `folder/NAME` for each NAME in `names` from `archive` into `destination/folder`.

    Any other member (another folder, `..`, an absolute path, a link, a device) refuses the
    whole archive before anything is written. Files are unpacked into a temporary folder next
    to the target and moved into place, so an interrupted unpack leaves no half-written file.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [_checked_member(archive, member, folder, names) for member in tar]
            destination.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".unpack-", dir=destination) as temp:
                tar.extractall(temp, members=members, filter="data")
                _move_into_place(Path(temp) / folder, destination / folder, names)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(f"{archive}: cannot unpack it ({exc}); download it again") from None


def _checked_member(
    archive: Path, member: tarfile.TarInfo, folder: str, names: Collection[str]
) -> tarfile.TarInfo:
    path = PurePosixPath(member.name)
    allowed = (
        (member.isdir() and path == PurePosixPath(folder))
        or (member.isfile() and path.parent == PurePosixPath(folder))
    ) and not path.is_absolute()
    if not allowed:
        raise DatasetError(
            f"{archive}: holds {member.name!r}, which is not a file in {folder}/; the archive "
            "is not the official one and was not unpacked. Delete it and download it again"
        )
    return member


def _move_into_place(unpacked: Path, target: Path, names: Collection[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = unpacked / name
        if source.is_file() and not (target / name).exists():
            os.replace(source, target / name)


def gunzip_limited(packed: Path, target: Path, limit: int) -> None:
    """Unpack a `.gz` next to it, atomically, refusing one that grows past `limit` bytes."""
    try:
        with atomic_path(target) as temp, gzip.open(packed) as source, open(temp, "wb") as out:
            written = 0
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise DatasetError(
                        f"{packed}: unpacks to more than {limit // 1_000_000} MB, more than "
                        "the real file holds; delete it and download it again"
                    )
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{packed}: cannot unpack it ({exc}); download it again") from None
