"""Shared fixtures: an isolated user config, repositories, and a runner for the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from oxen.config import UserConfig, save_user_config
from oxen.repo import AsyncRepo

OXEN = [sys.executable, "-m", "oxen.cli.main"]


@pytest.fixture(autouse=True)
def user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own user config dir holding an identity."""
    cfg = tmp_path_factory.mktemp("oxen-config")
    monkeypatch.setenv("OXEN_CONFIG_DIR", str(cfg))
    save_user_config(UserConfig(name="Test User", email="test@example.com"))
    return cfg


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture
async def repo(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncRepo]:
    """A fresh repository; the current directory is its root, as for a user at a shell."""
    monkeypatch.chdir(workdir)
    r = await AsyncRepo.init(workdir)
    try:
        yield r
    finally:
        await r.close()


def write(root: Path, rel: str, data: bytes | str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture
def oxen(workdir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real `oxen` command in ``workdir`` (or ``cwd=``)."""

    def run(
        *args: str, cwd: Path | None = None, check: bool | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*OXEN, *args],
            cwd=cwd or workdir,
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            timeout=600,
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run
