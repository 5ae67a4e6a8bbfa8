"""Adding a 10 GiB file keeps the process's peak RSS under 300 MiB.

The file is sparse (mostly holes, so the test needs no 10 GiB of disk) with stretches of
random bytes, so both the dedup path and the new-chunk path run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import OXEN

GIB = 1 << 30


def test_adding_10_gib_keeps_rss_flat(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    path = workdir / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(10 * GIB)
        for k in range(4):
            f.seek(k * 2 * GIB + 4097)
            f.write(os.urandom(16 << 20))
    proc = subprocess.Popen([*OXEN, "add", "huge.bin"], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read() if proc.stderr else ""
    peak_mib = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    assert peak_mib < 300, f"peak RSS {peak_mib:.0f} MiB"
    st = oxen("status", "--json", check=True).stdout
    assert '"huge.bin"' in st
