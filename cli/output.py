"""Formatting for people: sizes, and summaries of long path lists."""

from __future__ import annotations

from collections import Counter

SUMMARY_THRESHOLD = 40


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def summarize(paths: list[str], show_all: bool, limit: int = SUMMARY_THRESHOLD) -> list[str]:
    """Paths one per line; past ``limit``, one line per top-level directory instead."""
    if show_all or len(paths) <= limit:
        return paths
    per_dir: Counter[str] = Counter()
    loose: list[str] = []
    for p in paths:
        head, sep, _ = p.partition("/")
        if sep:
            per_dir[head + "/"] += 1
        else:
            loose.append(p)
    lines = [f"{d} ({n} files)" for d, n in sorted(per_dir.items())]
    if len(loose) > limit:
        lines.append(f"{len(loose)} files at the top level, e.g. {loose[0]}")
    else:
        lines.extend(loose)
    return lines
