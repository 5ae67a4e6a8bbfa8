"""Temporary pack files left by a killed process are swept; those of live ones are kept."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from oxen.objects.temp_files import STALE_AFTER, sweep, temp_path
from oxen.repo import AsyncRepo
from oxen.serving.registry import RepoRegistry
from oxen.storage.local import LocalStore


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_sweep_removes_what_dead_processes_left(tmp_path: Path) -> None:
    mine = temp_path(tmp_path, "push", ".pack")
    mine.write_bytes(b"in use")
    parent = tmp_path / f"pack-{os.getppid()}-abc.tmp"  # a live process, not us
    parent.write_bytes(b"in use")
    orphan = tmp_path / f"upload-{dead_pid()}-abc.pack"
    orphan.write_bytes(b"x" * 1000)
    other = tmp_path / "notes.txt"
    other.write_text("not ours")
    assert sweep(tmp_path) == 1
    assert mine.exists() and parent.exists() and other.exists() and not orphan.exists()
    # a day later even a live pid's file is taken for a reused pid's
    assert sweep(tmp_path, now=time.time() + STALE_AFTER + 60) == 2
    assert other.exists()
    assert sweep(tmp_path / "absent") == 0


async def test_opening_a_repository_sweeps_its_temp_dir(tmp_path: Path) -> None:
    repo = await AsyncRepo.init(tmp_path / "w")
    await repo.close()
    tmp = tmp_path / "w" / ".oxen" / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    orphan = tmp / f"push-{dead_pid()}-abc.pack"
    orphan.write_bytes(b"x" * 1000)
    repo = await AsyncRepo.open(tmp_path / "w")
    await repo.close()
    assert not orphan.exists()


async def test_the_server_sweeps_a_repository_cache_when_it_opens_it(tmp_path: Path) -> None:
    registry = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache")
    await registry.create("ns", "r")
    tmp = tmp_path / "cache" / "ns" / "r" / "tmp"
    tmp.mkdir(parents=True)
    orphan = tmp / f"upload-{dead_pid()}-abc.pack"
    orphan.write_bytes(b"x" * 1000)
    async with registry.use("ns", "r"):
        pass
    await registry.close()
    assert not orphan.exists()
