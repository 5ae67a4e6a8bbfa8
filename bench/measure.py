"""Timing whole processes: wall time and peak RSS per command.

Each command runs under bench/_wrap.py (started with subprocess.Popen, stdout/stderr to
log files, in its own process group), which forks the command, reaps it with os.wait4
and writes the child's wall time and ru_maxrss. Per-child rusage from wait4 covers the
tool's whole process tree (git's git-lfs filter process, dvc's helpers) and is not mixed
up with earlier commands the way a RUSAGE_CHILDREN delta (a running max) would be; the
small wrapper keeps the runner's own RSS out of the numbers (see _wrap.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
WRAPPER = Path(__file__).resolve().parent / "_wrap.py"


class StepFailed(Exception):
    """A tool's command failed; the message is what the table shows."""


@dataclass(frozen=True)
class CmdResult:
    argv: tuple[str, ...]
    seconds: float
    maxrss_kib: int
    returncode: int
    stdout_path: Path
    stderr_path: Path

    def first_error_line(self) -> str:
        """The first line of stderr (else stdout); for a Python traceback, its last line."""
        for path in (self.stderr_path, self.stdout_path):
            try:
                text = ANSI.sub("", path.read_text(errors="replace"))
            except OSError:
                continue
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
                return line[:160]
        return f"exit code {self.returncode}, no output"


def run_cmd(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log_stem: Path,
    timeout: float,
) -> CmdResult:
    """Run one command to completion and return its wall time and peak RSS."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    out_path = log_stem.with_suffix(".out")
    err_path = log_stem.with_suffix(".err")
    res_path = log_stem.with_suffix(".rusage")
    res_path.unlink(missing_ok=True)
    # Resolve the program here, so the wrapper's child only execs (a steady RSS floor).
    exe = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
    wrapped = [sys.executable, "-I", "-S", str(WRAPPER), str(res_path), exe, *argv[1:]]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(
                wrapped,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            raise StepFailed(f"cannot start the timing wrapper: {exc.strerror}") from exc
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            proc.wait()
            raise StepFailed(f"timed out after {timeout:.0f} s") from None
        except BaseException:
            _killpg(proc.pid)
            proc.wait()
            raise
        finally:
            # Descendants that outlived the tool (none expected) are not left running.
            _killpg(proc.pid)
    try:
        seconds, maxrss, code = res_path.read_text().split()
    except (OSError, ValueError):
        raise StepFailed(f"timing wrapper exited {proc.returncode} without a result") from None
    return CmdResult(tuple(argv), float(seconds), int(maxrss), int(code), out_path, err_path)


def rss_floor_kib(log_dir: Path) -> int | None:
    """Peak RSS the wrapper reports for `true`: the smallest value any command can show."""
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        return run_cmd(["true"], log_dir, os.environ, log_dir / "rss-floor", 60).maxrss_kib
    except StepFailed:
        return None


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Sample:
    """One measured step of one run: possibly several commands (e.g. add, commit)."""

    seconds: float = 0.0
    maxrss_kib: int = 0

    def add(self, res: CmdResult) -> None:
        self.seconds += res.seconds
        self.maxrss_kib = max(self.maxrss_kib, res.maxrss_kib)


@dataclass
class Outcome:
    """All samples of one (workload step, tool), or why there are none."""

    samples: list[Sample] = field(default_factory=list)
    extras: dict[str, list[float]] = field(default_factory=dict)
    error: str | None = None
    warning: str | None = None  # shown in the notes column next to the numbers
    note: str | None = None  # plain information for the notes column (e.g. what the tool said)

    def add_extra(self, name: str, value: float) -> None:
        self.extras.setdefault(name, []).append(value)

    @property
    def median_seconds(self) -> float | None:
        if self.error or not self.samples:
            return None
        return statistics.median(s.seconds for s in self.samples)

    @property
    def peak_rss_kib(self) -> int | None:
        if self.error or not self.samples:
            return None
        return max(s.maxrss_kib for s in self.samples)

    def median_extra(self, name: str) -> float | None:
        values = self.extras.get(name)
        if self.error or not values:
            return None
        return statistics.median(values)


def dir_size(path: Path) -> int:
    """Apparent size in bytes of the regular files under path (hard links counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1:
                        if key in seen:
                            continue
                        seen.add(key)
                    total += st.st_size
            except FileNotFoundError:
                continue
    return total


_T0 = time.monotonic()


def log(msg: str) -> None:
    """Progress goes to stderr (with seconds since start); the tables go to stdout."""
    print(f"[{time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)
