"""Retries with jittered exponential backoff for network stores.

Why our own loop rather than botocore's ``standard``/``adaptive`` retry modes, which do
classify 5xx, throttling codes (SlowDown, ...) and connection errors well:

* A GET's body is streamed after botocore has returned the response; a connection that
  drops mid-body raises outside botocore's retry loop.  Only a retry around the whole
  operation (request and body) covers it.
* botocore's delays are fixed (1 s base for throttling, 50 ms otherwise, 20 s cap) and not
  configurable, so failure-path tests would sleep for seconds; ours take a policy.
* ``standard`` mode shares a client-wide retry quota that stops retrying after a burst of
  failures; at 16 requests in flight one short 503 storm would then fail a whole push.
* A conditional write retried after a lost reply looks like a conflict and must be
  re-checked (see :mod:`oxen.storage.s3`); that needs to know a retry happened.

So the S3 store turns botocore's retries off (``total_max_attempts=1``) and wraps each
operation in :func:`retry_call`.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Retry(enum.Enum):
    """How a failure should be treated."""

    NO = "no"
    TRANSIENT = "transient"  # 5xx, dropped connection, timeout
    THROTTLED = "throttled"  # SlowDown & co: back off harder


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``attempts`` tries; before try n+1 sleep uniform(0, min(cap, base * 2**n))."""

    attempts: int = 7
    base_delay: float = 0.05
    throttle_delay: float = 0.5
    max_delay: float = 10.0

    def delay(self, attempt: int, kind: Retry) -> float:
        base = self.throttle_delay if kind is Retry.THROTTLED else self.base_delay
        return random.uniform(0.0, min(self.max_delay, base * 2.0**attempt))


async def retry_call(
    fn: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    classify: Callable[[BaseException], Retry],
) -> T:
    """Await ``fn(attempt)`` until it succeeds, fails for good, or attempts run out.

    ``fn`` receives the 0-based attempt number.  The last error propagates unchanged.
    """
    attempt = 0
    while True:
        try:
            return await fn(attempt)
        except Exception as e:
            kind = classify(e)
            if kind is Retry.NO or attempt + 1 >= policy.attempts:
                raise
            await asyncio.sleep(policy.delay(attempt, kind))
            attempt += 1
