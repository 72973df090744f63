"""Bundled preset experiments: where they live (source tree or bundle) and names as shortcuts."""

from __future__ import annotations

from pathlib import Path

from workbench.engine.errors import ExperimentError
from workbench.engine.resources import resources_dir


def presets_dir() -> Path:
    """resources/presets next to the package, or inside a PyInstaller bundle."""
    return resources_dir() / "presets"


def preset_names() -> list[str]:
    folder = presets_dir()
    return sorted(path.stem for path in folder.glob("*.toml")) if folder.is_dir() else []


def resolve_experiment_path(name_or_path: str | Path) -> Path:
    """An existing file as given, else a bundled preset by name (`toy-mlp` or `toy-mlp.toml`).

    A file in the current folder always wins over a preset of the same name.
    """
    given = Path(name_or_path).expanduser()
    if given.is_file():
        return given
    is_bare_name = given.parent == Path(".") and given.suffix in ("", ".toml")
    if is_bare_name:
        preset = presets_dir() / f"{given.stem}.toml"
        if preset.is_file():
            return preset
    names = ", ".join(preset_names()) or "none found"
    raise ExperimentError(
        f"{name_or_path}: no such experiment file, and not a preset name; "
        f"give the path to a .toml file or one of the presets: {names}"
    )
