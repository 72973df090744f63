"""Entry point of the bundled executable: the `workbench` command, and enough of `python`.

In a bundle, sys.executable is this program, not a Python interpreter. Parts of the app start
sys.executable as if it were one: torchrun runs `EXE -m torch.distributed.run ... -m workbench
train`, its ranks run `EXE -u -m workbench train ...`, and trusted checkpoints are unpickled by
`EXE -m workbench.engine.checkpoints.trusted_loader`. So a leading `-m MODULE` or `-c CODE` (after
optional `-u`, `-B`, `-E`, `-s`, `-I`) runs like Python's; anything else is the workbench command.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys
import traceback
from collections.abc import Sequence

IGNORED_INTERPRETER_FLAGS = {"-B", "-E", "-s", "-I", "-O", "-OO"}


def run_like_python(argv: Sequence[str]) -> int | None:
    """Run `[-u] -m MODULE ARGS` or `-c CODE ARGS` as Python would; None for other arguments."""
    args = list(argv)
    unbuffered = False
    while args and (args[0] == "-u" or args[0] in IGNORED_INTERPRETER_FLAGS):
        unbuffered = unbuffered or args[0] == "-u"
        args.pop(0)
    if len(args) < 2 or args[0] not in ("-m", "-c"):
        return None
    if unbuffered:
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(line_buffering=True, write_through=True)
    flag, target, rest = args[0], args[1], args[2:]
    try:
        if flag == "-m":
            sys.argv = [target, *rest]
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *rest]
            exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    except SystemExit as exit_request:
        return _exit_code(exit_request.code)
    except BaseException:  # noqa: BLE001 - as python does: the traceback, then exit status 1
        traceback.print_exc()
        return 1
    return 0


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def main() -> int:
    multiprocessing.freeze_support()  # DataLoader workers started with spawn re-enter here
    python_result = run_like_python(sys.argv[1:])
    if python_result is not None:
        return python_result
    from workbench.cli import main as workbench_main

    return workbench_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
