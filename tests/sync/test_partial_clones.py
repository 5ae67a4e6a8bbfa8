"""Partial clones through the real `oxen` CLI and server: --no-data, --subtree, --depth,
fetch-data / drop-data, data fetched on demand, --offline refusing before any change."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from tests.conftest import write
from tests.sync.conftest import Server
from tests.sync.test_sync_e2e import new_repo, ok, run, tree_bytes


def received(output: str) -> int:
    m = re.search(r"received (\d+) bytes", output)
    assert m, output
    return int(m.group(1))


@pytest.fixture
def origin(tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A pushed repository: images/ and labels/ (40 KiB files), big.bin (600 KB), three
    commits, each changing one image, one label and big.bin."""
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)  # every command's, for this server
    a = new_repo(tmp_path, server, "team/partial")
    rng = random.Random(5)
    for step in range(3):
        for i in range(4):
            if step == 0 or i == step:
                write(a, f"images/img{i}.png", rng.randbytes(40_000))
                write(a, f"labels/l{i}.csv", rng.randbytes(40_000))
        write(a, "big.bin", rng.randbytes(600_000))
        ok(a, "add", ".")
        ok(a, "commit", "-m", f"v{step}")
    ok(a, "push", token=server.token)
    return a, server.url("team/partial")


def files_of(root: Path) -> set[str]:
    return set(tree_bytes(root))


def test_no_data_clone_holds_history_and_fetches_what_it_is_asked(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    a, url = origin
    b = tmp_path / "b"
    out = ok(tmp_path, "clone", "--no-data", url, str(b))
    assert "holds no file data" in out
    assert received(out) < 0.05 * sum(len(v) for v in tree_bytes(a).values())
    assert files_of(b) == set()
    status = ok(b, "status")
    assert "Partial clone: holds no file data" in status and "working tree clean" in status
    assert len(ok(b, "log", "--oneline").splitlines()) == 3
    assert "big.bin" in ok(b, "info", "big.bin")  # metadata, no data needed

    out = ok(b, "fetch-data", "images")
    assert "wrote 4 file(s)" in out
    assert {p: v for p, v in tree_bytes(b).items()} == {
        p: v for p, v in tree_bytes(a).items() if p.startswith("images/")
    }
    assert "working tree clean" in ok(b, "status")

    # an older commit: only the images it changed come, on demand; labels stay absent
    before = tree_bytes(b)
    refused = run(b, "checkout", "--offline", "HEAD~2")
    assert refused.returncode == 1 and "nothing was changed" in refused.stderr
    assert "fetch-data" in refused.stderr and "Traceback" not in refused.stderr
    assert tree_bytes(b) == before and "On branch main" in ok(b, "status")
    assert "--detach" in run(b, "switch", "HEAD~2").stderr  # switch is for branches
    ok(b, "switch", "--detach", "HEAD~2")
    assert files_of(b) == {f"images/img{i}.png" for i in range(4)}
    assert "Switched to branch 'main'" in ok(b, "switch", "main")
    assert tree_bytes(b) == before


def test_subtree_clone_commits_and_pushes_keeping_what_it_does_not_hold(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    a, url = origin
    full = sum(len(v) for v in tree_bytes(a).values())
    b = tmp_path / "b"
    out = ok(tmp_path, "clone", "--subtree", "images", url, str(b))
    assert "the data of images only" in out
    assert files_of(b) == {f"images/img{i}.png" for i in range(4)}
    assert received(out) < 0.4 * full
    write(b, "images/img0.png", b"relabelled")
    write(b, "images/new.png", b"new image")
    write(b, "notes/readme.txt", b"a new folder, outside the subtree")
    ok(b, "add", "images", "notes")
    status = ok(b, "status")
    assert "new file:  notes/readme.txt" in status and "Untracked" not in status
    ok(b, "commit", "-m", "edit images in a subtree clone")
    assert "working tree clean" in ok(b, "status")
    ok(b, "push")

    c = tmp_path / "c"
    ok(tmp_path, "clone", url, str(c))
    want = tree_bytes(a)
    want["images/img0.png"] = b"relabelled"
    want["images/new.png"] = b"new image"
    want["notes/readme.txt"] = b"a new folder, outside the subtree"
    assert tree_bytes(c) == want
    assert ok(c, "fsck").rstrip().endswith(": ok")
    # the subtree clone: what it lacks is held by the remote, and offline it says so
    fsck = ok(b, "fsck")
    assert "not held here and are held by the remote" in fsck and fsck.rstrip().endswith("ok")
    assert "run online to check" in ok(b, "fsck", "--offline")


def test_depth_clone_stays_shallow_and_can_push(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    a, url = origin
    b = tmp_path / "b"
    out = ok(tmp_path, "clone", "--depth", "1", url, str(b))
    assert "history back to the clone's depth" in out
    assert tree_bytes(b) == tree_bytes(a)
    log = run(b, "log", "--oneline")
    assert len(log.stdout.splitlines()) == 1 and "--depth" in log.stderr
    short = log.stdout.split()[0]  # an abbreviated id resolves without the older history
    ok(b, "checkout", "--offline", short)
    ok(b, "checkout", "--offline", "main")
    assert "1 commits: ok" in ok(b, "fsck", "--offline")  # its history ends where it does
    write(b, "labels/l9.csv", b"one more label")
    ok(b, "add", "labels")
    ok(b, "commit", "-m", "from a shallow clone")
    ok(b, "push")
    ok(a, "pull")
    assert (a / "labels/l9.csv").read_bytes() == b"one more label"
    write(a, "images/img3.png", b"changed upstream")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "upstream")
    ok(a, "push")
    ok(b, "pull")
    assert tree_bytes(b) == tree_bytes(a)
    assert "history back" in ok(b, "status")


def test_merge_in_a_no_data_clone_fetches_no_data(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    """Both sides change different paths: the merge commits without any file's data."""
    a, url = origin
    b = tmp_path / "b"
    ok(tmp_path, "clone", "--no-data", url, str(b))
    ok(b, "fetch-data", "images/img1.png")
    write(b, "images/img1.png", b"ours")
    ok(b, "add", "images/img1.png")
    ok(b, "commit", "-m", "ours")
    write(a, "labels/l2.csv", b"theirs")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "theirs")
    ok(a, "push")
    ok(b, "fetch")
    packs = b / ".oxen" / "objects" / "packs"
    size_before = sum(p.stat().st_size for p in packs.rglob("*") if p.is_file())
    ok(b, "merge", "--offline", "origin/main")  # offline: it must need no data at all
    size_after = sum(p.stat().st_size for p in packs.rglob("*") if p.is_file())
    assert size_after - size_before < 20_000  # nodes of the merge, no 40 KB label
    assert files_of(b) == {"images/img1.png"}
    assert "working tree clean" in ok(b, "status")
    ok(b, "push")
    ok(a, "pull")
    assert (a / "images/img1.png").read_bytes() == b"ours"
    assert (a / "labels/l2.csv").read_bytes() == b"theirs"


def test_a_conflict_outside_what_is_held_fetches_only_its_files(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    a, url = origin
    b = tmp_path / "b"
    ok(tmp_path, "clone", "--subtree", "images", url, str(b))
    write(a, "labels/l1.csv", b"theirs")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "theirs")
    ok(a, "push")
    # ours: the same label, changed in a subtree clone after fetching just it
    ok(b, "fetch-data", "labels/l1.csv")
    write(b, "labels/l1.csv", b"ours")
    ok(b, "add", "labels/l1.csv")
    ok(b, "commit", "-m", "ours")
    ok(b, "fetch")
    merged = run(b, "merge", "origin/main")
    assert merged.returncode != 0 and "labels/l1.csv" in merged.stdout + merged.stderr
    assert (b / "labels/l1.csv").read_bytes() == b"ours"
    assert (b / "labels/l1.csv.theirs").read_bytes() == b"theirs"
    assert not (b / "labels/l0.csv").exists()


def test_drop_data_frees_what_the_remote_holds_and_fetch_data_brings_it_back(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    a, url = origin
    b = tmp_path / "b"
    ok(tmp_path, "clone", url, str(b))
    write(b, "labels/l0.csv", b"unsaved work")
    refused = run(b, "drop-data", "labels")
    assert refused.returncode == 1 and "uncommitted changes" in refused.stderr
    ok(b, "restore", "labels/l0.csv")
    packs = b / ".oxen" / "objects" / "packs"
    size_before = sum(p.stat().st_size for p in packs.rglob("*") if p.is_file())
    out = ok(b, "drop-data", "labels")
    assert "dropped 4 file(s)" in out
    size_after = sum(p.stat().st_size for p in packs.rglob("*") if p.is_file())
    assert size_before - size_after >= 4 * 40_000
    assert not any(p.startswith("labels/") for p in files_of(b))
    status = ok(b, "status")
    assert "working tree clean" in status and "Partial clone" in status
    assert run(b, "fsck").returncode == 0
    ok(b, "fetch-data", "labels")
    assert tree_bytes(b) == tree_bytes(a)
    assert "Partial clone" not in ok(b, "status")


def test_fetch_data_of_an_unknown_path_and_clone_mode_mistakes(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    _, url = origin
    b = tmp_path / "b"
    ok(tmp_path, "clone", "--no-data", url, str(b))
    missing = run(b, "fetch-data", "nope")
    assert missing.returncode != 0 and "nope" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run(tmp_path, "clone", "--no-data", "--all", url, str(tmp_path / "c"))
    assert bad.returncode != 0 and "--no-data" in bad.stderr
    assert not (tmp_path / "c").exists()
    bad = run(tmp_path, "clone", "--subtree", "../x", url, str(tmp_path / "d"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_a_no_data_clone_knows_every_revisions_schemas(
    tmp_path: Path, server: Server, origin: tuple[Path, str]
) -> None:
    a, url = origin
    write(a, "tables/t.csv", "id,label\n1,cat\n2,dog\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "a table")
    write(a, "tables/t.csv", "id,label,score\n1,cat,0.5\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "a column more, a row less")
    ok(a, "push")
    b = tmp_path / "b"
    ok(tmp_path, "clone", "--no-data", url, str(b))
    assert "tables/t.csv  csv, 1 rows, 3 columns" in ok(b, "schemas", "--offline")
    assert "2 rows, 2 columns" in ok(b, "schemas", "--offline", "--rev", "HEAD~1")
    diff = ok(b, "diff", "--offline", "HEAD~1", "HEAD")
    assert "columns added: score (double); rows 2 -> 1" in diff
    assert not (b / "tables").exists()
