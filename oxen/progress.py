"""Progress reporting as a small protocol: the core reports, only the CLI draws bars."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """The subset of tqdm's interface the core uses."""

    def update(self, n: int) -> None: ...

    def reset(self, total: int | None = None) -> None: ...

    def close(self) -> None: ...


class ProgressFactory(Protocol):
    def __call__(self, desc: str, total: int | None, unit: str) -> Progress: ...


class NullProgress:
    def update(self, n: int) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def null_progress(desc: str, total: int | None, unit: str) -> Progress:
    return NullProgress()
