"""`oxen-server fsck` through the real command line, on a store a real server is serving."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write
from tests.sync.conftest import SERVER, Server, free_port
from tests.sync.test_sync_e2e import ok


def pushed(
    tmp_path: Path, server: Server, name: str = "team/data", env: dict[str, str] | None = None
) -> Path:
    """A repository of two commits on main, a second branch and a deleted third one,
    pushed to ``server``."""
    env = {**(env or {}), "OXEN_AUTH_HOST": server.host}  # the token is for that server
    a = tmp_path / "a"
    a.mkdir()
    ok(a, "init", env=env)
    ok(a, "create-remote", "--name", name, "--host", server.host, token=server.token, env=env)
    ok(a, "config", "--set-remote", "origin", server.url(name), env=env)
    rng = random.Random(7)
    for i in range(40):
        write(a, f"small/{i:02d}.txt", rng.randbytes(rng.randint(100, 3000)))
    write(a, "big.bin", rng.randbytes(400_000))
    for step in (["add", "."], ["commit", "-m", "one"]):
        ok(a, *step, env=env)
    write(a, "big.bin", rng.randbytes(400_000))
    write(a, "small/new.txt", "new")
    for step in (["add", "."], ["commit", "-m", "two"], ["push"], ["branch", "gone"]):
        ok(a, *step, token=server.token, env=env)
    ok(a, "push", "origin", "gone", token=server.token, env=env)
    ok(a, "push", "-d", "origin", "gone", token=server.token, env=env)
    for step in (["checkout", "-b", "side"], ["rm", "small/new.txt"], ["commit", "-m", "side"]):
        ok(a, *step, env=env)
    ok(a, "push", "origin", "side", token=server.token, env=env)
    return a


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server's data directory holding two pushed repositories (team/data, team/other),
    made once; the server is stopped."""
    root = tmp_path_factory.mktemp("fsck-template")
    config = root / "config"
    env = {**os.environ, "OXEN_CONFIG_DIR": str(config)}
    server = Server(f"127.0.0.1:{free_port()}", "", root / "server-data", None, env)
    server.data_dir.mkdir()
    server.start()
    server.token = server.add_user()
    try:
        ok(root, "config", "--name", "T", "--email", "t@example.com", env=env)
        for i, name in enumerate(("team/data", "team/other")):
            (root / str(i)).mkdir()
            pushed(root / str(i), server, name, env)
    finally:
        server.stop()
    return server.data_dir


@pytest.fixture
def data_dir(tmp_path: Path, template: Path) -> Path:
    """A copy of the template's data directory, to break."""
    copy = tmp_path / "server-data"
    shutil.copytree(template, copy)
    return copy


def server_fsck(
    data_dir: Path, *extra: str, storage: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [*SERVER, "fsck", "--data-dir", str(data_dir)]
    args += ["--storage", storage] if storage else []
    return subprocess.run(
        [*args, *extra], env=env or os.environ.copy(), capture_output=True, text=True, timeout=300
    )


def repo_dir(data_dir: Path, name: str = "team/data") -> Path:
    return data_dir / "store" / "repos" / name


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def test_a_pushed_repository_is_clean_while_served_and_nothing_is_written(
    tmp_path: Path, server: Server
) -> None:
    pushed(tmp_path, server)
    before = snapshot(server.data_dir)
    proc = server_fsck(server.data_dir, env=server.env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "checked 1 repositories" in proc.stdout and "2 branches, 3 commits" in proc.stdout
    assert proc.stdout.rstrip().endswith(": ok")
    assert snapshot(server.data_dir) == before  # read-only, with the server running
    report = json.loads(server_fsck(server.data_dir, "--json", env=server.env).stdout)
    assert report["problems"] == [] and report["branches"] == 2 and report["commits"] == 3
    assert report["objects"] > 40 and report["bytes"] > 800_000


@pytest.mark.s3
def test_a_pushed_repository_on_s3_is_clean(tmp_path: Path, s3_server: Server) -> None:
    pushed(tmp_path, s3_server)
    proc = server_fsck(s3_server.data_dir, storage=s3_server.storage, env=s3_server.env)
    assert proc.returncode == 0, proc.stderr
    assert "checked 1 repositories" in proc.stdout and "2 branches, 3 commits" in proc.stdout
    assert proc.stdout.rstrip().endswith(": ok")


def test_a_stopped_servers_store_is_clean(data_dir: Path) -> None:
    proc = server_fsck(data_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("checked 2 repositories")
    assert "4 branches, 6 commits" in proc.stdout  # the deleted branches are not branches
    only = server_fsck(data_dir, "--repo", "team/other", "--json")
    assert json.loads(only.stdout)["repositories"] == 1


def biggest_pack(data_dir: Path) -> Path:
    packs = (repo_dir(data_dir) / "packs").rglob("*.pack")
    return sorted(packs, key=lambda p: p.stat().st_size)[-1]


def one_line_problems(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("error: team/data: ") for line in lines), lines
    assert f"{len(lines)} problem(s)" in proc.stdout
    return lines


def test_a_corrupted_pack_byte_is_reported(data_dir: Path) -> None:
    pack = biggest_pack(data_dir)
    raw = bytearray(pack.read_bytes())
    raw[100] ^= 0xFF
    pack.write_bytes(bytes(raw))
    lines = one_line_problems(server_fsck(data_dir))
    assert any(
        f"in pack {pack.stem} is corrupt (its bytes do not match its id)" in x for x in lines
    )
    assert any("is reached from branch main but is corrupt" in x for x in lines)


def test_a_corrupted_pack_trailer_is_reported(data_dir: Path) -> None:
    pack = biggest_pack(data_dir)
    raw = bytearray(pack.read_bytes())
    raw[-1] ^= 0xFF  # the magic
    pack.write_bytes(bytes(raw))
    lines = one_line_problems(server_fsck(data_dir))
    assert f"error: team/data: pack {pack.stem} is corrupt: not a pack (bad magic)" in lines


def test_a_missing_pack_is_reported(data_dir: Path) -> None:
    biggest_pack(data_dir).unlink()
    lines = one_line_problems(server_fsck(data_dir))
    assert any("is reached from branch main but is not stored" in x for x in lines)


def test_a_branch_naming_a_missing_commit_is_reported(data_dir: Path) -> None:
    ghost = random.Random(3).randbytes(32).hex()
    (repo_dir(data_dir) / "refs" / "heads" / "ghost").write_text(ghost)
    (repo_dir(data_dir) / "refs" / "heads" / "junk").write_text("not a commit")
    lines = one_line_problems(server_fsck(data_dir))
    assert sorted(lines) == [
        f"error: team/data: branch ghost names commit {ghost}, which is not stored",
        "error: team/data: branch junk holds b'not a commit', not a commit id",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{", "repo.json is not valid JSON"),
        (b"[]", "repo.json is not a JSON object"),
        (None, "repo.json says format 1; this server reads format 2 only"),
    ],
)
def test_a_bad_repo_json_is_reported(data_dir: Path, body: bytes | None, expected: str) -> None:
    path = repo_dir(data_dir) / "repo.json"
    if body is None:  # as an older server wrote it
        data = json.loads(path.read_text())
        del data["format"]
        body = json.dumps(data).encode()
    path.write_bytes(body)
    lines = one_line_problems(server_fsck(data_dir))
    assert len(lines) == 1 and expected in lines[0], lines
    assert server_fsck(data_dir, "--repo", "team/other").returncode == 0


def test_unknown_repositories_and_stores(tmp_path: Path, data_dir: Path) -> None:
    missing = server_fsck(data_dir, "--repo", "team/nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no repository team/nope in this store"
    nowhere = server_fsck(tmp_path / "nowhere")
    assert nowhere.returncode == 1 and "no store at" in nowhere.stderr
    assert not (tmp_path / "nowhere").exists()


def test_what_is_wrong_with_a_repo_json() -> None:
    from oxen.serving.store_check import check_repo_json

    good = {"namespace": "ns", "name": "r", "created": 1, "incarnation": "ab", "format": 2}
    assert check_repo_json(json.dumps(good).encode(), "ns", "r") == []
    assert check_repo_json(None, "ns", "r") == [
        "is missing (other objects remain under the repository's prefix)"
    ]
    moved = check_repo_json(json.dumps(good).encode(), "ns", "other")
    assert moved == ["has name 'r', not 'other'"]
    bad = {**good, "created": "soon", "incarnation": "", "chunking": {"min_size": 1}}
    wrong = check_repo_json(json.dumps(bad).encode(), "ns", "r")
    assert [w.split(" ")[1] for w in wrong] == ["created", "incarnation", "invalid"]
    assert "chunking.min_size must be at least 64" in wrong[2]
