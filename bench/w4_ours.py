"""W4's steps for ours (bench/w4.py): W1 and W2 pushed to / cloned from each of ours'
targets (oxen-server on disk, oxen-server on moto S3)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from bench import datagen
from bench.measure import StepFailed
from bench.report import Table
from bench.services import NS, Run, Target
from bench.trash import discard
from bench.w4_steps import (
    _attempt,
    _check_file,
    _check_tree,
    _fresh,
    _measure,
    _parse_size,
    _record_second_push,
    _record_stored,
    _said,
    _untimed,
)


def _ours_remote_setup(t: Target, repo: Path, name: str, timeout: float) -> None:
    host = t.base_url.removeprefix("http://")
    exe = str(t.tool.exe)  # type: ignore[attr-defined]
    _untimed(
        [
            [exe, "create-remote", "--name", f"{NS}/{name}", "--host", host],
            [exe, "config", "--set-remote", t.remote, t.repo_url(name)],
        ],
        repo,
        t,
        f"remote {name}",
        timeout,
    )


def _ours_w1(
    run: Run, table: Table, steps: dict[str, str], fs: datagen.FileSet, timeout: float
) -> None:
    ours, targets = run.ours, run.ours_targets
    assert ours is not None
    exe = str(ours.exe)
    repo = _fresh(run.root / "ours-w1")
    try:
        shutil.copytree(fs.path, repo)
        os.sync()
        try:
            _untimed(
                [[exe, "init"], [exe, "add", "."], [exe, "commit", "-m", "w1"]],
                repo,
                ours,
                "w1 commit",
                timeout,
            )
        except StepFailed as exc:
            for t in targets:
                table.fail(t.label, steps["push"], f"failed: {exc}")
            return
        for t in targets:
            clone = run.root / f"clone-{t.remote}"

            def push(t: Target = t) -> None:
                _ours_remote_setup(t, repo, "w1", timeout)
                out = _measure(
                    table,
                    steps["push"],
                    t,
                    [[exe, "push", t.remote]],
                    repo,
                    timeout,
                    fs.total_bytes,
                )
                _said(table, steps["push"], t, out)
                _record_stored(table, steps["push"], t, "w1", fs.total_bytes)

            def clone_(t: Target = t, clone: Path = clone) -> None:
                out = _measure(
                    table, steps["clone"], t, [[exe, "clone", t.repo_url("w1"), str(clone)]],
                    run.root, timeout, fs.total_bytes,
                )  # fmt: skip
                _said(table, steps["clone"], t, out)
                _check_tree(fs, clone)

            _attempt(table, t.label, steps["push"], push)
            _attempt(table, t.label, steps["clone"], clone_)
            discard(clone)
    finally:
        discard(repo)


def _ours_w2(
    run: Run, table: Table, steps: dict[str, str], versions: datagen.ParquetVersions, timeout: float
) -> int | None:
    """Returns the bytes of v2's new chunks (ours' `oxen add` of v2: `stored X new`)."""
    ours, targets = run.ours, run.ours_targets
    assert ours is not None
    exe = str(ours.exe)
    sizes = versions.sizes()
    repo = _fresh(run.root / "ours-w2")
    clones = {t.label: run.root / f"clone-w2-{t.remote}" for t in targets}
    new_bytes: int | None = None
    try:
        repo.mkdir()
        shutil.copyfile(versions.v1, repo / "data.parquet")
        os.sync()
        try:
            _untimed(
                [[exe, "init"], [exe, "add", "."], [exe, "commit", "-m", "w2 v1"]],
                repo,
                ours,
                "w2 v1 commit",
                timeout,
            )
        except StepFailed as exc:
            for t in targets:
                table.fail(t.label, steps["v1 push"], f"failed: {exc}")
            return None
        for t in targets:
            clone = clones[t.label]

            def push(t: Target = t) -> None:
                _ours_remote_setup(t, repo, "w2", timeout)
                out = _measure(
                    table,
                    steps["v1 push"],
                    t,
                    [[exe, "push", t.remote]],
                    repo,
                    timeout,
                    sizes["v1"],
                )
                _said(table, steps["v1 push"], t, out)
                _record_stored(table, steps["v1 push"], t, "w2", sizes["v1"])

            def clone_(t: Target = t, clone: Path = clone) -> None:
                out = _measure(
                    table, steps["v1 clone"], t, [[exe, "clone", t.repo_url("w2"), str(clone)]],
                    run.root, timeout, sizes["v1"],
                )  # fmt: skip
                _said(table, steps["v1 clone"], t, out)
                _check_file(versions.v1, clone / "data.parquet")

            _attempt(table, t.label, steps["v1 push"], push)
            _attempt(table, t.label, steps["v1 clone"], clone_)

        shutil.copyfile(versions.v2, repo / "data.parquet")
        os.sync()
        try:
            out = _untimed(
                [[exe, "add", "."], [exe, "commit", "-m", "w2 v2"]],
                repo,
                ours,
                "w2 v2 commit",
                timeout,
            )
        except StepFailed as exc:
            for t in targets:
                table.fail(t.label, steps["v2 push"], f"failed: {exc}")
            return None
        if m := re.search(r"stored ([\d.]+ \w+) new", out):
            new_bytes = _parse_size(m.group(1))

        for t in targets:
            clone = clones[t.label]

            def push2(t: Target = t) -> None:
                before = t.stored("w2")
                out = _measure(table, steps["v2 push"], t, [[exe, "push", t.remote]], repo, timeout)
                _said(table, steps["v2 push"], t, out)
                _record_second_push(table, steps["v2 push"], t, before, sizes["v1"], new_bytes)

            def pull(t: Target = t, clone: Path = clone) -> None:
                out = _measure(table, steps["v2 pull"], t, [[exe, "pull"]], clone, timeout)
                _said(table, steps["v2 pull"], t, out)
                _check_file(versions.v2, clone / "data.parquet")

            _attempt(table, t.label, steps["v2 push"], push2)
            _attempt(table, t.label, steps["v2 pull"], pull)
    finally:
        discard(repo)
        for clone in clones.values():
            discard(clone)
    return new_bytes
