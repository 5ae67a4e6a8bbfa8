"""Adding a 10 GiB file keeps the process's peak RSS under 300 MiB.

The file is sparse (mostly holes, so the test needs no 10 GiB of disk) with stretches of
random bytes, so both the dedup path and the new-chunk path run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import OXEN

GIB = 1 << 30
WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_adding_10_gib_keeps_rss_flat(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    path = workdir / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(10 * GIB)
        for k in range(4):
            f.seek(k * 2 * GIB + 4097)
            f.write(os.urandom(16 << 20))
    # Linux carries a forking process's peak RSS into its child's ru_maxrss, and pytest may
    # be large: fork the command from a tiny fresh interpreter and read the child's rusage.
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", WRAPPER, *OXEN, "add", "huge.bin"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    peak_mib = int(proc.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    assert peak_mib < 300, f"peak RSS {peak_mib:.0f} MiB"
    st = oxen("status", "--json", check=True).stdout
    assert '"huge.bin"' in st
