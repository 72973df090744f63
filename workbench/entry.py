"""The `workbench` console script's entry: a Ctrl+C at any moment after Python starts ends with 130.

Importing this module costs nothing; the command line (and everything it imports) is loaded
inside `main`, where an interrupt is caught, so no traceback reaches the terminal.
"""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl+C


def main() -> int:
    try:
        from workbench.cli import main as run_command

        return run_command()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
