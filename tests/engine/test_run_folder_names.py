"""Run folders of the window: made when named, so runs started in the same second never share."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

from workbench.engine.run_files import claim_run_folder, earlier_run_files

SECOND = datetime.datetime(2026, 12, 3, 18, 0, 5)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = claim_run_folder(runs, "digits-mlp", SECOND)
    second = claim_run_folder(runs, "digits-mlp", SECOND)
    third = claim_run_folder(runs, "digits-mlp", SECOND)
    assert [first.name, second.name, third.name] == [
        "digits-mlp-20261203-180005",
        "digits-mlp-20261203-180005-2",
        "digits-mlp-20261203-180005-3",
    ]
    assert all(folder.is_dir() and earlier_run_files(folder) == [] for folder in (first, second))


def test_two_windows_claiming_at_once_never_share_a_folder(tmp_path: Path) -> None:
    claimed: list[Path] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        claimed.append(claim_run_folder(tmp_path, "spirals", SECOND))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(claimed)) == 8
