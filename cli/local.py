"""Commands that only read the working tree and database: no asyncio, no network stack."""

from __future__ import annotations

import argparse
from pathlib import Path

from oxen.cli.output import summarize
from oxen.formats.version import check_format, format_in
from oxen.worktree.paths import OXEN_DIR, find_root_dir, to_repo_path
from oxen.worktree.status import compute_status


def status(args: argparse.Namespace) -> int:
    root = find_root_dir()
    try:  # a format this version does not read is refused, without loading the config
        text = Path(root, OXEN_DIR, "config.toml").read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    check_format(format_in(text), root)
    prefix = to_repo_path(root, args.path) if args.path else ""
    st = compute_status(root, prefix, parallel=True, current=False)
    if args.json:
        import json

        print(json.dumps(st.as_dict(), indent=2))
        return 0
    if st.branch:
        print(f"On branch {st.branch}" + ("" if st.head else " (no commits yet)"))
    else:
        print(f"HEAD detached at {st.head[:10] if st.head else '?'}")
    if (held := st.partial.describe()) is not None:
        print(held)
    if st.merging:
        print(
            "You are in the middle of a merge: fix conflicts, oxen add, then oxen commit (or oxen merge --abort)."
        )
    sections = [
        ("Unmerged paths:", [("both changed", st.conflicts)]),
        (
            "Changes to be committed:",
            [
                ("new file", st.staged_added),
                ("modified", st.staged_modified),
                ("deleted", st.staged_removed),
            ],
        ),
        ("Changes not staged for commit:", [("modified", st.modified), ("deleted", st.removed)]),
        ("Untracked files:", [("", st.untracked)]),
    ]
    for title, groups in sections:
        if not any(paths for _, paths in groups):
            continue
        print(f"\n{title}")
        for label, paths in groups:
            for line in summarize(paths, args.all):
                print(f"  {label + ':  ' if label else ''}{line}")
    if st.clean and not st.untracked:
        print("nothing to commit, working tree clean")
    return 0
