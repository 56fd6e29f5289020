"""Peak resident memory of the current process, in MB.

``getrusage().ru_maxrss`` is the wrong number for a bench worker on Linux: the kernel keeps the
high-water mark in the process's signal state, which survives ``fork`` + ``exec``, so a worker
started by a 600 MB parent reports at least 600 MB however little it uses itself. ``VmHWM`` in
/proc/self/status belongs to the address space, which ``exec`` replaces: it is the worker's own
peak. Standard library only (the GPU script uses it too).
"""
from __future__ import annotations

import sys
from pathlib import Path


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6          # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss      # no /proc: macOS (bytes) or BSD (KiB)
    return rss / 1e6 if sys.platform == "darwin" else rss * 1024 / 1e6
