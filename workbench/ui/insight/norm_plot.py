"""A log axis for gradient norms that labels only what fits."""

from __future__ import annotations

import math

from workbench.ui.qt import pg


class SparseLogAxis(pg.AxisItem):  # type: ignore[misc]
    """A log axis that labels 1, 2 and 5 times powers of ten (only the powers where space is
    short) instead of every minor tick, which piles up labels on a short plot."""

    LABEL_PIXELS = 18

    def logTickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        numbers = [10 ** float(value) * scale for value in values]
        mantissas = [round(number / 10 ** math.floor(math.log10(number)), 3) for number in numbers]
        keep = {1.0, 2.0, 5.0}
        length = self.geometry().height() if self.orientation in ("left", "right") else 0
        if length and sum(m in keep for m in mantissas) * self.LABEL_PIXELS > length:
            keep = {1.0}
        return [f"{n:g}" if m in keep else "" for n, m in zip(numbers, mantissas, strict=True)]
