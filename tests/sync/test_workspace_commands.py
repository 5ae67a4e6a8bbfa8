"""`oxen workspace`, `oxen upload` and pushes without a pull, through a real server."""

from __future__ import annotations

import json
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import write
from tests.sync.conftest import Server
from tests.sync.test_sync_e2e import new_repo, ok, run, tree_bytes


def test_a_workspace_sends_only_changed_chunks_and_commits_on_the_server(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    a = new_repo(tmp_path, server, "team/ws")
    data = bytearray(random.Random(3).randbytes(8_000_000))
    write(a, "data/big.bin", bytes(data))
    write(a, "notes/a.txt", "a")
    write(a, "notes/b.txt", "b")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "base")
    ok(a, "push", token=server.token)
    url = server.url("team/ws")

    made = json.loads(ok(tmp_path, "workspace", "create", url, "--name", "edit", "--json"))
    assert made["branch"] == "main" and made["name"] == "edit"
    local = tmp_path / "upload"
    data[4_000_000:4_000_100] = b"x" * 100  # a few bytes mid-file
    write(local, "big.bin", bytes(data))
    write(local, "new.csv", "id,label\n1,cat\n2,dog\n")
    added = json.loads(
        ok(tmp_path, "workspace", "add", url, "-w", "edit", str(local / "big.bin"),
           str(local / "new.csv"), "--dst", "data", "--json")
    )  # fmt: skip
    assert sorted(added["files"]) == ["data/big.bin", "data/new.csv"]
    assert added["bytes_sent"] < 600_000  # a few chunks of 8 MB, not the file
    ok(tmp_path, "workspace", "rm", url, "-w", "edit", "notes/b.txt")
    status = json.loads(ok(tmp_path, "workspace", "status", url, "-w", "edit", "--json"))
    assert (status["added"], status["modified"], status["removed"]) == (
        ["data/new.csv"], ["data/big.bin"], ["notes/b.txt"]
    )  # fmt: skip
    listed = ok(tmp_path, "workspace", "ls", url, "-w", "edit", "data")
    assert "big.bin" in listed and "new.csv" in listed

    # meanwhile the branch moves at another path: the commit goes on top of it
    write(a, "notes/a.txt", "a, moved")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "moved")
    ok(a, "push", token=server.token)
    done = ok(tmp_path, "workspace", "commit", url, "-w", "edit", "-m", "from a workspace")
    assert done.startswith("[main ") and "from a workspace" in done
    c = tmp_path / "c"
    ok(tmp_path, "clone", url, str(c), token=server.token)
    assert (c / "data" / "big.bin").read_bytes() == bytes(data)
    assert (c / "notes" / "a.txt").read_text() == "a, moved"
    assert not (c / "notes" / "b.txt").exists()
    assert "(2 rows of 2, 2 columns)" in ok(c, "df", "data/new.csv")
    info = json.loads(ok(c, "info", "data/new.csv", "--json"))  # its schema, made at add
    assert info["format"] == "csv" and info["rows"] == 2
    log = ok(c, "log", "--oneline")
    assert "from a workspace" in log and "moved" in log

    # a staged path the branch changes meanwhile: refused with the path, workspace kept
    write(local, "a.txt", "workspace's")
    ok(tmp_path, "workspace", "add", url, "-w", "edit", str(local / "a.txt"), "--dst", "notes")
    write(c, "notes/a.txt", "clone's")
    ok(c, "add", ".")
    ok(c, "commit", "-m", "clone's a")
    ok(c, "push", token=server.token)
    refused = run(tmp_path, "workspace", "commit", url, "-w", "edit", "-m", "overlaps")
    assert refused.returncode == 1 and "notes/a.txt" in refused.stderr
    assert "Traceback" not in refused.stderr
    status = json.loads(ok(tmp_path, "workspace", "status", url, "-w", "edit", "--json"))
    assert status["modified"] == ["notes/a.txt"] and status["branch_moved"]
    listed = json.loads(ok(tmp_path, "workspace", "list", url, "--json"))
    assert [w["name"] for w in listed] == ["edit"]
    ok(tmp_path, "workspace", "delete", url, "-w", "edit")
    assert json.loads(ok(tmp_path, "workspace", "list", url, "--json")) == []


def test_upload_commits_files_without_a_clone(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    url = server.url("team/up")
    ok(tmp_path, "create-remote", "--name", "team/up", "--host", server.host, token=server.token)
    local = tmp_path / "local"
    write(local, "images/1.jpg", random.Random(1).randbytes(30_000))
    write(local, "images/2.jpg", random.Random(2).randbytes(30_000))
    out = ok(tmp_path, "upload", url, str(local / "images"), "-m", "first images")
    assert out.startswith("[main ") and "2 file(s)" in out  # a new branch, from nothing
    write(local, "README.md", "# data")
    ok(tmp_path, "upload", url, str(local / "README.md"), "-m", "readme", "--dst", "docs")
    assert json.loads(ok(tmp_path, "workspace", "list", url, "--json")) == []
    c = tmp_path / "c"
    ok(tmp_path, "clone", url, str(c), token=server.token)
    assert tree_bytes(c) == {
        "images/1.jpg": (local / "images/1.jpg").read_bytes(),
        "images/2.jpg": (local / "images/2.jpg").read_bytes(),
        "docs/README.md": b"# data",
    }
    missing = run(tmp_path, "upload", url, str(local / "nope"), "-m", "x")
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_workspaces_need_write_access(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    url = server.url("team/ro")
    ok(tmp_path, "create-remote", "--name", "team/ro", "--host", server.host, token=server.token)
    reader = server.add_user("--role", "reader")
    refused = run(tmp_path, "workspace", "create", url, token=reader)
    assert refused.returncode == 1 and "permission denied" in refused.stderr
    unknown = run(tmp_path, "workspace", "status", url, "-w", "nope")
    assert unknown.returncode == 1 and "no workspace" in unknown.stderr


def test_row_edits_in_a_workspace(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    a = new_repo(tmp_path, server, "team/rows")
    n = 50_000
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "score": [i / 4 for i in range(n)],
            "label": [f"l{i % 7}" for i in range(n)],
        }
    )
    pq.write_table(table, a / "t.parquet")
    write(a, "small.csv", "id,label\n1,cat\n2,dog\n3,eel\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "tables")
    ok(a, "push")
    url = server.url("team/rows")
    wid = json.loads(ok(tmp_path, "workspace", "create", url, "--json"))["id"]
    edits = tmp_path / "edits"
    write(edits, "update.jsonl", '{"id": 10, "score": -1.0}\n{"id": 20, "score": -2.0}\n')
    write(edits, "delete.jsonl", '{"id": 0}\n{"id": 1}\n')
    write(edits, "append.jsonl", '{"id": 50000, "score": 9.5, "label": "new"}\n')
    done = json.loads(
        ok(tmp_path, "workspace", "edit", url, "-w", wid, "t.parquet", "--keys", "id",
           "--update", str(edits / "update.jsonl"), "--delete", str(edits / "delete.jsonl"),
           "--append", str(edits / "append.jsonl"), "--json")
    )  # fmt: skip
    assert done == {"appended": 1, "updated": 2, "deleted": 2, "rows": n - 2 + 1}
    page = json.loads(
        ok(tmp_path, "workspace", "df", url, "-w", wid, "t.parquet", "--limit", "10", "--json")
    )
    assert [r["id"] for r in page["rows"]][:3] == [2, 3, 4] and page["total_rows"] == n - 1
    write(edits, "csv.jsonl", '{"id": 4, "label": "fox"}\n')
    ok(
        tmp_path,
        "workspace",
        "edit",
        url,
        "-w",
        wid,
        "small.csv",
        "--append",
        str(edits / "csv.jsonl"),
    )
    absent = run(tmp_path, "workspace", "edit", url, "-w", wid, "t.parquet", "--keys", "id",
                 "--delete", str(edits / "missing.jsonl"))  # fmt: skip
    assert absent.returncode == 1 and "cannot read rows from" in absent.stderr
    assert "Traceback" not in absent.stderr
    write(edits, "missing.jsonl", '{"id": 123456789}\n')
    unknown = run(tmp_path, "workspace", "edit", url, "-w", wid, "t.parquet", "--keys", "id",
                  "--delete", str(edits / "missing.jsonl"))  # fmt: skip
    assert unknown.returncode == 1 and "no row has the key 123456789" in unknown.stderr
    write(edits, "bad.jsonl", '{"id": 5, "nope": 1}\n')
    bad = run(tmp_path, "workspace", "edit", url, "-w", wid, "t.parquet", "--keys", "id",
              "--update", str(edits / "bad.jsonl"))  # fmt: skip
    assert bad.returncode == 1 and "no column 'nope'" in bad.stderr
    ok(tmp_path, "workspace", "commit", url, "-w", wid, "-m", "edited rows")

    ok(a, "pull")
    got = pq.read_table(a / "t.parquet")
    assert got.num_rows == n - 1 and got.column("id").to_pylist()[:2] == [2, 3]
    by_id = dict(zip(got.column("id").to_pylist(), got.column("score").to_pylist(), strict=True))
    assert by_id[10] == -1.0 and by_id[20] == -2.0 and by_id[50000] == 9.5 and by_id[30] == 7.5
    assert (a / "small.csv").read_text().splitlines()[-1].replace('"', "") == "4,fox"
    info = json.loads(ok(a, "info", "t.parquet", "--json"))
    assert info["rows"] == n - 1 and not info["pages"].startswith("fixed-size")


@pytest.mark.s3
def test_two_servers_on_one_bucket_share_workspaces_and_racing_commits_all_land(
    tmp_path: Path, s3_server: Server, make_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OXEN_AUTH_TOKEN", s3_server.token)
    other = make_server(storage=s3_server.storage, env=s3_server.env)
    first, second = s3_server.url("team/race"), other.url("team/race")
    ok(tmp_path, "create-remote", "--name", "team/race", "--host", s3_server.host)
    local = tmp_path / "local"
    write(local, "base.txt", "base")
    ok(tmp_path, "upload", first, str(local / "base.txt"), "-m", "base")

    # made through one server, changed and committed through the other
    wid = json.loads(ok(tmp_path, "workspace", "create", first, "--json"))["id"]
    write(local, "a.txt", "a")
    ok(tmp_path, "workspace", "add", second, "-w", wid, str(local / "a.txt"))
    ok(tmp_path, "workspace", "commit", first, "-w", wid, "-m", "a")

    # two clients, one per server, five uploads each at once: every one lands first time
    def client(c: int, url: str) -> list[subprocess.CompletedProcess[str]]:
        done = []
        for i in range(5):
            write(local, f"c{c}/f{i}.txt", f"{c}-{i}")
            done.append(
                run(
                    tmp_path,
                    "upload",
                    url,
                    str(local / f"c{c}/f{i}.txt"),
                    "--dst",
                    f"c{c}",
                    "-m",
                    f"client {c} file {i}",
                )  # fmt: skip
            )
        return done

    with ThreadPoolExecutor(2) as pool:
        results = [
            p
            for f in [pool.submit(client, 0, first), pool.submit(client, 1, second)]
            for p in f.result()
        ]
    assert all(p.returncode == 0 for p in results), [p.stderr for p in results if p.returncode]
    c = tmp_path / "c"
    ok(tmp_path, "clone", second, str(c))
    assert sorted(p.relative_to(c).as_posix() for p in c.rglob("*.txt")) == sorted(
        ["a.txt", "base.txt"] + [f"c{n}/f{i}.txt" for n in (0, 1) for i in range(5)]
    )
    log = ok(c, "log", "--oneline")
    assert all(f"client {n} file {i}" in log for n in (0, 1) for i in range(5))
