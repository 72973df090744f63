"""First-run welcome: a dismissible banner pointing at the three things worth trying first."""

from __future__ import annotations

from PySide6.QtCore import QSettings, QSize, Qt, Signal, SignalInstance
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from workbench.engine.resources import icon_path

DISMISSED_KEY = "welcome/dismissed"
WELCOME_TEXT = (
    "<b>Welcome to Torch Workbench.</b> A small model is loaded and ready: press "
    "<i>Train</i> to watch it learn. You can also open a saved <tt>.pth</tt> to see inside "
    "it, or quantize a trained model to make it smaller and faster."
)


def welcome_dismissed(settings: QSettings) -> bool:
    """True once the user has ticked "Don't show again" and closed the banner."""
    return str(settings.value(DISMISSED_KEY, "false")).lower() in ("true", "1")


def forget_welcome_dismissal(settings: QSettings) -> None:
    """Show the welcome again on the next start (for a Help > Show Welcome action)."""
    settings.remove(DISMISSED_KEY)


def _icon(name: str) -> QIcon:
    path = icon_path(name)
    return QIcon(str(path)) if path.is_file() else QIcon()


class WelcomeBanner(QFrame):
    """A banner with Train / Open checkpoint / Quantize / Pretrained buttons, a close button and a
    "Don't show again" box stored in QSettings `welcome/dismissed`. It only emits intents."""

    train_requested = Signal()
    open_checkpoint_requested = Signal()
    quantize_requested = Signal()
    pretrained_requested = Signal()
    dismissed = Signal()

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setObjectName("welcomeBanner")
        self.setAccessibleName("welcomeBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(  # its own light colours, readable in the dark theme too
            "#welcomeBanner { background: #FFF4EC; border: 1px solid #F3B08F; border-radius: 6px; }"
            " #welcomeBanner QLabel, #welcomeBanner QCheckBox { color: #202020; }"
        )
        self._build()

    def _button(
        self, text: str, icon: str, name: str, tooltip: str, signal: SignalInstance
    ) -> QPushButton:
        button = QPushButton(_icon(icon), text)
        button.setIconSize(QSize(18, 18))
        button.setObjectName(name)
        button.setAccessibleName(name)
        button.setToolTip(tooltip)
        button.clicked.connect(signal)  # signal to signal: the `checked` flag is dropped
        return button

    def _build(self) -> None:
        self.message = QLabel(WELCOME_TEXT)
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.RichText)
        self.train_button = self._button(
            "&Train this model",
            "train",
            "welcomeTrainButton",
            "Train the model that is loaded now, and watch the loss fall",
            self.train_requested,
        )
        self.open_button = self._button(
            "Open a &checkpoint…",
            "open",
            "welcomeOpenCheckpointButton",
            "See what is inside a .pth, .pt or .safetensors file, and fix it",
            self.open_checkpoint_requested,
        )
        self.quantize_button = self._button(
            "&Quantize a model…",
            "quantize",
            "welcomeQuantizeButton",
            "Make a trained model smaller and faster, with a report of what it costs",
            self.quantize_requested,
        )
        self.pretrained_button = self._button(
            "Start from a &pretrained network…",
            "add",
            "welcomePretrainedButton",
            "Train a torchvision network pretrained on ImageNet on your own image folder",
            self.pretrained_requested,
        )
        self.dont_show_again = QCheckBox("Don't show again")
        self.dont_show_again.setObjectName("welcomeDontShowAgain")
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setObjectName("welcomeCloseButton")
        self.close_button.setAccessibleName("Close the welcome")
        self.close_button.setToolTip("Close the welcome")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismiss)

        top = QHBoxLayout()
        top.addWidget(self.message, 1)
        top.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        actions = QHBoxLayout()
        for button in (
            self.train_button,
            self.open_button,
            self.quantize_button,
            self.pretrained_button,
        ):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.dont_show_again)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(actions)

    def retire(self) -> None:
        """The first run has started: the welcome has done its job, for good (Help > Show
        Welcome brings it back)."""
        if self.isHidden() and welcome_dismissed(self.settings):
            return
        self.settings.setValue(DISMISSED_KEY, True)
        self.settings.sync()
        self.hide()
        self.dismissed.emit()

    def dismiss(self) -> None:
        """Hide the banner; with "Don't show again" ticked, for good."""
        if self.dont_show_again.isChecked():
            self.settings.setValue(DISMISSED_KEY, True)
            self.settings.sync()
        self.hide()
        self.dismissed.emit()
