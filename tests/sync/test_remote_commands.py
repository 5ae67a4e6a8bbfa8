"""`oxen remote add|remove|rename` beside `oxen remote [-v]` and `oxen config --set-remote`:
remote-tracking branches go and move with their remote; every refusal is one line."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import write
from tests.sync.conftest import Server
from tests.sync.test_sync_e2e import new_repo, ok, run


def refused(cwd: Path, *args: str, message: str) -> None:
    proc = run(cwd, *args)
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_remote_add_rename_remove(tmp_path: Path, server: Server) -> None:
    a = new_repo(tmp_path, server, "team/remotes")  # origin, set with config --set-remote
    url = server.url("team/remotes")
    write(a, "f.txt", "1")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=server.token)
    ok(a, "checkout", "-b", "feature/x")
    ok(a, "push", "origin", "feature/x", token=server.token)
    assert ok(a, "branch", "-r").split() == ["origin/feature/x", "origin/main"]

    refused(a, "remote", "add", "origin", url, message="remote origin already exists")
    for name in ("bad/name", "a b", "", ".x", "a..b"):
        refused(a, "remote", "add", name, url, message="invalid remote name")
    refused(a, "remote", "add", "up", "not-a-url", message="not a remote repository URL")
    ok(a, "remote", "add", "backup", url + "-copy")
    assert ok(a, "remote").split() == ["backup", "origin"]
    assert f"backup\t{url}-copy" in ok(a, "remote", "-v")

    moved = ok(a, "remote", "rename", "origin", "upstream")
    assert "2 remote-tracking branch(es) moved" in moved
    assert ok(a, "branch", "-r").split() == ["upstream/feature/x", "upstream/main"]
    assert f"upstream\t{url}" in ok(a, "remote", "-v")
    ok(a, "fetch", "upstream", token=server.token)  # the renamed remote works as before
    assert ok(a, "branch", "-r").split() == ["upstream/feature/x", "upstream/main"]
    refused(a, "remote", "rename", "upstream", "backup", message="remote backup already exists")
    refused(a, "remote", "rename", "nope", "other", message="no remote named 'nope'")
    refused(a, "remote", "rename", "upstream", "x/y", message="invalid remote name")

    removed = ok(a, "remote", "remove", "upstream")
    assert "its 2 remote-tracking branch(es)" in removed
    assert "upstream/" not in ok(a, "branch", "-r")
    assert ok(a, "remote").split() == ["backup"]
    refused(a, "remote", "remove", "upstream", message="no remote named 'upstream'")
    refused(a, "push", "upstream", message="no remote named 'upstream'")

    ok(a, "config", "--set-remote", "backup", url)  # still sets (and changes) a URL
    assert f"backup\t{url}" in ok(a, "remote", "-v")
    ok(a, "fetch", "backup", token=server.token)
    assert ok(a, "branch", "-r").split() == ["backup/feature/x", "backup/main"]


def test_remote_commands_need_a_repository_and_their_arguments(tmp_path: Path) -> None:
    refused(tmp_path, "remote", "add", "origin", "http://h/a/b", message="not an oxen repository")
    proc = run(tmp_path, "remote", "add", "origin")
    assert proc.returncode == 2 and "usage: oxen remote add" in proc.stderr
    proc = run(tmp_path, "remote", "-h")
    assert "oxen remote add NAME URL" in proc.stdout
