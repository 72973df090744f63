"""Text from files made terminal- and dialog-safe: control, ANSI and bidi characters shown escaped."""

from __future__ import annotations

import unicodedata

# Unicode categories that change how text is shown instead of being shown: controls (ANSI
# escapes start with ESC), format characters (bidi overrides such as U+202E, zero-width
# joiners), line/paragraph separators, surrogates, private use and unassigned code points.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_KEPT_IN_MULTILINE = frozenset("\n\t")


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(text: object, *, multiline: bool = False) -> str:
    """`text` with every character that could act on a terminal or reorder a line written as a
    visible escape (`\\x1b`, `\\u202e`); everything printable, accents and CJK included, stays.

    Keys, global names, paths and metadata read from a file pass through here before they are
    printed or shown, so `key\\x1b[2J` cannot clear a screen and an RTL override cannot make
    `gpj.exe` look like `exe.jpg`. With `multiline`, newlines and tabs are kept (whole messages).
    """
    value = str(text)
    if value.isascii() and value.isprintable():
        return value  # the common case, without a per-character walk
    kept = _KEPT_IN_MULTILINE if multiline else frozenset()
    return "".join(
        _escape(char)
        if char not in kept and unicodedata.category(char) in _HIDDEN_CATEGORIES
        else char
        for char in value
    )
