"""push / clone / pull between real `oxen` processes through a real `oxen-server`."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import OXEN, write
from tests.sync.conftest import Server


def run(
    cwd: Path, *args: str, token: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if token is not None:
        full_env["OXEN_AUTH_TOKEN"] = token
    return subprocess.run(
        [*OXEN, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600
    )


def ok(cwd: Path, *args: str, token: str | None = None, env: dict[str, str] | None = None) -> str:
    proc = run(cwd, *args, token=token, env=env)
    assert proc.returncode == 0, f"oxen {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def sent_bytes(output: str) -> int:
    m = re.search(r"sent (\d+) bytes", output)
    assert m, output
    return int(m.group(1))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".oxen" not in p.relative_to(root).parts
    }


def make_table(rows: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [
        f"{i},{rng.random():.12f},{rng.getrandbits(64):x},{rng.choice('abcdef') * 8}\n".encode()
        for i in range(rows)
    ]


def new_repo(tmp: Path, server: Server, name: str) -> Path:
    a = tmp / "a"
    a.mkdir()
    ok(a, "init")
    ok(a, "create-remote", "--name", name, "--host", server.host, token=server.token)
    ok(a, "config", "--set-remote", "origin", server.url(name))
    return a


def round_trip(tmp_path: Path, server: Server) -> None:
    a = new_repo(tmp_path, server, "team/data")
    rng = random.Random(4)
    for i in range(120):
        write(a, f"images/{i:03d}.jpg", rng.randbytes(rng.randint(2000, 20000)))
    rows = make_table(60_000)
    write(a, "table.csv", b"".join(rows))
    ok(a, "add", ".")
    ok(a, "commit", "-m", "v1")
    first = ok(a, "push", token=server.token)
    assert "main: (new branch)" in first

    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("team/data"), str(b), token=server.token)
    assert tree_bytes(b) == tree_bytes(a)

    # change on b (a few rows of the large file, one image), push; pull on a
    rows[30_000] = b"30000,changed\n"
    rows.extend(b"%d,appended\n" % i for i in range(600))
    write(b, "table.csv", b"".join(rows))
    write(b, "images/000.jpg", b"new image bytes")
    (b / "images" / "001.jpg").unlink()
    ok(b, "add", ".")
    ok(b, "commit", "-m", "v2")
    second = ok(b, "push", token=server.token)
    assert sent_bytes(second) < 600_000  # a few chunks and nodes, not the 2.8 MB file
    ok(a, "pull", token=server.token)
    assert tree_bytes(a) == tree_bytes(b)
    assert ok(a, "log", "--oneline").count("\n") == 2
    assert "ok" in ok(a, "fsck")


def test_push_clone_change_push_pull_local_disk(tmp_path: Path, server: Server) -> None:
    round_trip(tmp_path, server)


@pytest.mark.s3
def test_push_clone_change_push_pull_s3(tmp_path: Path, s3_server: Server) -> None:
    round_trip(tmp_path, s3_server)


@pytest.mark.s3
def test_second_server_on_an_empty_disk_serves_the_same_bucket(
    tmp_path: Path, s3_server: Server, make_server
) -> None:
    a = new_repo(tmp_path, s3_server, "ns/shared")
    write(a, "x/data.bin", random.Random(9).randbytes(300_000))
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=s3_server.token)
    other = make_server(storage=s3_server.storage, env=s3_server.env)  # fresh data dir, same bucket
    b = tmp_path / "b"
    # the token issued by the first server works: users live in the bucket too
    ok(tmp_path, "clone", other.url("ns/shared"), str(b), token=s3_server.token)
    assert tree_bytes(b) == tree_bytes(a)
    write(b, "x/more.bin", b"more")
    ok(b, "add", ".")
    ok(b, "commit", "-m", "two")
    ok(b, "push", token=s3_server.token)  # pushed through the second server
    ok(a, "pull", token=s3_server.token)  # pulled through the first
    assert tree_bytes(a) == tree_bytes(b)


def test_racing_pushes_lose_no_commit(tmp_path: Path, server: Server) -> None:
    a = new_repo(tmp_path, server, "ns/race")
    write(a, "base.txt", "base")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "base")
    ok(a, "push", token=server.token)
    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("ns/race"), str(b), token=server.token)
    write(a, "from-a.txt", "a")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "from a")
    write(b, "from-b.txt", "b")
    ok(b, "add", ".")
    ok(b, "commit", "-m", "from b")
    procs = [
        subprocess.Popen(
            [*OXEN, "push"],
            cwd=d,
            env={**os.environ, "OXEN_AUTH_TOKEN": server.token},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for d in (a, b)
    ]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    # Different paths: whichever lands second pushes a merge on top of the first.
    assert [code for code, _, _ in results] == [0, 0], results
    assert sum("pushed a merge" in out for _, out, _ in results) <= 1, results
    c = tmp_path / "c"
    ok(tmp_path, "clone", server.url("ns/race"), str(c), token=server.token)
    assert (c / "from-a.txt").read_text() == "a" and (c / "from-b.txt").read_text() == "b"
    log = ok(c, "log", "--oneline")
    assert "from a" in log and "from b" in log and "base" in log
    for d in (a, b):  # both pull to the same commit, each with the other's file
        ok(d, "pull", token=server.token)
        assert tree_bytes(d) == tree_bytes(c)


def test_interrupted_push_resends_only_what_is_missing(tmp_path: Path, server: Server) -> None:
    a = new_repo(tmp_path, server, "ns/resume")
    write(a, "big.bin", random.Random(5).randbytes(40_000_000))
    ok(a, "add", ".")
    ok(a, "commit", "-m", "big")
    # one request in flight: the process dies right after the first ~16 MiB pack is stored
    crashed = run(a, "push", "-j", "1", token=server.token, env={"OXEN_CRASH_AT": "push-pack-sent"})
    assert crashed.returncode == -9
    second = ok(a, "push", token=server.token)
    sent = sent_bytes(second)
    assert 40_000_000 - 17_500_000 < sent < 40_000_000 - 16_000_000
    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("ns/resume"), str(b), token=server.token)
    assert tree_bytes(b) == tree_bytes(a)


def test_push_delete_branch_and_not_fast_forward(tmp_path: Path, server: Server) -> None:
    a = new_repo(tmp_path, server, "ns/branches")
    write(a, "f", "1")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "1")
    ok(a, "push", token=server.token)
    ok(a, "checkout", "-b", "exp")
    ok(a, "push", "origin", "exp", token=server.token)
    ok(a, "push", "origin", "-d", "exp", token=server.token)  # the README's order
    assert "origin/exp" not in ok(a, "branch", "-r")  # the tracking ref went too
    ok(a, "push", "origin", "exp", token=server.token)
    ok(a, "push", "-d", "origin", "exp", token=server.token)  # git's other order
    bare = run(a, "push", "origin", "-d", token=server.token)  # no branch: never the current
    assert bare.returncode == 1 and "needs the branch" in bare.stderr
    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("ns/branches"), str(b), token=server.token)
    write(b, "f", "from b")
    ok(b, "add", ".")
    ok(b, "commit", "-m", "b")
    ok(b, "push", token=server.token)
    ok(a, "checkout", "main")
    write(a, "f", "from a")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "a")
    refused = run(a, "push", token=server.token)
    assert refused.returncode == 1 and "pull" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_auth_token_from_config_and_wrong_tokens(tmp_path: Path, server: Server) -> None:
    a = tmp_path / "a"
    a.mkdir()
    ok(a, "init")
    no_token = run(
        a, "create-remote", "--name", "ns/x", "--host", server.host, env={"OXEN_AUTH_TOKEN": ""}
    )
    assert no_token.returncode == 1 and "token" in no_token.stderr
    bad = run(a, "create-remote", "--name", "ns/x", "--host", server.host, token="oxn_wrong")
    assert bad.returncode == 1 and "token" in bad.stderr
    ok(a, "config", "--auth", server.host, server.token)
    ok(a, "create-remote", "--name", "ns/x", "--host", server.host, env={"OXEN_AUTH_TOKEN": ""})


def test_a_clone_holds_only_the_tips_data_and_fscks_clean(tmp_path: Path, server: Server) -> None:
    """A clone has every commit and tree but only the branch tip's data (unless --all):
    fsck must not call the older versions' chunks missing."""
    a = new_repo(tmp_path, server, "team/partial")
    rng = random.Random(11)
    for step in range(2):
        write(a, "big.bin", rng.randbytes(400_000))  # a new version: new chunks, a new list
        write(a, f"small{step}.txt", rng.randbytes(3000))
        ok(a, "add", ".")
        ok(a, "commit", "-m", f"v{step}")
    ok(a, "push", token=server.token)
    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("team/partial"), str(b), token=server.token)
    fsck = run(b, "fsck")
    assert fsck.returncode == 0, fsck.stderr
    assert "2 commits" in fsck.stdout
    (b / ".oxen" / "objects" / "packs").rename(b / ".oxen" / "objects" / "gone")
    broken = run(b, "fsck")  # the tip's data is still required
    assert broken.returncode == 1 and "big.bin" not in broken.stderr
    assert "is referenced but its pack" in broken.stderr


def test_a_clone_killed_midway_is_started_over_by_the_next_one(
    tmp_path: Path, server: Server
) -> None:
    a = new_repo(tmp_path, server, "team/killed")
    write(a, "data.bin", random.Random(12).randbytes(300_000))
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=server.token)
    url = server.url("team/killed")
    b = tmp_path / "b"
    killed = run(
        tmp_path, "clone", url, str(b), token=server.token, env={"OXEN_CRASH_AT": "clone-history"}
    )
    assert killed.returncode == -9
    assert (b / ".oxen" / "clone-incomplete").exists()  # SIGKILL: nothing could clean up
    ok(tmp_path, "clone", url, str(b), token=server.token)
    assert tree_bytes(b) == tree_bytes(a)
    assert not (b / ".oxen" / "clone-incomplete").exists()
    assert "ok" in ok(b, "fsck")
    refused = run(tmp_path, "clone", url, str(b), token=server.token)  # a finished clone stays
    assert refused.returncode == 1 and "destination exists and is not empty" in refused.stderr


def test_a_pull_killed_midway_leaves_nothing_the_next_add_takes(
    tmp_path: Path, server: Server
) -> None:
    a = new_repo(tmp_path, server, "team/pulled")
    rng = random.Random(13)
    write(a, "data.bin", rng.randbytes(300_000))
    write(a, "notes.txt", "v1")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=server.token)
    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("team/pulled"), str(b), token=server.token)
    write(a, "data.bin", rng.randbytes(300_000))
    write(a, "notes.txt", "v2")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=server.token)
    crash = {"OXEN_CRASH_AT": "pull-files-written"}
    killed = run(b, "pull", token=server.token, env=crash)
    assert killed.returncode == -9  # the new files are written, not yet renamed into place
    assert (b / "notes.txt").read_text() == "v1"
    left = sorted(p.name for p in b.glob(".*.tmp"))
    assert len(left) == 2 and left[0].startswith(".data.bin.oxen-")  # SIGKILL: no clean-up
    status = json.loads(ok(b, "status", "--json"))  # never taken for the user's files
    assert status["untracked"] == [] and status["modified"] == []
    ok(b, "log")  # the next command to open the repository removes them
    assert list(b.glob(".*.tmp")) == []
    assert list((b / ".oxen" / "pending").iterdir()) == []
    ok(b, "add", ".")
    assert "nothing to commit" in run(b, "commit", "-m", "junk?").stderr
    ok(b, "pull", token=server.token)
    assert tree_bytes(b) == tree_bytes(a)  # and no temporary file is left beside them
