"""tqdm progress bars: drawn only on a terminal, and only for work that lasts over a second."""

from __future__ import annotations

from tqdm import tqdm

from oxen.progress import Progress


def bar(desc: str, total: int | None, unit: str) -> Progress:
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024,
        disable=None,  # None: off when stderr is not a terminal
        delay=1.0,
        leave=False,
        dynamic_ncols=True,
    )
