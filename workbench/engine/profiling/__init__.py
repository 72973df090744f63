"""Layer-by-layer profile of a training step: time, FLOPs, memory, and measured what-ifs."""

from workbench.engine.profiling.errors import ProfileCancelled, ProfileError
from workbench.engine.profiling.profiler import (
    BatchFeed,
    ProfileOptions,
    experiment_setup,
    experiment_what_ifs,
    profile_experiment,
    profile_model,
)
from workbench.engine.profiling.report import (
    LayerProfile,
    MemoryFigures,
    ProfileReport,
    StepSplit,
    WhatIf,
)
from workbench.engine.profiling.train_step import TrainingSetup
from workbench.engine.profiling.what_ifs import WhatIfSettings, compile_problem

__all__ = [
    "BatchFeed",
    "LayerProfile",
    "MemoryFigures",
    "ProfileCancelled",
    "ProfileError",
    "ProfileOptions",
    "ProfileReport",
    "StepSplit",
    "TrainingSetup",
    "WhatIf",
    "WhatIfSettings",
    "compile_problem",
    "experiment_setup",
    "experiment_what_ifs",
    "profile_experiment",
    "profile_model",
]
