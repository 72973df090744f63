"""A Backbone layer's controls in the layer editor: its network and weights as text, and what
stays frozen (all / the last N stages train / none) with trainable and frozen parameter counts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.backbone_catalogue import StageInfo, backbone_stages
from workbench.engine.backbones import arch_names
from workbench.engine.layers import ParamSpec
from workbench.engine.model_builder import LayerRow
from workbench.engine.pretrained_start import freeze_choice, freeze_value
from workbench.ui.layer_param_editor import _Field
from workbench.ui.layer_stack_model import show_value

FREEZE_LABELS = (
    ("all", "Frozen: the layers after it train"),
    ("last", "Its last stages train"),
    ("none", "All of it trains"),
)


@functools.lru_cache(maxsize=32)
def cached_stages(arch: str) -> tuple[StageInfo, ...]:
    """`arch`'s stages, built once on the meta device (no weights, a few milliseconds)."""
    return tuple(backbone_stages(arch))


class TextField(_Field):
    """Free text (a network's name completes from torchvision's list)."""

    def __init__(self, param: ParamSpec) -> None:
        self.edit = QLineEdit()
        if param.name == "arch":
            completer = QCompleter(list(arch_names()))
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            self.edit.setCompleter(completer)
        super().__init__(param, self.edit)

    def show(self, given: Any, resolved: Any) -> None:
        value = given if given is not None else resolved
        self.edit.setText("" if value is None else str(value))
        self.edit.setPlaceholderText(f"default: {show_value(self.param.default)}")

    def read(self) -> Any:
        return self.edit.text().strip() or self.param.default

    def on_commit(self, commit: Callable[[], None]) -> None:
        self.edit.editingFinished.connect(commit)


class FreezeField(_Field):
    """`freeze` as a choice and a number of stages, with the counts the plan gives."""

    def __init__(self, param: ParamSpec) -> None:
        box = QWidget()
        self.choice = QComboBox()
        self.choice.setObjectName("freezeChoiceCombo")
        for value, text in FREEZE_LABELS:
            self.choice.addItem(text, value)
        self.stages = QSpinBox()
        self.stages.setObjectName("freezeStagesSpin")
        self.stages.setRange(1, 64)
        self.stages.setSuffix(" stage(s)")
        self.stages.setKeyboardTracking(False)
        self.counts = QLabel()
        self.counts.setObjectName("backboneParameterCounts")
        self.counts.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.choice, 1)
        row.addWidget(self.stages)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.counts)
        super().__init__(param, box)
        self.arch: str | None = None

    def show(self, given: Any, resolved: Any) -> None:
        choice, stages = freeze_choice(given if given is not None else resolved)
        with QSignalBlocker(self.choice), QSignalBlocker(self.stages):
            self.choice.setCurrentIndex(max(self.choice.findData(choice), 0))
            self.stages.setValue(stages)
        self.stages.setEnabled(choice == "last")

    def read(self) -> Any:
        return freeze_value(str(self.choice.currentData()), self.stages.value())

    def on_commit(self, commit: Callable[[], None]) -> None:
        def chosen() -> None:
            self.stages.setEnabled(self.choice.currentData() == "last")
            commit()

        self.choice.activated.connect(lambda *_: chosen())
        self.stages.valueChanged.connect(lambda *_: commit())

    def show_row(self, planned: LayerRow | None) -> None:
        arch = None if planned is None else str(planned.resolved.get("arch", ""))
        stages = _stages_or_none(arch)
        if stages:
            with QSignalBlocker(self.stages):
                self.stages.setMaximum(len(stages))
            self.stages.setToolTip(_stage_list(stages))
        if planned is None:
            self.counts.setText("Parameter counts: once the layer stack builds")
            return
        frozen = planned.parameters - planned.trainable
        self.counts.setText(
            f"{planned.trainable:,} trainable, {frozen:,} frozen "
            f"(of {planned.parameters:,} in {arch})"
        )


def _stages_or_none(arch: str | None) -> tuple[StageInfo, ...]:
    if not arch:
        return ()
    try:
        return cached_stages(arch)
    except (ValueError, KeyError):  # not a torchvision network: the layer's problem says so
        return ()


def _stage_list(stages: tuple[StageInfo, ...]) -> str:
    """Stages from the last: what "last:N" trains."""
    names = [stage.name for stage in stages]
    lines = [
        f"{number}: {', '.join(names[-number:])} ({stage.parameters:,} in {stage.name})"
        for number, stage in enumerate(reversed(stages), start=1)
    ]
    return "The last N stages that train:\n" + "\n".join(lines[:6])


def backbone_field(param: ParamSpec) -> _Field:
    """The control for a Backbone's text parameters."""
    return FreezeField(param) if param.kind == "bool_or_text" else TextField(param)
