"""`oxen download` and ``oxen.download`` against a real `oxen-server`: one file of a
revision, checked against its id, written whole or not at all, with no repository here."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import oxen
from oxen.errors import NotFound
from tests.conftest import write
from tests.sync import test_file_route
from tests.sync.conftest import Server
from tests.sync.test_file_route import BIG_ID, FEATURE, TABLE, V1, V2
from tests.sync.test_sync_e2e import ok, run

pushed = test_file_route.pushed  # the same fixture: team/files, two commits on main


def test_download_at_a_branch_an_older_commit_and_a_branch_with_a_slash(
    tmp_path: Path, server: Server, pushed: dict[str, str]
) -> None:
    url = server.url("team/files")
    here = tmp_path / "elsewhere"  # no repository anywhere above: none is needed
    here.mkdir()
    out = ok(here, "download", url, "big.bin", token=server.token)
    assert (here / "big.bin").read_bytes() == V2
    assert "wrote" in out and pushed["two"][:10] in out
    ok(here, "download", url, "big.bin", "--rev", pushed["one"], "-o", "v1.bin", token=server.token)
    assert (here / "v1.bin").read_bytes() == V1
    ok(here, "download", url, "big.bin", "--rev", "feature/x", "-o", "f.bin", token=server.token)
    assert (here / "f.bin").read_bytes() == FEATURE
    (here / "sub").mkdir()
    ok(here, "download", url, "docs/readme.txt", "-o", "sub", token=server.token)
    assert (here / "sub" / "readme.txt").read_text() == "hello\n"
    ok(here, "download", url, "empty.bin", token=server.token)
    assert (here / "empty.bin").read_bytes() == b""

    again = run(here, "download", url, "big.bin", "--rev", pushed["one"], token=server.token)
    assert again.returncode == 1 and "exists: pass --force" in again.stderr
    assert (here / "big.bin").read_bytes() == V2  # kept
    ok(here, "download", url, "big.bin", "--rev", pushed["one"], "--force", token=server.token)
    assert (here / "big.bin").read_bytes() == V1
    assert sorted(p.name for p in here.iterdir()) == [
        "big.bin",
        "empty.bin",
        "f.bin",
        "sub",
        "v1.bin",
    ]  # no temporary file left


def test_the_python_api_downloads_too(
    tmp_path: Path, server: Server, pushed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    result = oxen.download(server.url("team/files"), "big.bin", out=tmp_path / "x.bin")
    assert (tmp_path / "x.bin").read_bytes() == V2
    assert result.id.hex() == BIG_ID and result.commit.hex() == pushed["two"]
    with pytest.raises(NotFound, match="no file nope.bin at main"):
        oxen.download(server.url("team/files"), "nope.bin", out=tmp_path / "y")
    assert not (tmp_path / "y").exists()


def test_a_reader_may_download_and_no_token_may_not(
    tmp_path: Path, server: Server, pushed: dict[str, str]
) -> None:
    reader = server.add_user("--role", "reader", "--namespace", "team")
    ok(tmp_path, "download", server.url("team/files"), "table.csv", token=reader)
    assert (tmp_path / "table.csv").read_bytes() == TABLE
    refused = run(tmp_path, "download", server.url("team/files"), "big.bin", token="")
    assert refused.returncode == 1 and "token" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "big.bin").exists()


def test_a_missing_path_or_revision_is_one_line_and_exit_1(
    tmp_path: Path, server: Server, pushed: dict[str, str]
) -> None:
    url = server.url("team/files")
    for args, message in [
        (["nope/x.bin"], "no file nope/x.bin at main"),
        (["big.bin", "--rev", "no-such-branch"], "no branch or commit no-such-branch"),
        (["docs"], "docs is a directory"),
        (["../big.bin"], "unsafe path"),
        (["big.bin", "-o", "no/such/folder/x"], "no folder"),
    ]:
        proc = run(tmp_path, "download", url, *args, token=server.token)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert list(tmp_path.glob("*.bin")) == []


def test_a_chunk_corrupt_in_the_store_cuts_the_answer_off(
    tmp_path: Path, server: Server, pushed: dict[str, str]
) -> None:
    """Found while reading (after the answer began): the connection is closed short of
    its length, and the client keeps nothing."""
    a = tmp_path / "big"
    a.mkdir()
    data = random.Random(8).randbytes(6_000_000)
    ok(a, "init")
    ok(a, "create-remote", "--name", "team/big", "--host", server.host, token=server.token)
    ok(a, "config", "--set-remote", "origin", server.url("team/big"))
    write(a, "big.bin", data)
    ok(a, "add", ".")
    ok(a, "commit", "-m", "big")
    ok(a, "push", token=server.token)
    last = data[-4000:]  # in the file's last chunk: read in the second window of 4 MiB
    packs = list((server.data_dir / "store" / "repos" / "team" / "big").rglob("*.pack"))
    holder = next(p for p in packs if last in p.read_bytes())
    raw = bytearray(holder.read_bytes())
    raw[raw.index(last) + 100] ^= 0xFF
    holder.write_bytes(bytes(raw))
    proc = run(tmp_path, "download", server.url("team/big"), "big.bin", token=server.token)
    assert proc.returncode == 1 and "cut off" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "big.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".big.bin")] == []
    ok(tmp_path, "download", server.url("team/files"), "table.csv", token=server.token)
    log = (server.data_dir.parent / f"server-{server.host.split(':')[1]}.log").read_text()
    assert "read of /api/repos/team/big/files/big.bin cut off: CorruptObject" in log
    assert "Traceback" not in log
