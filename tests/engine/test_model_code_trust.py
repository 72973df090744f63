"""Importing a project's Python file runs it: reading an experiment never does, the import gate
decides, and the trust store remembers agreement per path and content."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.own_models import CNN
from workbench.engine.experiment import load_experiment, save_experiment
from workbench.engine.experiment_model import build_experiment_model
from workbench.engine.model_source import model_candidates
from workbench.engine.module_trust import TRUST_KEY, ModuleTrust, file_digest
from workbench.engine.user_code import UntrustedCodeError, set_import_gate


def marking_project(folder: Path, marker: Path) -> Path:
    """A model file that writes `marker` when it is imported."""
    (folder / "models").mkdir(parents=True)
    source = f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n{CNN}"
    (folder / "models" / "net.py").write_text(source, encoding="utf-8")
    path = folder / "exp.toml"
    path.write_text(
        '[model]\nmodule = "models/net.py:Net"\n[data]\nname = "digits"\n[train]\nloss = "nll"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def gate() -> Iterator[None]:
    """Restores the process's import gate after the test."""
    previous = set_import_gate(None)
    yield
    set_import_gate(previous)


def test_reading_saving_and_validating_an_experiment_imports_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    path = marking_project(tmp_path / "project", marker)
    experiment = load_experiment(path)
    save_experiment(experiment, tmp_path / "project" / "copy.toml")
    assert load_experiment(tmp_path / "project" / "copy.toml") == experiment
    assert not marker.exists()
    build_experiment_model(experiment)  # building is what runs the code
    assert marker.read_text() == "imported"


def test_a_relative_model_file_is_relative_to_the_experiment_and_saved_so(tmp_path: Path) -> None:
    path = marking_project(tmp_path / "project", tmp_path / "m.txt")
    experiment = load_experiment(path)
    assert experiment.model.module == f"{tmp_path / 'project' / 'models' / 'net.py'}:Net"
    save_experiment(experiment, tmp_path / "project" / "again.toml")
    assert 'module = "models/net.py:Net"' in (tmp_path / "project" / "again.toml").read_text()
    save_experiment(experiment, tmp_path / "elsewhere.toml")  # outside: the absolute path stays
    assert load_experiment(tmp_path / "elsewhere.toml").model.module == experiment.model.module


def test_the_gate_refuses_an_unagreed_file_and_nothing_is_imported(
    tmp_path: Path, gate: None
) -> None:
    marker = tmp_path / "imported.txt"
    experiment = load_experiment(marking_project(tmp_path / "project", marker))
    settings: dict[str, object] = {}
    trust = ModuleTrust(settings)
    set_import_gate(trust.allows)
    with pytest.raises(UntrustedCodeError, match=r"net\.py: not imported: running a project"):
        build_experiment_model(experiment)
    assert not marker.exists()

    trust.trust(tmp_path / "project" / "models" / "net.py")
    assert build_experiment_model(experiment).total_parameters == 3_658
    assert marker.exists()


def test_agreement_holds_for_one_content_of_one_path(tmp_path: Path) -> None:
    file = tmp_path / "net.py"
    file.write_text("x = 1\n")
    settings: dict[str, object] = {}
    trust = ModuleTrust(settings)
    assert not trust.is_trusted(file)
    recorded = trust.trust(file)
    assert recorded == file_digest(file) and len(recorded) == 64
    assert trust.is_trusted(file) and ModuleTrust(settings).is_trusted(file)  # kept in settings
    assert isinstance(settings[TRUST_KEY], str)  # one JSON string: any settings store keeps it

    file.write_text("x = 2\n")  # the content changed: ask again
    assert not trust.is_trusted(file)
    other = tmp_path / "other.py"
    other.write_text("x = 1\n")  # the same content elsewhere is another agreement
    assert not trust.is_trusted(other)
    trust.trust(file)
    trust.forget(file)
    assert not trust.is_trusted(file) and trust.agreed() == {}


def test_a_damaged_settings_value_trusts_nothing(tmp_path: Path) -> None:
    file = tmp_path / "net.py"
    file.write_text("x = 1\n")
    for value in ("not json", "[1, 2]", ""):
        assert not ModuleTrust({TRUST_KEY: value}).is_trusted(file)


def test_a_changed_file_is_imported_afresh_and_an_unchanged_one_once(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "count.txt"
    (tmp_path / "models").mkdir()
    model_file = tmp_path / "models" / "net.py"
    counting = (
        "from pathlib import Path\n"
        f"m = Path({str(marker)!r})\n"
        "m.write_text(str(int(m.read_text()) + 1) if m.exists() else '1')\n"
    )
    model_file.write_text(counting + CNN, encoding="utf-8")
    (tmp_path / "exp.toml").write_text(
        '[model]\nmodule = "models/net.py:Net"\n[data]\nname = "digits"\n', encoding="utf-8"
    )
    experiment = load_experiment(tmp_path / "exp.toml")
    first = build_experiment_model(experiment)
    second = build_experiment_model(experiment)
    assert marker.read_text() == "1" and type(first.module) is type(second.module)

    model_file.write_text(
        counting
        + CNN.replace(
            "nn.Linear(32, num_classes)", "nn.Linear(32, 10)\n        self.extra = nn.Linear(2, 2)"
        ),
        encoding="utf-8",
    )
    third = build_experiment_model(experiment)  # what Reload does: the new content
    assert marker.read_text() == "2" and third.total_parameters == 3_658 + 6


def test_the_candidates_of_a_file_are_read_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    file = tmp_path / "net.py"
    source = f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\n{CNN}"
    file.write_text(source + "\n\nclass Helper:\n    pass\n", encoding="utf-8")
    assert model_candidates(file) == ["Net", "main", "Helper"]
    assert not marker.exists()
    file.write_text("class Net(nn.Module)\n")
    assert model_candidates(file) == []
