"""Spec helpers shared by tests."""

from __future__ import annotations

import dataclasses

from workbench.engine.experiment import Experiment


def without_names(experiment: Experiment) -> Experiment:
    """The experiment with its layers unnamed: each prints and saves by position (`0.weight`),
    as files written before layers had names do."""
    layers = tuple(dataclasses.replace(layer, name=None) for layer in experiment.model.layers)
    model = dataclasses.replace(experiment.model, layers=layers)
    return dataclasses.replace(experiment, model=model)
