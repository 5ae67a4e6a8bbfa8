"""Where the runner keeps things, computed from this file (no machine-specific paths)."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"  # git-ignored scratch: generated data, repos, logs, tool homes
PEERS = BENCH_DIR / ".peers"  # git-ignored: one venv per Python peer, install log
RESULTS = BENCH_DIR / "results"  # committed: one markdown file per run

DATA = WORK / "data"
RUNS = WORK / "runs"
LOGS = WORK / "logs"
HOMES = WORK / "home"
INSTALL_LOG = PEERS / "install.log"
