"""Preset names as shortcuts for experiment files, in the source tree and inside a bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from workbench.engine.errors import ExperimentError
from workbench.engine.presets import preset_names, presets_dir, resolve_experiment_path


def test_presets_dir_is_the_source_trees_in_a_checkout(presets: Path) -> None:
    assert presets_dir() == presets
    assert "toy-mlp" in preset_names()


@pytest.mark.parametrize("name", ["toy-mlp", "toy-mlp.toml"])
def test_a_preset_name_resolves_to_the_bundled_file(
    name: str, presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_experiment_path(name) == presets / "toy-mlp.toml"


def test_an_existing_file_wins_over_a_preset_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "toy-mlp.toml").write_text("[model]\n", encoding="utf-8")
    assert resolve_experiment_path("toy-mlp.toml") == Path("toy-mlp.toml")


def test_a_path_with_a_folder_is_never_taken_for_a_preset(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="no such experiment file"):
        resolve_experiment_path(tmp_path / "toy-mlp.toml")


def test_an_unknown_name_lists_the_presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExperimentError) as caught:
        resolve_experiment_path("toy-mpl")
    message = str(caught.value)
    assert message.startswith("toy-mpl: no such experiment file, and not a preset name")
    assert "digits-mlp" in message and "toy-mlp" in message


def test_inside_a_bundle_presets_come_from_sys_meipass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = tmp_path / "bundle" / "resources" / "presets"
    bundled.mkdir(parents=True)
    (bundled / "tiny.toml").write_text("[model]\n", encoding="utf-8")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "bundle"), raising=False)
    monkeypatch.chdir(tmp_path)
    assert preset_names() == ["tiny"]
    assert resolve_experiment_path("tiny") == bundled / "tiny.toml"
    assert os.path.isfile(resolve_experiment_path("tiny"))
