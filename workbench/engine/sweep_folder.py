"""Read a sweep folder back (what `workbench sweep --out` or the window wrote) to show its trials."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.errors import WorkbenchError
from workbench.engine.experiment import frozen_mapping, parse_experiment
from workbench.engine.overrides import with_overrides
from workbench.engine.sweep import SWEEP_FORMAT, TrialResult, result_from_state
from workbench.engine.sweep_plan import SweepError, Trial


@dataclass(frozen=True)
class SweepFolder:
    """A sweep as its folder holds it: the swept keys, the metric, every planned trial."""

    folder: Path
    keys: tuple[str, ...]
    metric: str
    results: tuple[TrialResult, ...]


def read_sweep_folder(folder: str | Path) -> SweepFolder:
    """The trials of `folder/sweep.json`, finished or not; SweepError naming the file if unreadable."""
    path = Path(folder) / "sweep.json"
    advice = "pick a folder that `workbench sweep --out` or the Experiments tab wrote"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepError(f"{path}: cannot be read ({exc}); {advice}") from None
    if not isinstance(state, dict) or state.get("format") != SWEEP_FORMAT:
        raise SweepError(f"{path}: not a Torch Workbench sweep file; {advice}")
    try:
        return _sweep(Path(folder), path, state)
    except WorkbenchError as exc:
        raise SweepError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SweepError(f"{path}: damaged ({type(exc).__name__}: {exc}); {advice}") from None


def _sweep(folder: Path, path: Path, state: dict[str, Any]) -> SweepFolder:
    experiment = parse_experiment(str(state["experiment"]), source=str(path))
    saved: dict[int, dict[str, Any]] = {int(item["trial"]): item for item in state["trials"]}
    results = []
    for number, values in enumerate(state["planned"], start=1):
        trial = Trial(number, frozen_mapping(dict(values)),
                      with_overrides(experiment, dict(values), source=str(path)))  # fmt: skip
        results.append(
            result_from_state(trial, saved[number]) if number in saved else TrialResult(trial)
        )
    return SweepFolder(folder, tuple(state["keys"]), str(state["metric"]), tuple(results))
