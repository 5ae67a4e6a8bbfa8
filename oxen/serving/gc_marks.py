"""The marks an ``oxen-server gc`` leaves in a repository's store for every server on it.

``gc/marks.json`` names the packs gc is about to delete.  A server reads it when it opens
the repository and again whenever it rechecks ``repo.json`` (every few seconds while in
use): from then on it never uses those packs, so a push it verifies after that can only
succeed with objects stored elsewhere.  Sweeping waits a grace period longer than that
recheck plus the longest a push takes between its check and its ref update; see
:mod:`oxen.serving.gc` for the whole rule.

Once the packs are deleted the marks are not removed but replaced by a record of the
sweep (``swept`` set, no packs), under the same generation.  A server that had no request
for the repository during the whole grace period never read the marks; the record is
what tells it, at its next recheck, that packs it still has indexed are gone.
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
    packs: frozenset[str]  # hex ids of the packs to be deleted (none once swept)
    swept: float | None = None  # unix time the sweep ended: the marks are done with

    @property
    def pending(self) -> bool:
        """Whether these packs are still to be deleted (else a record of a sweep)."""
        return self.swept is None

    def done(self, at: float) -> GcMarks:
        """The record that replaces these marks once their packs are deleted."""
        return GcMarks(self.generation, self.marked, frozenset(), at)

    def encode(self) -> bytes:
        body: dict[str, object] = {
            "generation": self.generation,
            "marked": self.marked,
            "packs": sorted(self.packs),
        }
        if self.swept is not None:
            body["swept"] = self.swept
        return json.dumps(body).encode()

    @staticmethod
    def decode(raw: bytes) -> GcMarks:
        data = json.loads(raw)
        swept = data.get("swept")
        return GcMarks(
            str(data["generation"]),
            float(data["marked"]),
            frozenset(data["packs"]),
            None if swept is None else float(swept),
        )


async def read_marks(store: Store) -> GcMarks | None:
    raw = await store.get(MARKS)
    return None if raw is None else GcMarks.decode(raw)
