"""Cooperative run control: stop, pause/resume and single steps, checked between batches."""

from __future__ import annotations

import threading


class RunControl:
    """Thread-safe switches a caller flips while the trainer runs in another thread."""

    def __init__(self, start_paused: bool = False) -> None:
        self._stop = threading.Event()
        self._condition = threading.Condition()
        self._paused = start_paused
        self._steps_granted = 0

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return self._paused

    def request_stop(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()

    def pause(self) -> None:
        with self._condition:
            self._paused = True

    def resume(self) -> None:
        with self._condition:
            self._paused = False
            self._condition.notify_all()

    def step(self) -> None:
        """Allow exactly one more optimizer step, then stay paused."""
        with self._condition:
            self._paused = True
            self._steps_granted += 1
            self._condition.notify_all()

    def wait_for_next_step(self) -> bool:
        """Block while paused (unless a single step was granted). False means: stop now."""
        with self._condition:
            while self._paused and self._steps_granted == 0 and not self._stop.is_set():
                self._condition.wait(timeout=0.5)
            if self._steps_granted:
                self._steps_granted -= 1
        return not self._stop.is_set()
