"""Progress of a long command on stderr, one line per stage, so that stdout holds the result."""

from __future__ import annotations

import sys
from typing import IO


class StageLog:
    """A progress callback `(text, fraction)` that prints each new stage once."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stage = ""
        self.stream = stream

    def __call__(self, text: str, fraction: float) -> None:
        if text != self.stage:
            self.stage = text
            print(f"[{fraction:4.0%}] {text}", file=self.stream or sys.stderr, flush=True)
