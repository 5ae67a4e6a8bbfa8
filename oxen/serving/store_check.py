"""Checking everything a server's store holds (``oxen-server fsck``), without writing.

For each repository (``repos/<namespace>/<name>/``): its ``repo.json`` is valid and of
the current format; every pack's tail, name and layout are sound, every blob hashes to
its id and every node decodes (:mod:`oxen.objects.pack_check`, a pack at a time); every
branch (tombstones aside) names a commit whose whole history, trees, chunk lists and
chunks are stored and intact (:mod:`oxen.trees.integrity`).

Nothing is written to the store nor to a server's cache: which object lies where is
learned from the packs as they are checked, into a scratch index in a temporary
directory.  A server may serve the store meanwhile.  Branches are read before packs are
listed, and a server stores a push's packs before it moves a branch, so a branch read
here never names objects the listing has not seen; a push landing during the check is
simply not part of it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from oxen.config import FORMAT_VERSION, ChunkingConfig, from_dict
from oxen.core.refs import TOMBSTONE
from oxen.db.repo_db import RepoDB
from oxen.errors import CorruptObject, MissingObject, NotFound
from oxen.formats.ids import ID_LEN
from oxen.formats.nodes import CommitNode
from oxen.formats.packs import pack_key
from oxen.formats.refnames import HEADS
from oxen.objects.object_store import ObjectStore
from oxen.objects.pack_check import Problem, check_pack
from oxen.objects.pack_index import stored_packs
from oxen.serving.served_repo import MAX_PACK_BYTES, check_repo_name
from oxen.storage import Store
from oxen.storage.prefixed import PrefixedStore
from oxen.trees.integrity import Integrity, check_reachable

REPOS = "repos/"


@dataclass(frozen=True)
class StoreProblem:
    """One line of the report: which repository, what in it, what is wrong."""

    repository: str  # namespace/name
    subject: str  # repo.json, pack <id>, branch <name>, chunk <id>...
    what: str

    def __str__(self) -> str:
        return f"{self.repository}: {self.subject} {self.what}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class StoreReport:
    repositories: int = 0
    packs: int = 0
    objects: int = 0
    bytes: int = 0
    branches: int = 0
    commits: int = 0
    problems: list[StoreProblem] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "problems": [p.as_dict() for p in self.problems]}


OnProblem = Callable[[StoreProblem], None]


async def repositories(store: Store) -> list[tuple[str, str]]:
    """(namespace, name) of every repository with anything stored under its prefix."""
    found: set[tuple[str, str]] = set()
    async for key in store.list(REPOS):
        parts = key.split("/")
        if len(parts) >= 4:
            found.add((parts[1], parts[2]))
    return sorted(found)


async def check_store(
    store: Store, only: tuple[str, str] | None = None, on_problem: OnProblem | None = None
) -> StoreReport:
    """Check every repository of ``store`` (or ``only`` that one); ``on_problem`` sees each
    problem as it is found."""
    report = StoreReport()
    if only is not None:
        namespace, name = only
        check_repo_name(namespace, "namespace")
        check_repo_name(name, "repository name")
        if not [k async for k in store.list(f"{REPOS}{namespace}/{name}/")]:
            raise NotFound(f"no repository {namespace}/{name} in this store")
        names = [only]
    else:
        names = await repositories(store)
    for namespace, name in names:
        await _RepoCheck(store, namespace, name, report, on_problem).run()
    return report


class _RepoCheck:
    """The check of one repository, adding to a shared report."""

    def __init__(
        self,
        store: Store,
        namespace: str,
        name: str,
        report: StoreReport,
        on_problem: OnProblem | None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.store = PrefixedStore(store, f"{REPOS}{namespace}/{name}")
        self.report = report
        self.on_problem = on_problem

    def problem(self, subject: str, what: str) -> None:
        found = StoreProblem(f"{self.namespace}/{self.name}", subject, what)
        self.report.problems.append(found)
        if self.on_problem is not None:
            self.on_problem(found)

    def problems(self, found: list[Problem]) -> None:
        for p in found:
            self.problem(p.subject, p.what)

    async def run(self) -> None:
        self.report.repositories += 1
        for what in check_repo_json(await self.store.get("repo.json"), self.namespace, self.name):
            self.problem("repo.json", what)
        branches = await self._branches()  # before the packs are listed: see the module doc
        with tempfile.TemporaryDirectory(prefix="oxen-fsck-") as scratch:
            db = await RepoDB.open(Path(scratch))
            try:
                objects = ObjectStore(self.store, db, Path(scratch), MAX_PACK_BYTES)
                damaged = await self._check_packs(db)
                await self._check_branches(objects, branches, damaged)
            finally:
                await db.close()

    async def _branches(self) -> dict[str, bytes]:
        """The branches and their commits; a value that is neither a commit id nor a
        tombstone is a problem."""
        keys = sorted([k async for k in self.store.list(HEADS)])
        out: dict[str, bytes] = {}
        for key in keys:
            branch = key.removeprefix(HEADS)
            raw = await self.store.get(key)
            if raw is None or raw == TOMBSTONE:
                continue  # deleted meanwhile, or a deleted branch
            try:
                commit = bytes.fromhex(raw.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                commit = b""
            if len(commit) != ID_LEN:
                self.problem(f"branch {branch}", f"holds {raw[:80]!r}, not a commit id")
                continue
            out[branch] = commit
        return out

    async def _check_packs(self, db: RepoDB) -> dict[bytes, str]:
        """Check every pack, indexing the intact blobs into ``db``; returns the ids of the
        blobs found damaged, and how."""
        damaged: dict[bytes, str] = {}
        listed = sorted([(hex_id, key) async for hex_id, key in stored_packs(self.store)])
        for hex_id, key in listed:
            check = await check_pack(self.store, hex_id, key)
            self.report.packs += 1
            self.report.objects += check.objects
            self.report.bytes += check.bytes
            self.problems(check.problems)
            damaged.update(dict.fromkeys(check.corrupt, "is corrupt"))
            if check.index is not None and key == pack_key(check.index.id):
                await db.add_pack(check.index.id, check.index.size, check.intact)
        return damaged

    async def _check_branches(
        self, objects: ObjectStore, branches: dict[str, bytes], damaged: dict[bytes, str]
    ) -> None:
        found = Integrity()
        for branch, tip in sorted(branches.items()):
            self.report.branches += 1
            subject = f"branch {branch}"
            if tip in damaged:
                self.problem(subject, f"names commit {tip.hex()}, which {damaged[tip]}")
                continue
            if await objects.db.missing([tip]):
                self.problem(subject, f"names commit {tip.hex()}, which is not stored")
                continue
            try:
                node = await objects.read_node(tip)
            except (MissingObject, CorruptObject) as e:  # its pack changed under the check
                self.problem(subject, f"names commit {tip.hex()}, which cannot be read: {e}")
                continue
            if not isinstance(node, CommitNode):
                self.problem(subject, f"names {tip.hex()}, which is not a commit")
                continue
            before = len(found.problems)
            await check_reachable(objects, [tip], found, damaged, via=subject)
            self.problems(found.problems[before:])
        self.report.commits += found.commits


def check_repo_json(raw: bytes | None, namespace: str, name: str) -> list[str]:
    """What is wrong with a repository's ``repo.json`` (each a phrase following
    "repo.json"); empty when it is valid and of the format this server reads."""
    if raw is None:
        return ["is missing (other objects remain under the repository's prefix)"]
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        return [f"is not valid JSON: {e}"]
    if not isinstance(data, dict):
        return ["is not a JSON object"]
    wrong: list[str] = []
    for field_name, expected in (("namespace", namespace), ("name", name)):
        if data.get(field_name) != expected:
            wrong.append(f"has {field_name} {data.get(field_name)!r}, not {expected!r}")
    if type(data.get("created")) is not int:
        wrong.append(f"has created {data.get('created')!r}, not a time in epoch seconds")
    if not isinstance(data.get("incarnation"), str) or not data["incarnation"]:
        wrong.append(f"has incarnation {data.get('incarnation')!r}, not an id")
    fmt = data.get("format", 1)
    if fmt != FORMAT_VERSION:
        wrong.append(f"says format {fmt!r}; this server reads format {FORMAT_VERSION} only")
    chunking = data.get("chunking")
    if chunking is not None:
        try:
            if not isinstance(chunking, dict):
                raise ValueError("they are not an object")
            from_dict(ChunkingConfig, chunking, "chunking.")
        except ValueError as e:
            wrong.append(f"has invalid chunking parameters: {e}")
    return wrong
