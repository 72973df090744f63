"""The window's trust store: agreement per file content kept in QSettings, and the import gate it
installs for every import of model code while the window lives."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings

from tests.own_models import CNN
from workbench.controllers.code_trust import TrustedCode, code_file
from workbench.engine.model_source import parse_reference
from workbench.engine.module_trust import TRUST_KEY, file_digest
from workbench.engine.user_code import UntrustedCodeError, import_file, import_gate


def settings_in(folder: Path) -> QSettings:
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


def test_agreement_is_kept_in_settings_per_content_and_gates_imports(tmp_path: Path) -> None:
    code = tmp_path / "net.py"
    code.write_text(CNN, encoding="utf-8")
    trusted = TrustedCode(settings_in(tmp_path))
    trusted.install()
    try:
        assert import_gate() == trusted.store.allows
        with pytest.raises(UntrustedCodeError, match="not imported"):
            import_file(code)
        assert trusted.trust(code) == file_digest(code)
        assert import_file(code).digest == file_digest(code)
        # Another store over the same settings file (the next window) remembers it.
        again = TrustedCode(settings_in(tmp_path))
        assert again.is_trusted(code)
        assert file_digest(code) in str(settings_in(tmp_path).value(TRUST_KEY))
        code.write_text(CNN + "\n# changed\n", encoding="utf-8")
        assert not again.is_trusted(code)
        with pytest.raises(UntrustedCodeError):
            import_file(code)
    finally:
        trusted.uninstall()
    assert import_gate() is None
    assert import_file(code).path == code  # without a window, the command line imports freely


def test_the_file_a_reference_imports(tmp_path: Path) -> None:
    assert code_file(parse_reference(f"{tmp_path}/net.py:Net")) == tmp_path / "net.py"
    assert code_file(parse_reference("net.pt2")) is None
    found = code_file(parse_reference("tomli_w:dumps"))  # the package's __init__
    assert found is not None and found.name == "__init__.py" and found.parent.name == "tomli_w"
    assert code_file(parse_reference("no_such_package_here:Net")) is None
