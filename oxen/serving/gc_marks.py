"""The marks an ``oxen-server gc`` leaves in a repository's store for every server on it.

``gc/marks.json`` names the packs gc is about to delete.  A server reads it when it opens
the repository and again whenever it rechecks ``repo.json`` (every few seconds while in
use): from then on it never uses those packs, so a push it verifies after that can only
succeed with objects stored elsewhere.  Sweeping waits a grace period longer than that
recheck plus the longest a push takes between its check and its ref update; see
:mod:`oxen.serving.gc` for the whole rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from oxen.storage import Store

MARKS = "gc/marks.json"


@dataclass(frozen=True)
class GcMarks:
    generation: str  # random per mark: a server notices new marks by it
    marked: float  # unix time the marks were published
    packs: frozenset[str]  # hex ids of the packs to be deleted

    def encode(self) -> bytes:
        body = {"generation": self.generation, "marked": self.marked, "packs": sorted(self.packs)}
        return json.dumps(body).encode()


async def read_marks(store: Store) -> GcMarks | None:
    raw = await store.get(MARKS)
    if raw is None:
        return None
    data = json.loads(raw)
    return GcMarks(str(data["generation"]), float(data["marked"]), frozenset(data["packs"]))
