"""Starting a DDP run under torchrun and telling the user how it ended, as one process would.

The CLI (`workbench train --nproc N`) and the window's ProcessTrainingController share this:
the torchrun command line and environment, the per-rank report files that say how each rank
ended, the filter that keeps torchrun's own log lines and failure dump out of the user's way, and
the rule that picks the one message to show.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import workbench
from workbench.engine.atomic import atomic_write_text
from workbench.engine.ddp import plan_ddp
from workbench.engine.errors import ExperimentError
from workbench.engine.event_stream import encode_event
from workbench.engine.experiment import Experiment

RUN_DIR_VARIABLE = "WORKBENCH_DDP_RUN_DIR"  # where ranks write rankN.json; set by our launchers
KILL_GRACE_SECONDS = 5.0
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT: a second Ctrl+C ends the launch as a shell expects

# --------------------------------------------------------------------------- command and env

_FORWARDED_FLAGS = (
    ("out", "--out"),
    ("epochs", "--epochs"),
    ("device", "--device"),
    ("precision", "--precision"),
    ("accumulate", "--accumulate"),
    ("resume", "--resume"),
    ("events", "--events"),
)


def train_arguments(args: argparse.Namespace) -> list[str]:
    """The `workbench train` arguments of `args` for each rank: all of them but --nproc."""
    argv = [str(args.experiment)]
    for attribute, flag in _FORWARDED_FLAGS:
        value = getattr(args, attribute, None)
        if value is not None:
            argv.append(f"{flag}={value}")  # `=` keeps values such as "-" from reading as flags
    return argv


def torchrun_command(train_argv: Sequence[str], nproc: int) -> list[str]:
    """`torchrun --standalone` on this machine: a free rendezvous port, loopback addresses."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--local-addr=127.0.0.1",  # MASTER_ADDR for the ranks, instead of the host's name
        "-m",
        "workbench",
        "train",
        *train_argv,
    ]


def loopback_interface() -> str | None:
    """The loopback network interface's name ("lo" on Linux, "lo0" on macOS), if any."""
    with contextlib.suppress(OSError, AttributeError):
        for _, name in socket.if_nameindex():
            if name in ("lo", "lo0"):
                return name
    return None


def child_environment(
    run_dir: str | Path, nproc: int, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for torchrun and its ranks; the user's own settings win."""
    env = dict(os.environ if base is None else base)
    env[RUN_DIR_VARIABLE] = str(run_dir)
    # Without it torchrun sets 1 and prints a banner; share the cores among the ranks instead.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    interface = loopback_interface()
    if interface is not None:  # gloo and NCCL would otherwise pick the host's own address
        env.setdefault("GLOO_SOCKET_IFNAME", interface)
        env.setdefault("NCCL_SOCKET_IFNAME", interface)
    if sys.platform == "win32":
        env.setdefault("USE_LIBUV", "0")
    env["PYTHONUNBUFFERED"] = "1"
    # The ranks must import this very workbench, also from a source checkout.
    source_root = str(Path(workbench.__file__).resolve().parents[1])
    paths = [source_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


# --------------------------------------------------------------------------- rank reports


@dataclass(frozen=True)
class RankReport:
    """How one rank ended: its exit code and, when it failed, the one-line reason."""

    rank: int
    code: int
    message: str | None = None
    lost_peer: bool = False  # it failed because another rank went away
    shown: bool = False  # the rank has printed the message itself (rank 0's console)


def write_rank_report(report: RankReport, run_dir: str | Path | None = None) -> None:
    """Leave `report` for the launcher, when a launcher of ours is listening (else nothing)."""
    folder = run_dir if run_dir is not None else os.environ.get(RUN_DIR_VARIABLE)
    if not folder or not Path(folder).is_dir():
        return
    atomic_write_text(Path(folder) / f"rank{report.rank}.json", json.dumps(asdict(report)))


def read_rank_reports(run_dir: str | Path) -> dict[int, RankReport]:
    reports: dict[int, RankReport] = {}
    for path in sorted(Path(run_dir).glob("rank*.json")):
        with contextlib.suppress(OSError, ValueError, TypeError):
            report = RankReport(**json.loads(path.read_text(encoding="utf-8")))
            reports[report.rank] = report
    return reports


# --------------------------------------------------------------------------- torchrun's output

# glog-style lines of torchrun and of torch's C++ (gloo, NCCL): "W1123 00:40:26.413000 22170 x.py:1]"
_TORCH_LOG_LINE = re.compile(r"^(\[rank\d+\]:)?\[?[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+( +\d+)? [^\]]*\]")
_WORKER_FAILURE = re.compile(r"failed \(exitcode: (-?\d+)\) local_rank: (\d+)")
_TORCHRUN_FRAMES = ("distributed/run.py", "distributed/elastic", "distributed/launcher")


@dataclass(frozen=True)
class WorkerFailure:
    """torchrun's first observed failure: which local rank, and its exit code (-N: signal N)."""

    local_rank: int
    exitcode: int


class TorchrunOutput:
    """Sorts a torchrun job's stderr into the ranks' lines (shown) and torchrun's own (hidden).

    torchrun logs in glog format and, when a rank fails, ends with its own traceback and a
    failure table; both would bury the rank's one-line message, so they are kept in `hidden`.
    """

    def __init__(self) -> None:
        self.hidden: list[str] = []
        self.first_failure: WorkerFailure | None = None
        self._traceback: list[str] = []
        self._in_torchrun_dump = False

    def feed(self, line: str) -> list[str]:
        """The lines to show now (a held traceback may be released later)."""
        match = _WORKER_FAILURE.search(line)
        if match and self.first_failure is None:
            self.first_failure = WorkerFailure(int(match.group(2)), int(match.group(1)))
        if self._in_torchrun_dump:
            self.hidden.append(line)
            return []
        if self._traceback:
            return self._feed_traceback(line)
        if line.startswith("Traceback (most recent call last):"):
            self._traceback = [line]
            return []
        if _TORCH_LOG_LINE.match(line) or _is_torchrun_banner(line):
            self.hidden.append(line)
            return []
        return [line]

    def _feed_traceback(self, line: str) -> list[str]:
        self._traceback.append(line)
        if line.lstrip().startswith("File") and any(
            frame in line.replace("\\", "/") for frame in _TORCHRUN_FRAMES
        ):
            self._in_torchrun_dump = True  # torchrun's exit: its traceback and failure table
            self.hidden.extend(self._traceback)
            self._traceback = []
            return []
        if line.startswith((" ", "\t")) or not line.strip():
            return []
        released, self._traceback = self._traceback, []  # a rank's own traceback
        return released

    def finish(self) -> list[str]:
        released, self._traceback = self._traceback, []
        return released


def _is_torchrun_banner(line: str) -> bool:
    stripped = line.strip()
    return (stripped.startswith("*****") and set(stripped) == {"*"}) or stripped.startswith(
        "Setting OMP_NUM_THREADS environment variable"
    )


# --------------------------------------------------------------------------- how a run ended


@dataclass(frozen=True)
class RunOutcome:
    """The run's exit code and the message still to show (None: rank 0 has said it already)."""

    code: int
    message: str | None = None


def describe_exit(exitcode: int) -> str:
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-exitcode).name}"
        return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode} before saying why"


def run_outcome(
    reports: dict[int, RankReport], first_failure: WorkerFailure | None, torchrun_code: int
) -> RunOutcome:
    """Rank 0's own ending when it had one; otherwise the root cause among the other ranks."""
    main = reports.get(0)
    if main is not None and not main.lost_peer:
        unsaid = main.code != EXIT_OK and not main.shown
        return RunOutcome(main.code, main.message if unsaid else None)
    failed = sorted(
        (report for report in reports.values() if report.code != EXIT_OK and report.message),
        key=lambda report: report.rank,
    )
    causes = [report for report in failed if not report.lost_peer]
    if causes:
        return RunOutcome(causes[0].code, _rank_message(causes[0]))
    if first_failure is not None and first_failure.local_rank not in reports:
        return RunOutcome(
            EXIT_FAILED,
            f"training process rank {first_failure.local_rank} "
            f"{describe_exit(first_failure.exitcode)}; the other ranks were stopped",
        )
    if failed:
        return RunOutcome(EXIT_FAILED, _rank_message(failed[0]))
    if torchrun_code == EXIT_OK:
        return RunOutcome(EXIT_OK)
    return RunOutcome(EXIT_FAILED, f"the training processes ended with exit code {torchrun_code}")


def _rank_message(report: RankReport) -> str:
    if report.code == EXIT_BAD_INPUT:
        return str(report.message)  # bad input is the same for every rank: no rank to name
    return f"rank {report.rank}: {report.message}"


def is_terminal_event(line: str) -> bool:
    """Whether a JSON-lines event says the run is over (finished or failed)."""
    if not line.startswith("{"):
        return False
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("event") in ("finished", "failed")


# --------------------------------------------------------------------------- the CLI launcher


def launch_torchrun(
    args: argparse.Namespace, nproc: int, experiment: Experiment | None = None
) -> int:
    """Run `workbench train` on `nproc` local ranks; return rank 0's exit code."""
    if nproc < 1:
        raise ExperimentError(f"--nproc {nproc}: a DDP run needs at least 1 process")
    if experiment is not None:
        plan_ddp(experiment.train, nproc)  # impossible device/backend: exit 2 before launching
    with tempfile.TemporaryDirectory(prefix="workbench-ddp-") as run_dir:
        process = subprocess.Popen(
            torchrun_command(train_arguments(args), nproc),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment(run_dir, nproc),
            **_own_process_group(),
        )
        streams = _ForwardedStreams(process)
        with _forward_interrupts(process) as interrupts:
            torchrun_code = process.wait()
        streams.join()
        if interrupts.aborted:
            print("interrupted", file=sys.stderr)
            return interrupts.code
        outcome = run_outcome(
            read_rank_reports(run_dir), streams.output.first_failure, torchrun_code
        )
    if outcome.message is not None:
        print(f"error: {outcome.message}", file=sys.stderr, flush=True)
    if outcome.code != EXIT_OK and args.events is not None:
        _finish_event_stream(args.events, streams.terminal_event_seen, outcome)
    return outcome.code


def _own_process_group() -> dict[str, Any]:
    """Keep the terminal's Ctrl+C away from torchrun: the launcher forwards it exactly once."""
    if sys.platform == "win32":
        return {}
    return {"process_group": 0}


class _ForwardedStreams:
    """Copies torchrun's stdout and (filtered) stderr to ours as lines arrive."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.output = TorchrunOutput()
        self.terminal_event_seen = False
        assert process.stdout is not None and process.stderr is not None
        self._threads = [
            threading.Thread(target=self._copy_stdout, args=(process.stdout,), daemon=True),
            threading.Thread(target=self._copy_stderr, args=(process.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _copy_stdout(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.terminal_event_seen = self.terminal_event_seen or is_terminal_event(line)
            _write_line(sys.stdout, line)

    def _copy_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            for line in self.output.feed(raw.decode("utf-8", errors="replace").rstrip("\r\n")):
                _write_line(sys.stderr, line)
        for line in self.output.finish():
            _write_line(sys.stderr, line)
        if os.environ.get("WORKBENCH_DEBUG"):
            for line in self.output.hidden:
                _write_line(sys.stderr, line)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()


def _write_line(stream: IO[str], line: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        stream.write(line + "\n")
        stream.flush()


class _Interrupts:
    aborted = False
    code = EXIT_FAILED  # SIGTERM; a second Ctrl+C makes it EXIT_INTERRUPTED


@contextlib.contextmanager
def _forward_interrupts(process: subprocess.Popen[bytes]) -> Iterator[_Interrupts]:
    """First Ctrl+C: the ranks stop after this batch and save; a second one (or SIGTERM) ends
    every process at once, with SIGKILL after a grace period."""
    state = _Interrupts()
    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        yield state
        return
    interrupts = 0

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            _send(process, signal.SIGINT)  # torchrun passes it to every rank
        else:
            state.code = EXIT_INTERRUPTED
            on_terminate(signum, frame)

    def on_terminate(signum: int, frame: Any) -> None:
        state.aborted = True
        terminate(process)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, on_interrupt),
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_terminate),
    }
    try:
        yield state
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _send(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)


def terminate(process: subprocess.Popen[bytes], grace_seconds: float = KILL_GRACE_SECONDS) -> None:
    """SIGTERM torchrun (it SIGTERMs every rank), then SIGKILL whatever is left after `grace`."""
    _send(process, signal.SIGTERM)

    def kill_later() -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_seconds)
            return
        _send(process, signal.SIGKILL)  # the ranks follow: they watch their parent

    threading.Thread(target=kill_later, daemon=True).start()


def _finish_event_stream(target: str, terminal_seen: bool, outcome: RunOutcome) -> None:
    """End the event stream with `failed` when rank 0 could not (it was stopped or killed)."""
    message = outcome.message or "the training processes ended without a result"
    line = encode_event({"event": "failed", "message": message})
    if target == "-":
        if not terminal_seen:
            _write_line(sys.stdout, line)
        return
    path = Path(target)
    with contextlib.suppress(OSError):
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if not lines or not is_terminal_event(lines[-1]):
            with open(path, "a", encoding="utf-8") as stream:
                stream.write(line + "\n")
