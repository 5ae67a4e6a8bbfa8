"""W4's tables (bench/w4.py): their columns, common notes, rows, and the notes added
once all runs are in."""

from __future__ import annotations

from collections.abc import Sequence

from bench.measure import Outcome
from bench.report import Extra, Table, fmt_bytes
from bench.services import BUCKET, DVC_S3, OURS_DISK, OURS_S3
from bench.tools import Tool

# The targets for the second push of W2 (v2 = v1 + 1% rows) at full size.
V2_WIRE_TARGET = 12e6  # bytes (MB, 10^6)
V2_TIME_TARGET = 1.5  # seconds
V2_NEW_RATIO_TARGET = 2.0  # wire up / bytes of v2's new chunks

MBPS = Extra("mbps", "MB/s", lambda v: f"{v:.0f}")
WIRE_UP = Extra("wire_up", "wire ↑", fmt_bytes)
WIRE_DOWN = Extra("wire_down", "wire ↓", fmt_bytes)
S3_UP = Extra("s3_up", "S3 ↑", fmt_bytes)
S3_DOWN = Extra("s3_down", "S3 ↓", fmt_bytes)
SAID = Extra("said", "tool says", fmt_bytes)
STORED = Extra("stored", "stored", fmt_bytes)
GROWN = Extra("grown", "stored +", fmt_bytes)
PER_NEW = Extra("per_new", "wire ↑ / new chunks", lambda v: f"{v:.2f}x")
SERVER_RSS = Extra("server_rss", "server peak RSS", lambda kib: fmt_bytes(kib * 1024))
SERVER_IDLE = Extra("server_idle", "server RSS before", lambda kib: fmt_bytes(kib * 1024))

COMMON_NOTES = [
    f"{OURS_DISK}: `oxen-server` with its objects on local disk; {OURS_S3}: `oxen-server "
    f"--storage s3://{BUCKET}/oxen` on moto (server mode); {DVC_S3}: `dvc push` / `dvc pull` "
    f"with an S3 remote `s3://{BUCKET}/dvc/...` on the same moto. Fresh servers, bucket and "
    "repositories every run. time vs ours = vs ours (s3), the same S3 as dvc.",
    "wire ↑ / ↓: TCP payload bytes (HTTP headers included) client → server / server → client, "
    "counted by a proxy the client talks to; S3 ↑ / ↓: the same between whoever speaks S3 "
    "(ours: the server; dvc: dvc itself) and moto. tool says: what the tool printed (ours: "
    "`sent N bytes` / `received N bytes`). stored: the repository's objects on the target after "
    "the step (disk: `<data-dir>/store/repos/bench/NAME`; S3: sum of list_objects_v2 sizes under "
    "the repository's prefix); ours' server also keeps a rebuildable SQLite cache per repository "
    "in its data dir, shown in the notes, not counted. server peak RSS: oxen-server's VmHWM "
    "during the step (reset before it via /proc/PID/clear_refs).",
    "clone: ours `oxen clone URL DIR`; dvc: a fresh directory holding what `git clone` of a dvc "
    "repository would bring (the `.dvc` files, `.dvcignore`, `.dvc/config`; copied, untimed), then "
    "`dvc pull`. Every clone and pull is checked against the data (file count, sizes, bytes) "
    "before it counts. Requests in flight: each tool's default (ours `-j 4`; dvc `jobs` = 4 × "
    "cores). The add/commit (ours `oxen add` + `oxen commit`, dvc `dvc add`) before a push is "
    "untimed here (W1/W2 time it).",
]


def _labels(requested: Sequence[str]) -> list[str]:
    """W4's rows: ours twice (disk, s3), dvc once; oxenai and git-lfs have none."""
    labels: list[str] = []
    for name in requested:
        if name == "ours":
            labels += [OURS_DISK, OURS_S3]
        elif name == "dvc":
            labels.append(DVC_S3)
    return labels


NOT_IN_W4 = {
    "oxenai": "oxenai has no rows: there is no server for it here (Oxen.ai's oxen-server is a "
    "separate Rust binary, not in the oxenai wheel).",
    "git-lfs": "git-lfs has no rows: it reaches S3 only through a separate LFS server; the "
    "issue compares against dvc on the same S3.",
}


def _skip_rows(
    table: Table, requested: Sequence[str], active: Sequence[Tool], skipped: dict[str, str]
) -> None:
    names = {t.name for t in active}
    for name in requested:
        if name in NOT_IN_W4:
            table.notes.append(NOT_IN_W4[name])
        elif name not in names:
            why = skipped.get(name, "skipped")
            for label in _labels([name]):
                table.skip_tool(label, why)


def _add_note(o: Outcome, text: str) -> None:
    o.note = f"{o.note}; {text}" if o.note else text


def _finish_notes(table: Table) -> None:
    """Per-run facts that are not columns go into the notes once, as medians."""
    for o in table.outcomes.values():
        cache = o.median_extra("server_cache")
        if cache is not None:
            _add_note(o, f"server cache {fmt_bytes(cache)}")


def _v2_target_notes(table: Table, step: str, full_size: bool) -> None:
    """Say, under ours' rows, whether the second push meets the issue's targets."""
    for label in (OURS_DISK, OURS_S3):
        o = table.outcome(step, label)
        wire, secs, ratio = o.median_extra("wire_up"), o.median_seconds, o.median_extra("per_new")
        if wire is None or secs is None:
            continue
        parts = []
        if ratio is not None:
            ok = "met" if ratio <= V2_NEW_RATIO_TARGET else "MISSED"
            parts.append(f"≤ {V2_NEW_RATIO_TARGET:.0f}x new chunks: {ok}")
        if full_size:
            parts.append(
                f"≤ 12 MB: {'met' if wire <= V2_WIRE_TARGET else 'MISSED'} ({wire / 1e6:.1f} MB)"
            )
            parts.append(f"≤ 1.5 s: {'met' if secs <= V2_TIME_TARGET else 'MISSED'}")
        else:
            parts.append("12 MB / 1.5 s targets apply at full size")
        _add_note(o, "target " + ", ".join(parts))
