"""First-run welcome: three intents, a close button, and "Don't show again" kept in QSettings."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from workbench.ui.welcome import (
    DISMISSED_KEY,
    WelcomeBanner,
    forget_welcome_dismissal,
    welcome_dismissed,
)


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def make_banner(qtbot: QtBot, settings: QSettings) -> WelcomeBanner:
    banner = WelcomeBanner(settings)
    qtbot.addWidget(banner)
    banner.show()
    return banner


def test_a_first_run_has_not_dismissed_the_welcome(settings: QSettings) -> None:
    assert not welcome_dismissed(settings)


@pytest.mark.parametrize(
    ("button", "signal"),
    [
        ("train_button", "train_requested"),
        ("open_button", "open_checkpoint_requested"),
        ("quantize_button", "quantize_requested"),
        ("pretrained_button", "pretrained_requested"),
    ],
)
def test_each_button_emits_its_intent(
    qtbot: QtBot, settings: QSettings, button: str, signal: str
) -> None:
    banner = make_banner(qtbot, settings)
    with qtbot.waitSignal(getattr(banner, signal), timeout=1000):
        getattr(banner, button).click()
    assert banner.isVisible()  # trying one thing leaves the other two in view


def test_buttons_carry_names_and_icons(qtbot: QtBot, settings: QSettings) -> None:
    banner = make_banner(qtbot, settings)
    assert banner.objectName() == "welcomeBanner"
    assert banner.train_button.objectName() == "welcomeTrainButton"
    buttons = (banner.train_button, banner.open_button, banner.quantize_button)
    for button in (*buttons, banner.pretrained_button):
        assert not button.icon().isNull(), button.text()
        assert button.toolTip()


def test_closing_hides_it_for_this_session_only(qtbot: QtBot, settings: QSettings) -> None:
    banner = make_banner(qtbot, settings)
    with qtbot.waitSignal(banner.dismissed, timeout=1000):
        banner.close_button.click()
    assert not banner.isVisible()
    assert not welcome_dismissed(settings)


def test_dont_show_again_is_remembered(qtbot: QtBot, settings: QSettings, tmp_path: Path) -> None:
    banner = make_banner(qtbot, settings)
    banner.dont_show_again.setChecked(True)
    banner.close_button.click()
    reopened = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    assert welcome_dismissed(reopened)
    assert reopened.contains(DISMISSED_KEY)
    forget_welcome_dismissal(reopened)
    assert not welcome_dismissed(reopened)
