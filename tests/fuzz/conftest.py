"""Settings shared by the fuzz tests, and the count of inputs they tried.

Every run is the same run: examples come from a fixed seed (``derandomize``), nothing is
remembered between runs, and no example has a deadline (the machine is shared).
``OXEN_FUZZ_SCALE=10`` tries ten times as many inputs."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
SCALE = float(os.environ.get("OXEN_FUZZ_SCALE", "1"))

INPUTS: Counter[str] = Counter()
OUTCOMES: dict[str, Counter[str]] = {}


def fuzz_settings(examples: int) -> settings:
    """The shared profile with ``examples`` inputs (times OXEN_FUZZ_SCALE)."""
    return settings(settings.get_profile("fuzz"), max_examples=max(1, int(examples * SCALE)))


def tried(name: str) -> None:
    """Count one input given to ``name``."""
    INPUTS[name] += 1


def outcome(name: str, what: str) -> None:
    """Count what one input to ``name`` got (shown beside the count: the inputs reached
    more than the first check)."""
    OUTCOMES.setdefault(name, Counter())[what] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not INPUTS:
        return
    failed = [r for r in terminalreporter.stats.get("failed", []) if "tests/fuzz/" in r.nodeid]
    width = max(len(name) for name in INPUTS)
    terminalreporter.section("fuzz")
    for name, n in sorted(INPUTS.items()):
        seen = ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.get(name, {}).items()))
        terminalreporter.write_line(f"{name:<{width}}  {n:>6}  {seen}".rstrip())
    terminalreporter.write_line(f"fuzz: {sum(INPUTS.values())} inputs, {len(failed)} crashes")
