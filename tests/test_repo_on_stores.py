"""A local repository can keep its objects on any store: NFS-mode filesystem or S3."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from oxen.repo import AsyncRepo
from tests.conftest import write
from tests.storage.conftest import aws_env, make_bucket, moto_endpoint  # noqa: F401 - fixtures


async def exercise(repo: AsyncRepo, workdir: Path) -> None:
    data = random.Random(3).randbytes(2_000_000)
    write(workdir, "big.bin", data)
    write(workdir, "small/a.txt", "a")
    await repo.add(["."])
    first = await repo.commit("one")
    write(workdir, "small/a.txt", "changed")
    await repo.add(["."])
    await repo.commit("two")
    await repo.checkout(first.hex())
    assert (workdir / "small" / "a.txt").read_text() == "a"
    (workdir / "big.bin").unlink()
    await repo.restore(["big.bin"])
    assert (workdir / "big.bin").read_bytes() == data
    assert (await repo.fsck()).problems == []


async def test_repo_on_nfs_mode_store(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    repo = await AsyncRepo.init(workdir, f"nfs://{tmp_path / 'nfs-objects'}")
    try:
        assert "nfs" in type(repo.store).__name__.lower()
        await exercise(repo, workdir)
    finally:
        await repo.close()


@pytest.mark.s3
async def test_repo_on_s3(
    workdir: Path,
    moto_endpoint: str,  # noqa: F811
    make_bucket,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = make_bucket(f"repo-{uuid.uuid4().hex[:10]}")
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    repo = await AsyncRepo.init(workdir, f"s3://{bucket}/objects")
    try:
        assert type(repo.store).__name__ == "S3Store"
        await exercise(repo, workdir)
    finally:
        await repo.close()
    # and the CLI reopens it from its config
    reopened = await AsyncRepo.open(workdir)
    try:
        assert len(await reopened.log("main")) == 2
    finally:
        await reopened.close()
