"""Tiny timing wrapper: run a command as a child, record its wall time and peak RSS.

Usage: python -I -S _wrap.py RESULT_FILE /path/to/program ARGS...

Writes "seconds maxrss_kib exitcode" to RESULT_FILE and exits with the child's code.
os.wait4 returns the reaped child's rusage; on Linux its ru_maxrss covers the child and
the descendants it waited for. The runner starts this wrapper instead of forking the
command itself because Linux carries the forking process's RSS into the child's
ru_maxrss (fork copies the mm, exec keeps the max): forked from the runner, which holds
hundreds of MiB after generating W2, every tool would look that large. Forked from this
small process the floor is a few MiB (measured on /bin/true and printed in the results).
Only builtin modules are imported, so `-I -S` keeps the interpreter small.
"""

import os
import sys
import time


def main() -> int:
    result, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        except OSError as exc:
            os.write(2, f"cannot run {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    _, status, rusage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(result, "w") as f:
        f.write(f"{seconds!r} {rusage.ru_maxrss} {code}\n")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
