"""`oxen init --storage s3://...` checks the bucket at once, and takes --s3-endpoint."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.s3


def test_init_on_a_missing_bucket_fails_at_once(oxen, workdir: Path, moto_endpoint: str) -> None:
    proc = oxen("init", "--storage", "s3://no-such-bucket/x", "--s3-endpoint", moto_endpoint)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0], lines
    assert not (workdir / ".oxen").exists()  # nothing half made


def test_init_with_an_s3_endpoint(
    oxen, workdir: Path, moto_endpoint: str, make_bucket: Callable[[str], str]
) -> None:
    bucket = make_bucket("oxen-init-endpoint")
    storage = f"s3://{bucket}/repo"
    oxen("init", "--storage", storage, "--s3-endpoint", moto_endpoint, check=True)
    config = tomllib.loads((workdir / ".oxen" / "config.toml").read_text())
    assert config["storage"]["url"].startswith(storage + "?endpoint_url=")
    (workdir / "a.txt").write_text("on s3")
    oxen("add", "a.txt", check=True)
    oxen("commit", "-m", "on s3", check=True)
    assert oxen("fsck", check=True).returncode == 0
    refused = oxen("init", "--s3-endpoint", moto_endpoint, cwd=workdir.parent)
    assert refused.returncode == 1 and "--storage s3://" in refused.stderr
