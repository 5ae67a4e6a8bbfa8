"""`python -m bench.ids`: what naming files costs, three ways, on one large file.

- **chunk ids** (what `add` does): FastCDC cuts, BLAKE3 of each chunk on the chunker's
  threads, the file id made from the chunk ids: each byte hashed once.
- **+ whole-file BLAKE3**: the same, plus a BLAKE3 of the whole file as its id (the
  alternative: a file id independent of the chunking, each byte hashed twice).
- **xxh3 (format 1)**: the previous format: xxh3-128 per chunk and of the whole file.

Every way streams the file through the same segment-parallel chunker, so the figures
differ only by hashing. Runs alternate between the ways; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import xxhash
from blake3 import blake3

from bench.paths import DATA
from bench.report import fmt_seconds
from oxen.config import ChunkingConfig
from oxen.worktree import chunking
from oxen.worktree.chunking import Chunker

DEFAULT_FILE = DATA / "w2-1024mib-s0" / "v1.parquet"


def _stream(path: Path, chunker: Chunker, whole: Callable[[], object] | None) -> None:
    stream = chunker.open_stream(str(path))
    hasher = whole() if whole is not None else None
    try:
        while (block := stream.next_block()) is not None:
            if hasher is not None:
                hasher.update(block.data)  # type: ignore[attr-defined]
    finally:
        stream.close()
    if hasher is not None:
        hasher.digest()  # type: ignore[attr-defined]


class _Xxh3Chunker(Chunker):
    """The chunker of format 1: xxh3-128 per chunk."""

    def cut(self, data):  # type: ignore[no-untyped-def]
        digest = xxhash.xxh3_128_digest
        if len(data) <= self.config.min_size:
            return [chunking.Chunk(digest(data), 0, len(data))]
        return [chunking.Chunk(digest(c.data), c.offset, c.length) for c in self._cdc.cut_buf(data)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE, help="a large file")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not args.file.exists():
        raise SystemExit(f"{args.file} does not exist: run `python -m bench --workloads w2` once")
    config = ChunkingConfig()
    ways: dict[str, Callable[[], None]] = {
        "chunk ids (add)": lambda: _stream(args.file, Chunker(config), None),
        "+ whole-file BLAKE3": lambda: _stream(args.file, Chunker(config), blake3),
        "xxh3 (format 1)": lambda: _stream(args.file, _Xxh3Chunker(config), xxhash.xxh3_128),
    }
    size = os.path.getsize(args.file)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for way in ways.values():  # warm the page cache and the buffers
        way()
    for _ in range(args.runs):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["chunk ids (add)"])
    print(f"{size / 2**20:.0f} MiB file, {args.runs} runs each, interleaved; medians\n")
    print("| way | time | throughput | vs chunk ids |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {fmt_seconds(med)} | {size / med / 1e9:.2f} GB/s | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
