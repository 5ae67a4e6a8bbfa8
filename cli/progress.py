"""tqdm progress bars: drawn only on a terminal, and only for work that lasts over a second."""

from __future__ import annotations

import sys

from oxen.progress import NullProgress, Progress


def bar(desc: str, total: int | None, unit: str) -> Progress:
    # Off the terminal nothing is drawn, so tqdm (30 ms to import) is not even loaded.
    if not sys.stderr.isatty():
        return NullProgress()
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024,
        delay=1.0,
        leave=False,
        dynamic_ncols=True,
    )
