"""Throughput of S3Store against raw aiobotocore calls, on a local moto server.

    python -m bench.store_bench            # full run (about 2-3 minutes)
    python -m bench.store_bench --quick    # a few seconds, to check it works

moto runs as a separate process (``python -m moto.server``) so that its CPU time does not
share the client's GIL.  For each object size and number of requests in flight, it PUTs
then GETs the same keys through S3Store and through plain ``put_object``/``get_object``
on an aiobotocore client configured the same way (checksums ``when_required``, same pool
size), alternating the two, and prints medians as a markdown table.

With default options S3Store PUTs a 64 MiB object in one request, like the raw client.
The "put multipart" rows force its multipart path (16 MiB parts, 4 at a time) and compare
it with the raw single PUT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiobotocore
import moto
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from oxen.storage.s3 import S3Store

MiB = 1024 * 1024
BUCKET = "bench"
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


@dataclass(frozen=True)
class Case:
    size: int
    in_flight: int
    count: int  # objects per repetition


@dataclass
class Result:
    case: Case
    op: str
    impl: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def mb_per_s(self) -> float:
        return self.case.size * self.case.count / self.median / 1e6

    @property
    def objects_per_s(self) -> float:
        return self.case.count / self.median


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client_config(pool: int) -> AioConfig:
    return AioConfig(
        response_checksum_validation="when_required",
        request_checksum_calculation="when_required",
        max_pool_connections=pool,
        s3={"addressing_style": "path"},
    )


async def run_bounded(count: int, in_flight: int, fn: Callable[[int], Awaitable[None]]) -> float:
    """Call fn(0..count-1) with at most ``in_flight`` running; return the wall time."""
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await fn(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - started


async def bench(endpoint: str, cases: list[Case], reps: int) -> list[Result]:
    pool = max(c.in_flight for c in cases)
    results: dict[tuple[Case, str, str], Result] = {}
    async with get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=client_config(pool),
        **CREDENTIALS,
    ) as raw:
        await raw.create_bucket(Bucket=BUCKET)
        store = S3Store(
            BUCKET,
            "store",
            endpoint_url=endpoint,
            region="us-east-1",
            max_concurrency=pool,
            access_key_id=CREDENTIALS["aws_access_key_id"],
            secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )
        multipart = S3Store(
            BUCKET,
            "multipart",
            endpoint_url=endpoint,
            region="us-east-1",
            max_concurrency=pool,
            multipart_threshold=16 * MiB,
            part_size=16 * MiB,
            access_key_id=CREDENTIALS["aws_access_key_id"],
            secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )
        async with store, multipart:
            await store.size("warm-up")  # connect and check the bucket outside the timings
            await multipart.size("warm-up")
            for case in cases:
                data = os.urandom(case.size)
                keys = [f"{case.size}/{i}" for i in range(case.count)]

                async def store_put(i: int, keys: list[str] = keys, data: bytes = data) -> None:
                    await store.put(keys[i], data)

                async def store_get(i: int, keys: list[str] = keys, size: int = case.size) -> None:
                    assert len(await store.get(keys[i]) or b"") == size

                async def multipart_put(i: int, keys: list[str] = keys, data: bytes = data) -> None:
                    await multipart.put(keys[i], data)

                async def raw_put(i: int, keys: list[str] = keys, data: bytes = data) -> None:
                    await raw.put_object(Bucket=BUCKET, Key=f"raw/{keys[i]}", Body=data)

                async def raw_get(i: int, keys: list[str] = keys, size: int = case.size) -> None:
                    r = await raw.get_object(Bucket=BUCKET, Key=f"raw/{keys[i]}")
                    async with r["Body"] as body:
                        assert len(await body.read()) == size

                plan = [
                    ("put", "store", store_put),
                    ("put", "raw", raw_put),
                    ("get", "store", store_get),
                    ("get", "raw", raw_get),
                ]
                if case.size > 16 * MiB:
                    plan.append(("put multipart", "store", multipart_put))
                for rep in range(reps):
                    # alternate which side goes first, so drift favours neither
                    order = (
                        plan if rep % 2 == 0 else [plan[1], plan[0], plan[3], plan[2], *plan[4:]]
                    )
                    for op, impl, fn in order:
                        seconds = await run_bounded(case.count, case.in_flight, fn)
                        results.setdefault(
                            (case, op, impl), Result(case, op, impl, [])
                        ).seconds.append(seconds)
                print(
                    f"  done: {human(case.size)} x {case.count} at {case.in_flight} in flight",
                    file=sys.stderr,
                )
    return list(results.values())


def human(size: int) -> str:
    return f"{size // MiB} MiB" if size >= MiB else f"{size // 1024} KiB"


def table(results: list[Result]) -> str:
    by_key = {(r.case, r.op, r.impl): r for r in results}
    lines = [
        "| op | object size | in flight | store MB/s | raw MB/s | store obj/s | raw obj/s | store/raw |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    cases = sorted({r.case for r in results}, key=lambda c: (-c.size, c.in_flight))
    for op in ("put", "put multipart", "get"):
        for case in cases:
            if (case, op, "store") not in by_key:
                continue
            s, r = by_key[(case, op, "store")], by_key[(case, op.split()[0], "raw")]
            lines.append(
                f"| {op} | {human(case.size)} | {case.in_flight} | {s.mb_per_s:,.0f} | "
                f"{r.mb_per_s:,.0f} | {s.objects_per_s:,.1f} | {r.objects_per_s:,.1f} | "
                f"{r.median / s.median:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median is reported)")
    args = parser.parse_args(argv)
    if args.quick:
        reps = 1
        cases = [
            Case(4 * MiB, 1, 2),
            Case(4 * MiB, 16, 16),
            Case(64 * 1024, 1, 20),
            Case(64 * 1024, 16, 64),
        ]
    else:
        reps = args.reps
        cases = [
            Case(64 * MiB, 1, 3),
            Case(64 * MiB, 16, 16),
            Case(64 * 1024, 1, 100),
            Case(64 * 1024, 16, 400),
        ]
    started = time.perf_counter()
    with moto_server() as endpoint:
        results = asyncio.run(bench(endpoint, cases, reps))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"S3Store vs raw aiobotocore on moto {moto.__version__} (separate process), "
        f"aiobotocore {aiobotocore.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores; median of {reps}; store/raw > 1 means the store is faster; "
        f"{time.perf_counter() - started:.0f} s total, load {load:.2f} at the end\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
