"""The building blocks of W4's steps (bench/w4.py): run commands through a target's
proxies, record time, wire bytes and what was stored, and check what a clone or pull
brought back. A StepFailed fails one row of a table, see _attempt."""

from __future__ import annotations

import filecmp
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import datagen
from bench.measure import CmdResult, Sample, StepFailed, log, run_cmd
from bench.paths import LOGS
from bench.report import Table, fmt_bytes
from bench.services import NS, ServiceError, Target
from bench.tools import Argv, Tool
from bench.trash import discard

MIN_STORED_SHARE = 0.25  # a push that stores less than this share of the data failed


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cmd_name(argv: Argv) -> str:
    name = Path(argv[0]).name
    if len(argv) > 1 and not argv[1].startswith("-"):
        name += f" {argv[1]}"
    return f"`{name}`"


def _run(argv: Argv, cwd: Path, env: dict[str, str], stem: str, timeout: float) -> CmdResult:
    res = run_cmd(argv, cwd, env, LOGS / "w4" / stem, timeout)
    if res.returncode != 0:
        raise StepFailed(f"{_cmd_name(argv)}: {res.first_error_line()}")
    return res


def _untimed(cmds: Sequence[Argv], cwd: Path, t: Target | Tool, what: str, timeout: float) -> str:
    """Setup commands (not measured); their failure is reported as `setup ...`."""
    env = t.env if isinstance(t, Target) else t.env()
    label = t.label if isinstance(t, Target) else t.name
    out = []
    for i, argv in enumerate(cmds):
        try:
            res = _run(argv, cwd, env, f"{_slug(label)}/setup-{_slug(what)}-{i}", timeout)
        except StepFailed as exc:
            raise StepFailed(f"setup: {exc}") from None
        out.append(res.stdout_path.read_text(errors="replace"))
    return "".join(out)


def _measure(
    table: Table,
    step: str,
    t: Target,
    cmds: Sequence[Argv],
    cwd: Path,
    timeout: float,
    data_bytes: int | None = None,
) -> str:
    """Run one timed step through the target's proxies; record time, RSS, wire bytes and
    the server's peak RSS under (step, target). Returns the commands' stdout."""
    up0, down0 = t.wire.settle()
    s3_0 = t.s3wire.settle() if t.s3wire is not None and t.s3wire is not t.wire else None
    if t.server is not None:
        t.server.reset_peak_rss()
    sample = Sample()
    out = []
    for i, argv in enumerate(cmds):
        res = _run(
            argv, cwd, t.env, f"{_slug(t.label)}/{_slug(table.key + ' ' + step)}-{i}", timeout
        )
        sample.add(res)
        out.append(res.stdout_path.read_text(errors="replace"))
    up1, down1 = t.wire.settle()
    o = table.outcome(step, t.label)
    o.samples.append(sample)
    o.add_extra("wire_up", up1 - up0)
    o.add_extra("wire_down", down1 - down0)
    if t.s3wire is t.wire:
        o.add_extra("s3_up", up1 - up0)
        o.add_extra("s3_down", down1 - down0)
    elif t.s3wire is not None and s3_0 is not None:
        s3_1 = t.s3wire.settle()
        o.add_extra("s3_up", s3_1[0] - s3_0[0])
        o.add_extra("s3_down", s3_1[1] - s3_0[1])
    if t.server is not None and (rss := t.server.rss_kib()) is not None:
        o.add_extra("server_rss", rss[1])
    if data_bytes:
        o.add_extra("mbps", data_bytes / sample.seconds / 1e6)
    return "".join(out)


def _said(table: Table, step: str, t: Target, stdout: str) -> None:
    """Record what the tool says it moved: ours' byte counts, dvc's file counts."""
    o = table.outcome(step, t.label)
    if m := re.search(r"\b(?:sent|received) (\d+) bytes", stdout):
        o.add_extra("said", int(m.group(1)))
    elif m := re.search(r"(\d+ files? (?:pushed|fetched)[^\n]*)", stdout):
        o.note = f"dvc: {m.group(1).strip()}"
    elif "Everything is up to date" in stdout or "Everything up-to-date" in stdout:
        o.note = "said: up to date"


def _record_stored(table: Table, step: str, t: Target, name: str, data_bytes: int) -> int:
    stored = t.stored(name)
    o = table.outcome(step, t.label)
    o.add_extra("stored", stored)
    if t.server is not None:  # not a column: shown in the notes by _finish_notes
        o.add_extra("server_cache", t.server.cache_size(NS, name))
    if stored < MIN_STORED_SHARE * data_bytes:
        raise StepFailed(
            f"exited 0 but the target holds only {fmt_bytes(stored)} for {fmt_bytes(data_bytes)} of data"
        )
    return stored


def _record_second_push(
    table: Table, step: str, t: Target, before: int, v1_bytes: int, new_bytes: int | None
) -> None:
    """stored + and wire ↑ / new chunks of the second push; it must store v2's new data."""
    grown = _record_stored(table, step, t, "w2", v1_bytes) - before
    o = table.outcome(step, t.label)
    o.add_extra("grown", grown)
    if new_bytes:
        o.add_extra("per_new", o.extras["wire_up"][-1] / new_bytes)
        if grown < new_bytes / 2:
            raise StepFailed(
                f"exited 0 but the target grew by only {fmt_bytes(grown)} "
                f"(v2 has {fmt_bytes(new_bytes)} of new chunks)"
            )


def _check_tree(fs: datagen.FileSet, dst: Path) -> None:
    """A clone must hold W1's files: same count, same total size, sampled bytes equal."""
    rels: list[str] = []
    total = 0
    for top in fs.toplevel:
        for path in (dst / top).rglob("*"):
            if path.is_file():
                rels.append(str(path.relative_to(dst)))
                total += path.stat().st_size
    if len(rels) != fs.n_files or total != fs.total_bytes:
        raise StepFailed(
            f"exited 0 but the clone holds {len(rels):,} files / {fmt_bytes(total)} "
            f"(expected {fs.n_files:,} / {fmt_bytes(fs.total_bytes)})"
        )
    rels.sort()
    for rel in rels[:: max(1, len(rels) // 25)]:
        if not filecmp.cmp(fs.path / rel, dst / rel, shallow=False):
            raise StepFailed(f"exited 0 but {rel} in the clone differs from the original")


def _check_file(src: Path, dst: Path) -> None:
    if not dst.is_file():
        raise StepFailed(f"exited 0 but {dst.name} is missing")
    if not filecmp.cmp(src, dst, shallow=False):
        raise StepFailed(f"exited 0 but {dst.name} differs from the version pushed")


def _attempt(table: Table, label: str, step: str, fn: Callable[[], Any]) -> bool:
    """Run one step of one target unless it is already out; a StepFailed fails the row
    (and marks its later steps `not run`)."""
    if table.outcome(step, label).error:
        return False
    try:
        fn()
        return True
    except (StepFailed, ServiceError) as exc:
        log(f"[{table.key}] {label}: {step} failed: {exc}")
        table.fail(label, step, f"failed: {exc}")
        return False


def _fresh(path: Path) -> Path:
    discard(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _parse_size(text: str) -> int | None:
    """`21.2 MiB` (ours' human_size) -> bytes."""
    m = re.match(r"([\d.]+) (B|KiB|MiB|GiB|TiB)$", text.strip())
    if not m:
        return None
    power = ["B", "KiB", "MiB", "GiB", "TiB"].index(m.group(2))
    return round(float(m.group(1)) * 1024**power)
