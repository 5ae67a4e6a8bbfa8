"""Temporary files of checkouts and pulls in the working tree, and what a killed one left."""

from __future__ import annotations

import os
from pathlib import Path

from oxen.worktree.paths import OXEN_DIR, is_temp_name, scan, temp_name
from oxen.worktree.pending import PendingWrites, sweep
from tests.test_temp_files import dead_pid


def test_temporary_names_are_recognised_and_only_they() -> None:
    assert is_temp_name(temp_name("data.bin", "123-0123456789ab"))
    for name in ("data.bin", ".hidden.tmp", ".a.oxen-12.tmp", ".a.oxen-x-0123456789ab.tmp"):
        assert not is_temp_name(name), name
    assert not is_temp_name(".a.oxen-1-0123456789AB.tmp")  # not ours: upper case


def test_what_a_killed_command_left_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    (tmp_path / OXEN_DIR).mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("old")
    killed = PendingWrites(tmp_path, f"{dead_pid()}-0123456789ab")
    killed.begin(["d/a.txt", "gone/b.txt"])
    Path(killed.temporary(tmp_path / "d" / "a.txt")).write_text("half")
    live = PendingWrites(tmp_path)
    live.begin(["d/a.txt"])
    Path(live.temporary(tmp_path / "d" / "a.txt")).write_text("being written")
    assert set(scan(tmp_path)) == {"d/a.txt"}  # neither is taken for the user's
    assert sweep(tmp_path) == 1
    assert sorted(os.listdir(tmp_path / "d")) == sorted(["a.txt", temp_name("a.txt", live.token)])
    assert not killed.journal.exists() and live.journal.exists()
    live.end()
    assert not live.journal.exists()


def test_a_day_old_list_is_swept_even_if_its_pid_lives_again(tmp_path: Path) -> None:
    (tmp_path / OXEN_DIR).mkdir()
    reused = PendingWrites(tmp_path)  # this process: alive
    reused.begin(["a.txt"])
    Path(reused.temporary(tmp_path / "a.txt")).write_text("half")
    two_days_ago = reused.journal.stat().st_mtime - 2 * 86400
    os.utime(reused.journal, (two_days_ago, two_days_ago))
    assert sweep(tmp_path) == 1 and os.listdir(tmp_path) == [OXEN_DIR]
    nothing = PendingWrites(tmp_path)
    nothing.begin([])  # a checkout that writes no file lists nothing
    assert not nothing.journal.exists()
