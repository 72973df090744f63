"""Python source in colour: keywords, definitions, numbers, strings, comments and docstrings."""

from __future__ import annotations

import keyword

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument


def _format(colour: str, bold: bool = False, italic: bool = False) -> QTextCharFormat:
    style = QTextCharFormat()
    style.setForeground(QColor(colour))
    if bold:
        style.setFontWeight(QFont.Weight.Bold)
    style.setFontItalic(italic)
    return style


class PythonHighlighter(QSyntaxHighlighter):
    """Keywords, names being defined, numbers, strings, comments and docstrings, in colour."""

    _IN_DOCSTRING = 1

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        words = "|".join(keyword.kwlist)
        self.rules = [
            (QRegularExpression(rf"\b(?:{words})\b"), _format("#7A3E9D", bold=True)),
            (QRegularExpression(r"\b(?:def|class)\s+(\w+)"), _format("#0060A0", bold=True)),
            (
                QRegularExpression(r"\b[0-9][0-9_]*(?:\.[0-9]+)?(?:e-?[0-9]+)?\b"),
                _format("#A35200"),
            ),
            (QRegularExpression(r"\"[^\"\n]*\"|'[^'\n]*'"), _format("#2E7D32")),
            (QRegularExpression(r"#[^\n]*$"), _format("#707070", italic=True)),
        ]
        self.docstring = _format("#2E7D32", italic=True)
        self.quotes = QRegularExpression('"""')

    def highlightBlock(self, text: str) -> None:
        for pattern, style in self.rules:
            matches = pattern.globalMatch(text)
            while matches.hasNext():
                match = matches.next()
                group = 1 if pattern.captureCount() else 0
                self.setFormat(match.capturedStart(group), match.capturedLength(group), style)
        self._docstrings(text)

    def _docstrings(self, text: str) -> None:
        self.setCurrentBlockState(0)
        start = 0 if self.previousBlockState() == self._IN_DOCSTRING else -1
        position = 0
        while True:
            match = self.quotes.match(text, position)
            if start < 0:
                if not match.hasMatch():
                    return
                start, position = match.capturedStart(), match.capturedEnd()
                continue
            if not match.hasMatch():
                self.setFormat(start, len(text) - start, self.docstring)
                self.setCurrentBlockState(self._IN_DOCSTRING)
                return
            self.setFormat(start, match.capturedEnd() - start, self.docstring)
            start, position = -1, match.capturedEnd()
