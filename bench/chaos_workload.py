"""The data the chaos runner's two working copies edit: a few hundred small files and a
few MiB-sized ones per copy, each copy in its own folder (``data/<copy>/``) so that
pulls merge without conflicts, changed a little before every ``add``.

Everything is drawn from a ``random.Random`` the caller seeds: the same seed writes the
same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Shape:
    small_files: int = 200  # per working copy
    big_files: int = 2  # per working copy
    big_size: int = 2 * MIB  # about; each changes in place and grows a little


class Workload:
    """The files of one working copy's folder."""

    def __init__(self, root: Path, name: str, shape: Shape) -> None:
        self.dir = root / "data" / name
        self.shape = shape

    def _small(self) -> list[Path]:
        return sorted((self.dir / "small").glob("*.txt"))

    def _big(self) -> list[Path]:
        return sorted((self.dir / "big").glob("*.bin"))

    def create(self, rng: random.Random) -> None:
        for i in range(self.shape.small_files):
            _write(self.dir / "small" / f"{i:05d}.txt", _small_bytes(rng))
        for i in range(self.shape.big_files):
            size = rng.randint(self.shape.big_size // 2, self.shape.big_size * 3 // 2)
            _write(self.dir / "big" / f"{i:02d}.bin", rng.randbytes(size))

    def mutate(self, rng: random.Random) -> None:
        """Rewrite ~1 small file in 15, add 3, delete 2; change a region of one big file
        and sometimes append to it."""
        small = self._small()
        for path in rng.sample(small, max(1, len(small) // 15)) if small else []:
            _write(path, _small_bytes(rng))
        last = int(small[-1].stem) if small else -1
        for i in range(last + 1, last + 4):
            _write(self.dir / "small" / f"{i:05d}.txt", _small_bytes(rng))
        for path in rng.sample(small, min(2, len(small))):
            path.unlink(missing_ok=True)
        big = self._big()
        if big:
            path = rng.choice(big)
            data = bytearray(path.read_bytes())
            at = rng.randrange(max(1, len(data) - 64 * KIB))
            data[at : at + 64 * KIB] = rng.randbytes(64 * KIB)
            if rng.random() < 0.3 and len(data) < 2 * self.shape.big_size:
                data += rng.randbytes(256 * KIB)
            _write(path, bytes(data))


def _small_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(200, 6 * KIB))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
