"""Named crash points for the tests of interrupted operations.

``OXEN_CRASH_AT=<name>`` makes the process kill itself with SIGKILL when it reaches that
point, so a test can stop a command at an exact step ("kill -9 between writing the pack
and indexing it") instead of racing a timer.  Unset, a crash point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("OXEN_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
