"""The window's training thread: the GUI thread's idle OpenMP team freed, and a lower priority."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from workbench.engine import cpu_threads

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux threads")


def on_new_thread(work: Callable[[], Any]) -> Any:
    """WORK's result, run on a fresh thread (its own OpenMP team and nice value)."""
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    thread.start()
    thread.join()
    return results[0]


def native_threads() -> set[str]:
    return set(os.listdir("/proc/self/task"))


def gone(threads: set[str], seconds: float = 5.0) -> bool:
    """Whether THREADS have all ended within SECONDS (a freed worker exits a moment later)."""
    deadline = time.monotonic() + seconds
    while threads & native_threads():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@linux_only
def test_release_frees_the_idle_workers_of_the_calling_threads_openmp_team() -> None:
    if not cpu_threads._libgomps() or torch.get_num_threads() < 2:
        pytest.skip("needs PyTorch on GNU OpenMP with 2 or more threads")

    def work() -> tuple[set[str], bool, bool]:
        before = native_threads()
        torch.ones(4_000_000).mul_(2)  # a parallel operation: this thread's team starts
        workers = native_threads() - before
        released = cpu_threads.release_idle_cpu_threads()
        return workers, released, gone(workers)

    workers, released, workers_gone = on_new_thread(work)
    assert len(workers) >= torch.get_num_threads() - 1
    assert released and workers_gone
    assert on_new_thread(lambda: float(torch.ones(4_000_000).sum())) == 4_000_000  # comes back


@linux_only
def test_a_lowered_thread_runs_five_steps_nicer_and_the_others_keep_theirs() -> None:
    def work() -> tuple[bool, int]:
        lowered = cpu_threads.lower_this_threads_priority()
        return lowered, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    lowered, nice = on_new_thread(work)
    assert lowered and nice == min(main_nice + cpu_threads.TRAINING_NICENESS, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
