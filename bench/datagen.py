"""Deterministic, seeded workload data, cached under bench/.work/data.

Each data set lives in a directory named after its parameters, with a manifest.json
written last: a directory with a matching manifest is reused as it is, anything else
is regenerated (into a temporary directory that is renamed into place when complete).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import random
import shutil
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.paths import DATA

GEN_VERSION = 1  # bump when a generator changes, so cached data is rebuilt
MIB = 1024 * 1024


@dataclass(frozen=True)
class FileSet:
    """A folder tree of files to put under version control."""

    path: Path
    toplevel: list[str]  # top-level entries (what `dvc add` is given)
    n_files: int
    total_bytes: int
    lfs_patterns: list[str]  # what a git-lfs user would `git lfs track`


@dataclass(frozen=True)
class ParquetVersions:
    """W2: v1, v2 (v1 + 1% rows appended), v3 (v1 with 1% of rows changed mid-file)."""

    v1: Path
    v2: Path
    v3: Path
    rows: int
    appended_rows: int
    changed_rows: int
    cdc: bool
    pyarrow_version: str

    def sizes(self) -> dict[str, int]:
        return {name: getattr(self, name).stat().st_size for name in ("v1", "v2", "v3")}


def _cached(
    name: str, params: dict[str, Any], build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """Return (dir, manifest) of a cached data set, building it first if needed."""
    final = DATA / name
    manifest_path = final / "manifest.json"
    wanted = {"gen_version": GEN_VERSION, **params}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if all(manifest.get(k) == v for k, v in wanted.items()):
            return final, manifest
    tmp = DATA / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    manifest = {**wanted, **build(tmp)}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final, manifest


def _write_files(
    root: Path, rng: random.Random, layout: Iterator[tuple[str, int]]
) -> tuple[int, int]:
    count = total = 0
    for rel, size in layout:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        count += 1
        total += size
    return count, total


def w1_files(n_files: int, seed: int) -> FileSet:
    """n_files random (incompressible) files of 2-20 KiB, split over train/ and test/."""

    def build(tmp: Path) -> dict[str, Any]:
        rng = random.Random(f"w1-{seed}")
        half = n_files // 2

        def layout() -> Iterator[tuple[str, int]]:
            for i in range(n_files):
                folder = "train" if i < half else "test"
                yield f"files/{folder}/{i:06d}.bin", rng.randint(2 * 1024, 20 * 1024)

        count, total = _write_files(tmp, rng, layout())
        return {"n_files": count, "total_bytes": total}

    path, manifest = _cached(f"w1-n{n_files}-s{seed}", {"n_files": n_files, "seed": seed}, build)
    return FileSet(
        path / "files", ["test", "train"], manifest["n_files"], manifest["total_bytes"], ["*.bin"]
    )


def w1_changed_files(files: FileSet, seed: int, count: int = 10) -> list[tuple[str, bytes]]:
    """The `count` files W1 rewrites (same names, same sizes, new random content)."""
    rng = random.Random(f"w1-change-{seed}")
    rels = sorted(str(p.relative_to(files.path)) for p in files.path.rglob("*.bin"))
    chosen = sorted(rng.sample(rels, count))
    return [(rel, rng.randbytes((files.path / rel).stat().st_size)) for rel in chosen]


def w3_files(n_files: int, seed: int, per_folder: int = 10_000) -> FileSet:
    """n_files random files of 0.5-4 KiB in folders of up to per_folder files."""

    def build(tmp: Path) -> dict[str, Any]:
        rng = random.Random(f"w3-{seed}")

        def layout() -> Iterator[tuple[str, int]]:
            for i in range(n_files):
                yield f"files/shard_{i // per_folder:03d}/{i:07d}.bin", rng.randint(512, 4096)

        count, total = _write_files(tmp, rng, layout())
        return {"n_files": count, "total_bytes": total}

    params = {"n_files": n_files, "seed": seed, "per_folder": per_folder}
    path, manifest = _cached(f"w3-n{n_files}-s{seed}", params, build)
    top = sorted(p.name for p in (path / "files").iterdir())
    return FileSet(path / "files", top, manifest["n_files"], manifest["total_bytes"], ["*.bin"])


# ---------------------------------------------------------------------------- W2

BATCH_ROWS = 1 << 20  # = pyarrow's default max row group length, so batches are row groups
CATEGORIES = [f"category_{i:02d}" for i in range(16)]


def cdc_supported() -> bool:
    """Whether this pyarrow's ParquetWriter takes use_content_defined_chunking."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return False
    return "use_content_defined_chunking" in inspect.signature(pq.ParquetWriter.__init__).parameters


def _seed_int(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


def _batch(first_id: int, n: int, key: str) -> Any:
    """n rows: sequential int64 ids, random int64 user ids, float64 values, random
    16-char strings and a 16-value category; numpy-free, from seeded random bytes."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = random.Random(key)
    ids = pa.Array.from_buffers(
        pa.int64(), n, [None, pa.py_buffer(array("q", range(first_id, first_id + n)))]
    )
    raw_users = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(rng.randbytes(8 * n))])
    users = pc.bit_wise_and(raw_users, pa.scalar((1 << 40) - 1, pa.int64()))
    values = pc.random(n, initializer=_seed_int(key))
    offsets = pa.py_buffer(array("i", range(0, 16 * (n + 1), 16)))
    labels = pa.Array.from_buffers(
        pa.string(), n, [None, offsets, pa.py_buffer(base64.b64encode(rng.randbytes(12 * n)))]
    )
    codes = pc.bit_wise_and(
        pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(rng.randbytes(n))]),
        pa.scalar(15, pa.uint8()),
    )
    category = pc.take(pa.array(CATEGORIES), codes)
    return pa.table(
        {"id": ids, "user_id": users, "value": values, "label": labels, "category": category}
    )


def _writer(path: Path, schema: Any, cdc: bool) -> Any:
    import pyarrow.parquet as pq

    # pyarrow defaults (snappy, dictionary encoding, format 2.6); CDC only when asked.
    return (
        pq.ParquetWriter(path, schema, use_content_defined_chunking=True)
        if cdc
        else pq.ParquetWriter(path, schema)
    )


def _v1_batches(rows: int, seed: int) -> Iterator[tuple[int, Any]]:
    for k, start in enumerate(range(0, rows, BATCH_ROWS)):
        yield start, _batch(start, min(BATCH_ROWS, rows - start), f"w2-{seed}-{k}")


def w2_parquet(target_bytes: int, seed: int, cdc: bool) -> ParquetVersions:
    import pyarrow as pa

    def build(tmp: Path) -> dict[str, Any]:
        # Rows for ~target_bytes: measure the encoded size of one full batch in memory.
        probe = _batch(0, BATCH_ROWS, f"w2-{seed}-0")
        sink = pa.BufferOutputStream()
        w = _writer(sink, probe.schema, cdc)
        w.write_table(probe)
        w.close()
        rows = max(1000, round(target_bytes / (sink.tell() / BATCH_ROWS)))
        appended = rows // 100
        changed = rows // 100
        lo = rows // 2 - changed // 2
        hi = lo + changed
        schema = probe.schema
        del probe, sink

        with (
            _writer(tmp / "v1.parquet", schema, cdc) as w1,
            _writer(tmp / "v2.parquet", schema, cdc) as w2,
        ):
            for _, table in _v1_batches(rows, seed):
                w1.write_table(table)
                w2.write_table(table)
            for j, start in enumerate(range(rows, rows + appended, BATCH_ROWS)):
                n = min(BATCH_ROWS, rows + appended - start)
                w2.write_table(_batch(start, n, f"w2-{seed}-append-{j}"))
        with _writer(tmp / "v3.parquet", schema, cdc) as w3:
            for k, (start, table) in enumerate(_v1_batches(rows, seed)):
                a, b = max(lo, start) - start, min(hi, start + table.num_rows) - start
                if a < b:  # this batch holds changed rows: same ids, new other columns
                    alt = _batch(start, table.num_rows, f"w2-{seed}-{k}-changed")
                    cols = {"id": table.column("id")}
                    for name in schema.names[1:]:
                        parts = table.column(name).slice(0, a).chunks
                        parts += alt.column(name).slice(a, b - a).chunks
                        parts += table.column(name).slice(b).chunks
                        cols[name] = pa.chunked_array(parts, type=schema.field(name).type)
                    table = pa.table(cols).combine_chunks()
                w3.write_table(table)
        return {"rows": rows, "appended_rows": appended, "changed_rows": changed}

    params = {"target_bytes": target_bytes, "seed": seed, "cdc": cdc, "pyarrow": pa.__version__}
    name = f"w2-{target_bytes // MIB}mib-s{seed}{'-cdc' if cdc else ''}"
    path, m = _cached(name, params, build)
    return ParquetVersions(
        path / "v1.parquet",
        path / "v2.parquet",
        path / "v3.parquet",
        m["rows"],
        m["appended_rows"],
        m["changed_rows"],
        cdc,
        pa.__version__,
    )


# ---------------------------------------------------------------------------- W4


def w4_client_files(n_clients: int, bytes_each: int, seed: int) -> list[FileSet]:
    """W4's concurrent push: one folder per client, each a distinct `data.bin` of
    bytes_each seeded random (incompressible) bytes, written in 8 MiB blocks."""
    block = 8 * MIB

    def build(tmp: Path) -> dict[str, Any]:
        for i in range(n_clients):
            rng = random.Random(f"w4-client-{seed}-{i}")
            folder = tmp / f"client_{i:02d}"
            folder.mkdir()
            with open(folder / "data.bin", "wb") as f:
                left = bytes_each
                while left:
                    n = min(block, left)
                    f.write(rng.randbytes(n))
                    left -= n
        return {"n_clients": n_clients, "bytes_each": bytes_each}

    params = {"n_clients": n_clients, "bytes_each": bytes_each, "seed": seed}
    path, _ = _cached(f"w4c-{n_clients}x{bytes_each // MIB}mib-s{seed}", params, build)
    return [
        FileSet(path / f"client_{i:02d}", ["data.bin"], 1, bytes_each, ["*.bin"])
        for i in range(n_clients)
    ]
