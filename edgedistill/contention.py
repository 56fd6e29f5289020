"""How much of the machine others took while a measurement ran: steal, other processes, load.

    sampler = Sampler()            # snapshot of /proc/stat and of this process's CPU time
    ...                            # the timed work
    sampler.stop()                 # {"steal_pct", "other_cpu_pct", "load1", "wall_s", ...}

- ``steal_pct``: CPU time the hypervisor gave to other guests, in % of all CPU time (the
  ``steal`` column of /proc/stat); on a cloud VM the neighbours' share of the real cores.
- ``other_cpu_pct``: CPU time that processes other than this one (and its children) ran, in %
  of the machine's capacity (cores x wall time): busy jiffies from /proc/stat minus this
  process's own user + system time (``os.times``).
- ``load1``: the 1-minute load average at the end.

A measurement is ``disturbed`` when either share passes its threshold; its rows are flagged
in bench.json, report.md and the dashboard. Off Linux (no /proc/stat) the reader returns None
and nothing is flagged.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

PROC_STAT = Path("/proc/stat")
# /proc/stat "cpu" line columns (man 5 proc); guest time is already counted in user / nice.
FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
BUSY = ("user", "nice", "system", "irq", "softirq")
# Thresholds: a job on a quiet 2-core VM sees well under 2% of each (the bench's parent process,
# kernel threads); a neighbour's busy thread costs a whole core (50% here).
DISTURBED_OTHER_CPU_PCT = 10.0
DISTURBED_STEAL_PCT = 5.0


def read_cpu_times(path: str | Path = PROC_STAT) -> dict[str, int] | None:
    """The aggregate ``cpu`` line of /proc/stat as {field: jiffies}; None where unreadable."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("cpu "):
                    values = [int(v) for v in line.split()[1:]]
                    values += [0] * (len(FIELDS) - len(values))
                    return dict(zip(FIELDS, values))
    except (OSError, ValueError):
        return None
    return None


def own_cpu_s() -> float:
    """User + system CPU seconds of this process (every thread) and its waited-for children.
    ``os.times`` rather than psutil: the bench worker's peak memory should hold the runtime, not
    the measuring tools."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def summarize(before: dict[str, int] | None, after: dict[str, int] | None, own_s: float, wall_s: float,
              cores: int, load1: float | None = None, hz: int = 100) -> dict:
    """Contention over one interval from two /proc/stat snapshots and this process's CPU time."""
    out = {"wall_s": round(wall_s, 3), "cores": cores, "load1": None if load1 is None else round(load1, 2),
           "steal_pct": None, "other_cpu_pct": None, "own_cpu_pct": None}
    if before is None or after is None or wall_s <= 0:
        return out
    delta = {k: after[k] - before[k] for k in FIELDS}
    total = sum(delta.values())
    if total <= 0:
        return out
    busy_s = sum(delta[k] for k in BUSY) / hz
    capacity_s = total / hz   # cores x wall time, as the kernel counted it
    out["steal_pct"] = round(100 * delta["steal"] / total, 2)
    out["own_cpu_pct"] = round(100 * own_s / capacity_s, 2)
    out["other_cpu_pct"] = round(max(0.0, 100 * (busy_s - own_s) / capacity_s), 2)
    return out


def is_disturbed(contention: dict | None, other_cpu_pct: float = DISTURBED_OTHER_CPU_PCT,
                 steal_pct: float = DISTURBED_STEAL_PCT) -> bool | None:
    """True when others took more than the thresholds; None when nothing was measured."""
    if not contention or contention.get("other_cpu_pct") is None:
        return None
    return bool(contention["other_cpu_pct"] > other_cpu_pct or (contention.get("steal_pct") or 0) > steal_pct)


class Sampler:
    """Contention between construction (or ``start``) and ``stop``; ``stop`` may be called again
    later, each time for the interval since the last start."""

    def __init__(self, stat_path: str | Path = PROC_STAT):
        self.stat_path = stat_path
        self.start()

    def start(self) -> None:
        self.t0, self.cpu0, self.own0 = time.perf_counter(), read_cpu_times(self.stat_path), own_cpu_s()

    def stop(self) -> dict:
        wall, cpu, own = time.perf_counter() - self.t0, read_cpu_times(self.stat_path), own_cpu_s()
        try:
            load1 = os.getloadavg()[0]
        except OSError:
            load1 = None
        return summarize(self.cpu0, cpu, own - self.own0, wall, os.cpu_count() or 1, load1,
                         os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


class CaseMarks:
    """Contention per timed case: ``mark(case_id)`` when a case starts ends the previous one;
    ``finish()`` ends the last. The worker marks each case as pytest-benchmark sets it up.

    /proc/stat counts in clock ticks (10 ms), so a case shorter than a few ticks reads nothing;
    such a case gets the numbers of the whole timing pass instead (``scope: "all cases"``)."""

    def __init__(self):
        self.results: dict[str, dict] = {}
        self._current: str | None = None
        self._sampler: Sampler | None = None
        self._all = Sampler()

    def mark(self, case_id: str | None) -> None:
        if self._current is not None and self._sampler is not None:
            self.results[self._current] = self._sampler.stop()
        self._current = case_id
        self._sampler = Sampler() if case_id is not None else None

    def finish(self) -> dict[str, dict]:
        self.mark(None)
        whole = {**self._all.stop(), "scope": "all cases"}
        return {cid: c if c.get("other_cpu_pct") is not None else whole for cid, c in self.results.items()}


def row_columns(contention: dict | None, other_cpu_pct: float = DISTURBED_OTHER_CPU_PCT,
                steal_pct: float = DISTURBED_STEAL_PCT) -> dict:
    """The bench row's contention columns."""
    c = contention or {}
    return {"steal_pct": c.get("steal_pct"), "other_cpu_pct": c.get("other_cpu_pct"), "load1": c.get("load1"),
            "disturbed": is_disturbed(contention, other_cpu_pct, steal_pct)}


__all__ = [
    "DISTURBED_OTHER_CPU_PCT",
    "DISTURBED_STEAL_PCT",
    "CaseMarks",
    "Sampler",
    "is_disturbed",
    "read_cpu_times",
    "row_columns",
    "summarize",
]
