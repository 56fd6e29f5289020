"""Which bench rows a page shows: one machine, device, scenario, batch size, sequence length, threads.

The choices cascade: each selector offers only the values present among the rows the earlier
selectors left, so every combination on screen was actually measured.
"""
from __future__ import annotations

import pandas as pd

from edgedistill.scenarios import order as scenario_order

# (column, label) in the order the selectors cascade.
FILTERS = (
    ("machine_id", "Machine"),
    ("device", "Device"),
    ("scenario", "Scenario"),
    ("batch_size", "Batch size"),
    ("seq_len", "Sequence length"),
    ("threads", "Threads"),
)
# Identity of one point on a trade-off chart once the filters above are fixed.
POINT_KEY = ("artifact", "runtime", "options")


def _seq_len_key(v) -> tuple:
    s = str(v)
    return (0, 0) if s == "natural" else (1, int(s)) if s.isdigit() else (2, s)


def options(rows: pd.DataFrame, column: str) -> list:
    """The distinct values of ``column`` in a stable, natural order (numbers ascending, "natural" first)."""
    if column not in rows or not len(rows):
        return []
    values = [v for v in rows[column].dropna().unique().tolist()]
    if column == "seq_len":
        return sorted(values, key=_seq_len_key)
    if column in ("batch_size", "threads"):
        return sorted(int(v) for v in values)
    if column == "device":
        return sorted(values, key=lambda d: (d != "cpu", d))
    if column == "scenario":      # the headline (text -> label) first: what a page opens with
        return sorted(values, key=lambda s: (scenario_order(s), s))
    return sorted(values, key=str)


def default(column: str, values: list):
    """The value a page opens with: CPU, text -> label latency, batch 1, natural length, the most threads."""
    if not values:
        return None
    if column == "threads":
        return max(values)
    if column == "batch_size":
        return min(values)
    return values[0]


def apply(rows: pd.DataFrame, selection: dict) -> pd.DataFrame:
    """Rows matching every ``column: value`` in ``selection`` (None means any)."""
    mask = pd.Series(True, index=rows.index)
    for column, value in selection.items():
        if value is None or column not in rows:
            continue
        if column in ("batch_size", "threads"):
            mask &= pd.to_numeric(rows[column], errors="coerce") == value
        else:
            mask &= rows[column].astype(str) == str(value)
    return rows[mask]


def points(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per artifact x runtime x options (the latest measurement wins) with a display name."""
    if not len(rows):
        return rows.assign(point=pd.Series(dtype=str))
    rows = rows.sort_values("measured_at", na_position="first").drop_duplicates(list(POINT_KEY), keep="last")
    name = rows["artifact"].astype(str) + " · " + rows["runtime"].astype(str)
    name = name + rows["options"].astype(str).map(lambda o: f" · {o}" if o else "")
    return rows.assign(point=name)
