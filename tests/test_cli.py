"""The real `oxen` command: a whole workflow, bad input, and kill -9 at every step of a commit."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.conftest import OXEN, write


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_workflow(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, "images/a.png", os.urandom(5000))
    write(workdir, "train.csv", "x,y\n1,2\n")
    assert "Untracked files" in oxen("status", check=True).stdout
    oxen("add", ".", check=True)
    out = oxen("commit", "-m", "first", check=True).stdout
    assert out.startswith("[main ")
    st = json.loads(oxen("status", "--json", check=True).stdout)
    assert st["branch"] == "main" and st["untracked"] == [] and st["modified"] == []
    oxen("checkout", "-b", "exp", check=True)
    write(workdir, "train.csv", "x,y\n1,2\n3,4\n")
    oxen("add", "train.csv", check=True)
    oxen("commit", "-m", "more rows", check=True)
    assert oxen("branch", "--show-current", check=True).stdout.strip() == "exp"
    assert oxen("branch", check=True).stdout.split() == ["*", "exp", "main"]
    oxen("checkout", "main", check=True)
    assert (workdir / "train.csv").read_text() == "x,y\n1,2\n"
    diff = oxen("diff", "main", "exp", check=True).stdout
    assert "M  train.csv" in diff
    assert "Fast-forward" in oxen("merge", "exp", check=True).stdout
    log = oxen("log", "--oneline", check=True).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in log] == ["more rows", "first"]
    assert oxen("log", "-n", "1", check=True).stdout.count("commit ") == 1
    info = json.loads(oxen("info", "train.csv", "--json", check=True).stdout)
    assert info["data_type"] == "tabular" and info["size"] == 12
    tree = oxen("tree", "--files", check=True).stdout
    assert "train.csv" in tree and "vnode" in tree
    node = json.loads(oxen("node", info["last_commit"], check=True).stdout)
    assert node["type"] == "commit" and node["message"] == "more rows"
    oxen("branch", "-d", "exp", check=True)
    assert "ok" in oxen("fsck", check=True).stdout


def test_status_summarises_thousands_of_paths(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    for i in range(300):
        write(workdir, f"imgs/{i}.jpg", str(i))
    out = oxen("status", check=True).stdout
    assert "imgs/ (300 files)" in out and "imgs/7.jpg" not in out
    assert "imgs/7.jpg" in oxen("status", "--all", check=True).stdout


def test_bad_input_gets_one_line_errors(oxen, workdir: Path, tmp_path: Path) -> None:
    assert_one_line_error(oxen("status"), "not an oxen repository")
    assert_one_line_error(oxen("log"), "not an oxen repository")
    oxen("init", check=True)
    assert_one_line_error(oxen("init"), "already an oxen repository")
    assert_one_line_error(oxen("add", "../outside"), "outside the repository")
    assert_one_line_error(oxen("add", "missing.txt"), "did not match any files")
    assert_one_line_error(oxen("commit", "-m", "nothing"), "nothing to commit")
    write(workdir, "a", "1")
    oxen("add", "a", check=True)
    oxen("commit", "-m", "one", check=True)
    assert_one_line_error(oxen("checkout", "nope"), "no branch or commit named 'nope'")
    assert_one_line_error(oxen("log", "nope"), "unknown revision")
    assert_one_line_error(oxen("diff", "nope"), "unknown revision")
    assert_one_line_error(oxen("node", "xyz"), "not an object id")
    assert_one_line_error(oxen("branch", "bad..name"), "invalid branch name")
    assert_one_line_error(oxen("merge", "nope"), "unknown revision")
    oxen("branch", "other", check=True)
    write(workdir, "a", "dirty")
    assert_one_line_error(oxen("merge", "other"), "uncommitted changes")
    usage = oxen()
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_corrupted_object_is_named_by_fsck(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, "data.bin", random.Random(1).randbytes(200_000))
    oxen("add", ".", check=True)
    oxen("commit", "-m", "data", check=True)
    chunk_id = json.loads(oxen("info", "data.bin", "--json", check=True).stdout)
    packs = sorted(
        (workdir / ".oxen" / "objects" / "packs").rglob("*.pack"), key=lambda p: p.stat().st_size
    )
    biggest = packs[-1]
    raw = bytearray(biggest.read_bytes())
    raw[100] ^= 0xFF
    biggest.write_bytes(bytes(raw))
    proc = oxen("fsck")
    assert proc.returncode == 1
    assert "is corrupt" in proc.stderr and biggest.stem in proc.stderr
    (workdir / "data.bin").unlink()
    restore = oxen("restore", "data.bin")
    assert_one_line_error(restore, "is corrupt")
    assert chunk_id["id"]


def test_fsck_names_every_object_of_a_missing_pack(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    rng = random.Random(2)
    write(workdir, "data.bin", rng.randbytes(300_000))
    write(workdir, "small.txt", "small")
    oxen("add", ".", check=True)
    oxen("commit", "-m", "data", check=True)
    packs = (workdir / ".oxen" / "objects" / "packs").rglob("*.pack")
    biggest = sorted(packs, key=lambda p: p.stat().st_size)[-1]
    biggest.unlink()
    proc = oxen("fsck")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert f"error: pack {biggest.stem} is indexed but missing from the store" in lines
    lost = [x for x in lines if x.endswith(f"is referenced but its pack {biggest.stem} is missing")]
    # small.txt's chunk and data.bin's chunk list: every hole, not only the first one met
    assert {x.split()[1] for x in lost} == {"chunk", "node"}
    assert f"{len(lines)} problem(s)" in proc.stdout


CRASH_POINTS = ["pack-stored", "add-transaction", "commit-objects", "commit-transaction"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_during_add_or_commit_leaves_a_working_repo(oxen, workdir: Path, point: str) -> None:
    oxen("init", check=True)
    write(workdir, "base.txt", "base")
    oxen("add", ".", check=True)
    oxen("commit", "-m", "base", check=True)
    rng = random.Random(point)
    for i in range(50):
        write(workdir, f"d/{i}.bin", rng.randbytes(3000))
    write(workdir, "big.bin", rng.randbytes(3_000_000))
    env = {**os.environ, "OXEN_CRASH_AT": point}
    step = (
        ["add", "."] if point in ("pack-stored", "add-transaction") else ["commit", "-m", "second"]
    )
    if step[0] == "commit":
        oxen("add", ".", check=True)
    crashed = subprocess.run([*OXEN, *step], cwd=workdir, env=env, capture_output=True, text=True)
    assert crashed.returncode == -9
    fsck = oxen("fsck")
    assert fsck.returncode == 0, fsck.stderr
    # the interrupted step is all or nothing, and running it again completes it
    log = oxen("log", "--oneline", check=True).stdout.splitlines()
    assert len(log) in (1, 2)
    if len(log) == 1:
        oxen("add", ".", check=True)
        oxen("commit", "-m", "second", check=True)
    st = json.loads(oxen("status", "--json", check=True).stdout)
    assert st["untracked"] == [] and st["staged_added"] == [] and st["modified"] == []
    assert oxen("fsck", check=True).returncode == 0
    (workdir / "big.bin").unlink()
    oxen("restore", "big.bin", check=True)
    assert (workdir / "big.bin").stat().st_size == 3_000_000


def test_token_files_are_private_from_their_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written 0600 from creation, not chmod-ed afterwards (a window where others could read)."""
    from oxen.config import save_auth_token, user_config_path
    from oxen.server.main import main as server_main

    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)  # no fixing the mode up afterwards
    old = os.umask(0o022)
    try:
        save_auth_token("127.0.0.1:3000", "oxn_secret")
        assert user_config_path().stat().st_mode & 0o777 == 0o600
        out = tmp_path / "ada.toml"
        args = ["add-user", "--email", "a@b.c", "--name", "A", "--output", str(out)]
        (tmp_path / "srv" / "store").mkdir(parents=True)  # as `oxen-server start` makes it
        with pytest.raises(SystemExit) as done:
            server_main([*args, "--data-dir", str(tmp_path / "srv")])
        assert done.value.code == 0
        assert out.stat().st_mode & 0o777 == 0o600
        assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    finally:
        os.umask(old)


def test_node_shows_the_file_ids_tree_and_info_print(oxen, workdir: Path) -> None:
    import json
    import random

    oxen("init", check=True)
    (workdir / "small.txt").write_text("small")
    (workdir / "big.bin").write_bytes(random.Random(1).randbytes(600_000))
    oxen("add", ".", check=True)
    oxen("commit", "-m", "files", check=True)
    for name, kind in (("small.txt", "chunk"), ("big.bin", "file")):
        fid = json.loads(oxen("info", name, "--json", check=True).stdout)["id"]
        shown = json.loads(oxen("node", fid, check=True).stdout)
        assert shown["type"] == kind and shown["id"] == fid
        assert shown["size"] == (workdir / name).stat().st_size
    assert json.loads(oxen("node", fid, check=True).stdout)["chunks"] > 1


def test_log_prints_any_date_a_commit_can_hold() -> None:
    from oxen.cli.history_commands import commit_date

    assert commit_date(0, 90) == "Thu Jan 01 01:30:00 1970 +0130"
    assert commit_date(1_700_000_000, -300) == "Tue Nov 14 17:13:20 2023 -0500"
    # a commit dated 2**56 or 2**63 s decodes (any 64-bit number does): `oxen log` was an
    # internal error (OSError, OverflowError), it now shows the seconds
    assert commit_date(2**56, 0) == f"@{2**56} +0000"
    assert commit_date(2**63, 2**40) == f"@{2**63} +{2**40 // 60:02d}{2**40 % 60:02d}"
