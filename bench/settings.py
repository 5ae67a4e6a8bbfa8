"""What every workload is run with: runs per step, status repeats, timeout, seed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    runs: int
    status_repeats: int
    timeout: float
    seed: int
