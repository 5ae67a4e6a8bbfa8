"""W4's steps for dvc (bench/w4.py): W1 and W2 pushed to / pulled from an S3 remote on
the same moto as ours (s3)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from bench import datagen
from bench.report import Table
from bench.services import BUCKET, Run, Target
from bench.trash import discard
from bench.w4_steps import (
    _attempt,
    _check_file,
    _check_tree,
    _fresh,
    _measure,
    _record_second_push,
    _record_stored,
    _said,
    _untimed,
)


def _dvc_prepare(t: Target, repo: Path, targets: Sequence[str], name: str, timeout: float) -> None:
    dvc = str(t.tool.bin / "dvc")  # type: ignore[attr-defined]
    _untimed(
        [
            [dvc, "init", "--no-scm", "-q"],
            [dvc, "config", "core.analytics", "false"],
            [dvc, "add", "-q", *targets],
            [dvc, "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc/{name}"],
            [dvc, "remote", "modify", "s3", "endpointurl", t.base_url],
        ],
        repo,
        t,
        f"{name} add",
        timeout,
    )


def _dvc_checkout_files(repo: Path, clone: Path) -> None:
    """What `git clone` of a dvc repository brings: the .dvc files, .dvcignore and
    .dvc/config (the cache and tmp dirs are git-ignored)."""
    (clone / ".dvc").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(repo / ".dvc" / "config", clone / ".dvc" / "config")
    for path in repo.iterdir():
        if path.is_file() and (path.suffix == ".dvc" or path.name == ".dvcignore"):
            shutil.copyfile(path, clone / path.name)


def _dvc_w1(
    run: Run, table: Table, steps: dict[str, str], fs: datagen.FileSet, timeout: float
) -> None:
    t = run.dvc_target
    assert t is not None
    dvc = str(t.tool.bin / "dvc")  # type: ignore[attr-defined]
    repo, clone = _fresh(run.root / "dvc-w1"), _fresh(run.root / "clone-dvc-w1")
    try:

        def push() -> None:
            shutil.copytree(fs.path, repo)
            os.sync()
            _dvc_prepare(t, repo, fs.toplevel, "w1", timeout)
            out = _measure(table, steps["push"], t, [[dvc, "push"]], repo, timeout, fs.total_bytes)
            _said(table, steps["push"], t, out)
            _record_stored(table, steps["push"], t, "w1", fs.total_bytes)

        def clone_() -> None:
            _dvc_checkout_files(repo, clone)
            out = _measure(
                table, steps["clone"], t, [[dvc, "pull"]], clone, timeout, fs.total_bytes
            )
            _said(table, steps["clone"], t, out)
            _check_tree(fs, clone)

        _attempt(table, t.label, steps["push"], push)
        _attempt(table, t.label, steps["clone"], clone_)
    finally:
        discard(repo)
        discard(clone)


def _dvc_w2(
    run: Run,
    table: Table,
    steps: dict[str, str],
    versions: datagen.ParquetVersions,
    new_bytes: int | None,
    timeout: float,
) -> None:
    t = run.dvc_target
    assert t is not None
    dvc = str(t.tool.bin / "dvc")  # type: ignore[attr-defined]
    sizes = versions.sizes()
    repo, clone = _fresh(run.root / "dvc-w2"), _fresh(run.root / "clone-dvc-w2")
    try:

        def push() -> None:
            repo.mkdir()
            shutil.copyfile(versions.v1, repo / "data.parquet")
            os.sync()
            _dvc_prepare(t, repo, ["data.parquet"], "w2", timeout)
            out = _measure(table, steps["v1 push"], t, [[dvc, "push"]], repo, timeout, sizes["v1"])
            _said(table, steps["v1 push"], t, out)
            _record_stored(table, steps["v1 push"], t, "w2", sizes["v1"])

        def clone_() -> None:
            _dvc_checkout_files(repo, clone)
            out = _measure(
                table, steps["v1 clone"], t, [[dvc, "pull"]], clone, timeout, sizes["v1"]
            )
            _said(table, steps["v1 clone"], t, out)
            _check_file(versions.v1, clone / "data.parquet")

        def push2() -> None:
            shutil.copyfile(versions.v2, repo / "data.parquet")
            os.sync()
            _untimed([[dvc, "add", "-q", "data.parquet"]], repo, t, "w2 v2 add", timeout)
            before = t.stored("w2")
            out = _measure(table, steps["v2 push"], t, [[dvc, "push"]], repo, timeout)
            _said(table, steps["v2 push"], t, out)
            _record_second_push(table, steps["v2 push"], t, before, sizes["v1"], new_bytes)

        def pull() -> None:
            _dvc_checkout_files(repo, clone)  # what `git pull` brings: the new data.parquet.dvc
            out = _measure(table, steps["v2 pull"], t, [[dvc, "pull"]], clone, timeout)
            _said(table, steps["v2 pull"], t, out)
            _check_file(versions.v2, clone / "data.parquet")

        for step, fn in (
            ("v1 push", push),
            ("v1 clone", clone_),
            ("v2 push", push2),
            ("v2 pull", pull),
        ):
            _attempt(table, t.label, steps[step], fn)
    finally:
        discard(repo)
        discard(clone)
