"""``oxen``: the command line. Parses arguments, calls one core verb, prints, exits.

Command modules are imported only once the command is known, so that ``oxen status``
does not pay for asyncio or the storage stack (``cli/local.py`` stays light).
"""

from __future__ import annotations

import argparse
import difflib
import gc
import importlib
import os
import sys

from oxen import __version__
from oxen.errors import OxenError
from oxen.storage.errors import StoreError

# Local commands that build tens of thousands of objects per run and free few of them: the
# cyclic collector would only rescan them over and over (20k files: `add` 20% slower with
# it). They end with the process, and their data holds no cycles worth collecting.
WITHOUT_CYCLIC_GC = {"status", "add", "commit", "rm", "restore"}

# Commands that never need what a partial clone lacks (no --offline, no fetching)
LOCAL_ONLY = {
    "status",
    "init",
    "config",
    "create-remote",
    "remote",
    "workspace",
    "upload",
    "gc",
    "ls",
}

# command -> "module:function"
HANDLERS = {
    "status": "oxen.cli.local:status",
}
# command -> its parser: a command's arguments are parsed by its own parser, intermixed
# (``push origin -d BRANCH``), and its mistakes are shown with its own usage
COMMANDS: dict[str, argparse.ArgumentParser] = {}
# command -> its actions (``remote`` -> add, remove, rename): "remote add" is parsed by its
# own parser, registered in COMMANDS and HANDLERS under that two-word name
ACTIONS: dict[str, set[str]] = {}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oxen", description="Version control for machine-learning data."
    )
    p.add_argument("--version", action="version", version=f"oxen {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, help: str, handler: str | None = None) -> argparse.ArgumentParser:
        HANDLERS.setdefault(name, handler or f"oxen.cli.commands:{name.replace('-', '_')}")
        COMMANDS[name] = sub.add_parser(name, help=help, description=help)
        if name not in LOCAL_ONLY:
            COMMANDS[name].add_argument(
                "--offline",
                action="store_true",
                help="never fetch what a partial clone lacks: refuse instead (or OXEN_OFFLINE=1)",
            )
        return COMMANDS[name]

    def action(name: str, verb: str, help: str, handler: str) -> argparse.ArgumentParser:
        """``oxen NAME VERB ...``: a command's action with its own arguments and usage."""
        ACTIONS.setdefault(name, set()).add(verb)
        HANDLERS[f"{name} {verb}"] = handler
        parser = argparse.ArgumentParser(prog=f"oxen {name} {verb}", description=help)
        COMMANDS[f"{name} {verb}"] = parser
        return parser

    c = cmd("init", "Create an empty repository.")
    c.add_argument("dir", nargs="?", default=".")
    c.add_argument("--storage", metavar="URL", help="object store URL (default: inside .oxen)")
    c.add_argument("--s3-endpoint", metavar="URL", help="S3 endpoint (MinIO, Ceph, ...)")

    c = cmd("config", "Set or show your identity, a remote, or a host's access token.")
    c.add_argument("--name")
    c.add_argument("--email")
    c.add_argument("--set-remote", nargs=2, metavar=("NAME", "URL"))
    c.add_argument(
        "--auth", nargs=2, metavar=("HOST", "TOKEN"), help="store the token for HOST[:PORT]"
    )

    c = cmd("add", "Stage files (new, changed or deleted) for the next commit.")
    c.add_argument("paths", nargs="+")
    c.add_argument("-f", "--force", action="store_true", help="add paths .oxenignore rules out")

    c = cmd("rm", "Stop tracking files and delete them.")
    c.add_argument("paths", nargs="+")
    c.add_argument("-r", "--recursive", action="store_true", help="remove directories")
    c.add_argument("--staged", action="store_true", help="only unstage/untrack; keep the files")

    c = cmd("restore", "Restore files in the working tree, or unstage them.")
    c.add_argument("paths", nargs="+")
    c.add_argument("--staged", action="store_true", help="unstage instead of touching files")
    c.add_argument("--source", metavar="REF", help="take the files from this commit or branch")

    c = cmd("status", "Show staged, modified, removed and untracked files.")
    c.add_argument("path", nargs="?")
    c.add_argument("--all", "-a", action="store_true", help="list every path, never summarise")
    c.add_argument("--json", action="store_true")

    c = cmd("commit", "Record the staged changes.")
    c.add_argument("-m", "--message", required=True)

    history = "oxen.cli.history_commands:"
    c = cmd("log", "Show the commit history.", history + "log")
    c.add_argument("ref", nargs="?")
    c.add_argument("-n", type=int, dest="limit", metavar="N")
    c.add_argument("--oneline", action="store_true")

    c = cmd("branch", "List, create or delete branches.", history + "branch")
    c.add_argument("name", nargs="?")
    c.add_argument("start", nargs="?", help="where the new branch starts (default HEAD)")
    c.add_argument("-d", "--delete", action="store_true", help="delete a merged branch")
    c.add_argument("-D", dest="force_delete", action="store_true", help="delete it anyway")
    c.add_argument("-r", "--remotes", action="store_true", help="list remote-tracking branches")
    c.add_argument("-a", "--all", action="store_true", help="list local and remote-tracking")
    c.add_argument("--show-current", action="store_true")

    c = cmd("checkout", "Switch to a branch or commit.", history + "checkout")
    c.add_argument("target")
    c.add_argument("-b", dest="create", action="store_true", help="create the branch first")

    c = cmd(
        "switch", "Switch to a branch (git's switch: checkout for branches).", history + "switch"
    )
    c.add_argument("target", metavar="BRANCH")
    c.add_argument("-c", "--create", action="store_true", help="create the branch first")
    c.add_argument("-d", "--detach", action="store_true", help="switch to a commit, detached")

    c = cmd("merge", "Merge a branch into the current one.", history + "merge")
    c.add_argument("branch", nargs="?")
    c.add_argument("--abort", action="store_true")

    c = cmd(
        "diff",
        "Added, modified and removed paths (working tree vs HEAD by default); with a "
        "tabular file last (diff [REV_A [REV_B]] FILE), its rows.",
        history + "diff",
    )
    c.add_argument("refs", nargs="*", metavar="REF")
    c.add_argument("--keys", metavar="K1,K2", help="a table's key columns (default: whole rows)")
    c.add_argument("--compare", metavar="C1,C2", help="columns compared (default: all others)")
    c.add_argument("-o", "--output", metavar="FILE", help="every changed row, with a status")
    c.add_argument("--json", action="store_true")

    look = "oxen.cli.inspect_commands:"
    c = cmd("info", "Id, size, type and last change of a path.", look + "info")
    c.add_argument("path")
    c.add_argument("--rev", default="HEAD")
    c.add_argument("--json", action="store_true")

    c = cmd(
        "schemas",
        "Columns and row counts of the tabular files (csv, parquet, ...) of a revision.",
        look + "schemas",
    )
    c.add_argument("path", nargs="?", default="")
    c.add_argument("--rev", default="HEAD")
    c.add_argument("--json", action="store_true")

    c = cmd(
        "df",
        "Rows of a tabular file (csv, tsv, parquet, arrow, jsonl), at any revision.",
        "oxen.cli.dataframe_commands:df",
    )
    c.add_argument("path")
    c.add_argument("--rev", help="that revision's version (default: the working tree's file)")
    rows = c.add_mutually_exclusive_group()
    rows.add_argument("--head", type=int, metavar="N", help="the first N rows (shown: 20)")
    rows.add_argument("--tail", type=int, metavar="N", help="the last N rows")
    rows.add_argument("--slice", metavar="A..B", help="rows A (from 0) to B (not included)")
    c.add_argument("--columns", metavar="C1,C2", help="only these columns, in this order")
    query = c.add_mutually_exclusive_group()
    query.add_argument("--filter", metavar="EXPR", help="a SQL condition: 'score > 0.5'")
    query.add_argument("--sql", metavar="QUERY", help="a SQL query over the table named df")
    c.add_argument("-o", "--output", metavar="FILE", help="write every row to .parquet/.csv/.jsonl")
    c.add_argument("--json", action="store_true", help="rows as JSON objects")

    c = cmd("tree", "Print the merkle tree of a commit.", look + "tree")
    c.add_argument("ref", nargs="?", default="HEAD")
    c.add_argument("--files", action="store_true", help="list files too")
    c.add_argument("--depth", type=int, help="stop below this depth")

    c = cmd("node", "Print one merkle node.", look + "node")
    c.add_argument("id")

    cmd("fsck", "Re-hash every stored object and check the history is whole.", look + "fsck")
    c = cmd(
        "gc",
        "Remove stored objects nothing here reaches (after deleted branches, drop-data).",
        look + "gc",
    )
    c.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    c.add_argument("--json", action="store_true", help="the report as JSON")

    sync = "oxen.cli.sync_commands:"
    c = cmd("create-remote", "Create a repository on a server.", sync + "create_remote")
    c.add_argument("--name", required=True, metavar="NAMESPACE/NAME")
    c.add_argument("--host", required=True, metavar="HOST[:PORT]")
    c.add_argument("--scheme", default="http", choices=["http", "https"])

    c = cmd(
        "remote",
        "List remotes; oxen remote add|remove|rename changes them.",
        sync + "remote",
    )
    c.usage = "oxen remote [-v] | oxen remote add NAME URL | remove NAME | rename OLD NEW"
    c.add_argument("-v", "--verbose", action="store_true", help="show their URLs")
    c = action("remote", "add", "Add a remote.", sync + "remote_add")
    c.add_argument("name", metavar="NAME")
    c.add_argument("url", metavar="URL")
    c = action(
        "remote",
        "remove",
        "Remove a remote and its remote-tracking branches.",
        sync + "remote_remove",
    )
    c.add_argument("name", metavar="NAME")
    c = action(
        "remote",
        "rename",
        "Rename a remote and its remote-tracking branches.",
        sync + "remote_rename",
    )
    c.add_argument("old", metavar="OLD")
    c.add_argument("new", metavar="NEW")

    c = cmd(
        "download",
        "Write one file of a remote repository here (needs no repository).",
        sync + "download",
    )
    c.add_argument(
        "url", metavar="URL", help="the repository: http[s]://HOST[:PORT]/NAMESPACE/NAME"
    )
    c.add_argument("path", metavar="PATH", help="the file's path in the repository")
    c.add_argument("--rev", help="a branch or a full commit id (default: main)")
    c.add_argument(
        "-o",
        "--output",
        dest="out",
        metavar="OUT",
        help="the file to write, or a folder to write it in (default: its name, here)",
    )
    c.add_argument("-f", "--force", action="store_true", help="overwrite OUT if it exists")

    c = cmd(
        "ls",
        "List a folder of a remote repository at any revision (needs no repository).",
        sync + "ls",
    )
    c.add_argument(
        "url", metavar="URL", help="the repository: http[s]://HOST[:PORT]/NAMESPACE/NAME"
    )
    c.add_argument(
        "path", nargs="?", default="", metavar="PATH", help="a folder (default: the top)"
    )
    c.add_argument("--rev", help="a branch or a full commit id (default: main)")
    c.add_argument("-l", dest="long", action="store_true", help="type, size, id, files or rows")
    c.add_argument("--limit", type=int, metavar="N", help="only the first N entries")
    c.add_argument("--json", action="store_true", help="the listing as JSON")

    c = cmd("push", "Send a branch's new commits and data to a remote.", sync + "push")
    c.add_argument("remote", nargs="?", default="origin")
    c.add_argument("branch", nargs="?")
    c.add_argument("-d", "--delete", action="store_true", help="delete the branch on the remote")
    c.add_argument(
        "--no-merge",
        action="store_true",
        help="refuse when the remote's branch moved on, instead of pushing a merge made of "
        "trees alone (when the two sides changed different paths)",
    )
    c.add_argument("-j", "--jobs", type=int, default=4, help="requests in flight")

    c = cmd("fetch", "Get a remote's commits and the data of its branch tips.", sync + "fetch")
    c.add_argument("remote", nargs="?", default="origin")
    c.add_argument("branch", nargs="?")
    c.add_argument("--all", action="store_true", help="every version's data, not only the tips'")
    c.add_argument("-j", "--jobs", type=int, default=4)

    c = cmd("pull", "Fetch a branch and merge it into the current one.", sync + "pull")
    c.add_argument("remote", nargs="?", default="origin")
    c.add_argument("branch", nargs="?")
    c.add_argument("-j", "--jobs", type=int, default=4)

    c = cmd(
        "clone",
        "Copy a remote repository (the branch's latest data and its history).",
        sync + "clone",
    )
    c.add_argument("url")
    c.add_argument("dir", nargs="?")
    c.add_argument("-b", "--branch")
    c.add_argument("--all", action="store_true", help="every version's data")
    c.add_argument("--depth", type=int, metavar="N", help="only the last N commits")
    c.add_argument(
        "--subtree",
        action="append",
        default=[],
        metavar="PATH",
        help="only this folder's trees and data (repeatable)",
    )
    c.add_argument("--no-data", action="store_true", help="every commit and tree, no file data")
    c.add_argument("-j", "--jobs", type=int, default=4)

    work = "oxen.cli.workspace_commands:"
    c = cmd(
        "workspace",
        "Change a remote branch without a clone: stage files on the server, commit there.",
        work + "workspace",
    )
    c.usage = "oxen workspace create|list|status|add|rm|unstage|ls|df|edit|commit|delete URL ..."

    def ws_action(verb: str, help: str, handler: str, one: bool = True) -> argparse.ArgumentParser:
        parser = action("workspace", verb, help, work + handler)
        parser.add_argument("url", metavar="URL", help="http[s]://HOST[:PORT]/NAMESPACE/NAME")
        if one:
            parser.add_argument(
                "-w", "--workspace", required=True, metavar="ID_OR_NAME", help="which workspace"
            )
        parser.add_argument("--json", action="store_true", help="the answer as JSON")
        return parser

    c = ws_action("create", "Start a workspace on a branch.", "create", one=False)
    c.add_argument("-b", "--branch", default="main")
    c.add_argument("--name", help="a name to find it by (letters, digits, '-', '_', '.')")
    ws_action("list", "List a repository's workspaces.", "list_all", one=False)
    ws_action("status", "What a workspace stages, and whether its branch moved.", "status")
    c = ws_action(
        "add",
        "Upload files or folders (only the chunks the server lacks) and stage them.",
        "add",
    )
    c.add_argument("paths", nargs="+", metavar="LOCAL")
    c.add_argument("--dst", metavar="DIR", help="the folder to put them in (default: the top)")
    c = ws_action("rm", "Stage the removal of files or folders of the branch.", "rm")
    c.add_argument("paths", nargs="+", metavar="PATH")
    c = ws_action("unstage", "Drop staged changes of files or folders.", "unstage")
    c.add_argument("paths", nargs="+", metavar="PATH")
    c = ws_action("ls", "List a folder as the workspace's commit would have it.", "ls")
    c.add_argument("path", nargs="?", metavar="PATH")
    c = ws_action("df", "A page of rows of the workspace's version of a tabular file.", "df")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--offset", type=int, default=0)
    c.add_argument("--limit", type=int, default=20, help="1 to 1000 (default 20)")
    c.add_argument("--columns", metavar="C1,C2")
    c.add_argument("--filter", metavar="EXPR", help="a SQL expression over the columns")
    c = ws_action(
        "edit",
        "Append rows, or update or delete rows by key, of a tabular file (the server writes"
        " its next version and stages it).",
        "edit",
    )
    c.add_argument("path", metavar="PATH")
    c.add_argument("--keys", metavar="C1,C2", help="the columns that name a row")
    c.add_argument("--append", metavar="ROWS.jsonl", help="rows to add at the end ('-': stdin)")
    c.add_argument(
        "--update", metavar="ROWS.jsonl", help="each row's keys, and the columns to set in it"
    )
    c.add_argument("--delete", metavar="ROWS.jsonl", help="the keys of the rows to delete")
    c = ws_action("commit", "Commit the staged changes on the server.", "commit")
    c.add_argument("-m", "--message", required=True)
    ws_action("delete", "Delete a workspace and its staged changes.", "delete")

    c = cmd(
        "upload",
        "Add files to a remote branch and commit them there, without a clone.",
        work + "upload",
    )
    c.add_argument("url", metavar="URL", help="http[s]://HOST[:PORT]/NAMESPACE/NAME")
    c.add_argument("paths", nargs="+", metavar="LOCAL")
    c.add_argument("-m", "--message", required=True)
    c.add_argument("-b", "--branch", default="main")
    c.add_argument("--dst", metavar="DIR", help="the folder to put them in (default: the top)")
    c.add_argument("--json", action="store_true", help="the answer as JSON")

    c = cmd(
        "fetch-data",
        "Bring the data of paths a partial clone lacks (at HEAD: and hold them from now on).",
        sync + "fetch_data",
    )
    c.add_argument("paths", nargs="*", metavar="PATH", help="default: every path")
    c.add_argument("--rev", help="another revision's data, into the store only")
    c.add_argument("--all-history", action="store_true", help="every commit's data")
    c.add_argument("-j", "--jobs", type=int, default=4)

    c = cmd(
        "drop-data",
        "Free the data of paths the remote holds: their files and local copies go.",
        sync + "drop_data",
    )
    c.add_argument("paths", nargs="+", metavar="PATH")
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    """The top-level parser for ``--version``, ``-h`` and no command; a command's own for
    the rest; an unknown command gets the nearest ones."""
    parser = build_parser()
    if not argv or argv[0].startswith("-"):
        return parser.parse_args(argv)
    command, rest = argv[0], argv[1:]
    if rest and rest[0] in ACTIONS.get(command, ()):
        command, rest = f"{command} {rest[0]}", rest[1:]
    if command not in COMMANDS:
        known = [c for c in COMMANDS if " " not in c]
        near = difflib.get_close_matches(command, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        parser.error(f"{command!r} is not an oxen command{hint} (oxen -h lists them)")
    args = COMMANDS[command].parse_intermixed_args(rest)
    args.command = command
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    module, _, func = HANDLERS[args.command].partition(":")
    if args.command in WITHOUT_CYCLIC_GC:
        gc.disable()
    debug = bool(os.environ.get("OXEN_DEBUG"))
    try:
        if not (getattr(args, "offline", True) or os.environ.get("OXEN_OFFLINE")):
            from oxen.cli.progress import bar
            from oxen.sync.on_demand import enable

            enable(bar)  # what a partial clone lacks comes from its remote
        handler = getattr(importlib.import_module(module), func)
        code = handler(args)
    except OxenError as e:
        print(f"error: {e}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        code = 0
    except StoreError as e:
        print(f"error: storage: {e}", file=sys.stderr)
        code = 1
    except Exception as e:
        if debug:
            raise
        print(
            f"error: internal error ({type(e).__name__}: {e}); set OXEN_DEBUG=1 for details",
            file=sys.stderr,
        )
        code = 1
    sys.stdout.flush()
    raise SystemExit(code or 0)


if __name__ == "__main__":
    main()
