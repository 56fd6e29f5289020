"""The dashboard's Machines page."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, select
from dashboard.widgets import (
    LATENCIES,
    PLOTLY_CONFIG,
    choose,
    describe_selection,
    machine_names,
    run_bench,
    table,
)


def page_machines(res: data.Results, run: str) -> None:
    got = run_bench(res, run, columns=("scenario", "batch_size", "seq_len"))
    if got is None:
        return
    selection, rows, _ = got
    threads = sorted(int(t) for t in rows["threads"].dropna().unique())
    policy = choose(st.sidebar, "Threads", "machines_threads", ["most measured", *threads], "most measured",
                    help="most measured: each machine and device at the largest thread count it was measured with")
    if policy == "most measured":
        top = rows.groupby(["machine_id", "device"])["threads"].transform("max")
        rows = rows[rows["threads"] == top]
    else:
        rows = rows[rows["threads"] == policy]
    names = machine_names(res)
    rows = rows.assign(where=rows["machine_id"].map(names) + " · " + rows["device"])
    per_where = [select.points(g) for _, g in rows.groupby("where")]
    points = pd.concat(per_where) if per_where else rows.assign(point=pd.Series(dtype=str))
    if not len(points):
        st.info("Nothing measured under this selection.")
        return
    c1, c2 = st.columns(2)
    metric = c1.selectbox("Metric", [*LATENCIES, "throughput_per_s", "speedup_vs_teacher", "peak_rss_mb"],
                          format_func=lambda m: charts.LABELS.get(m, m), key="machines_metric")
    every = sorted(points["point"].unique())
    shared = [p for p in every if points.loc[points["point"] == p, "where"].nunique() > 1]
    only_shared = c2.checkbox("Only artifacts measured on more than one machine · device", value=bool(shared),
                              key="machines_shared")
    if only_shared:
        points = points[points["point"].isin(shared)]
    st.caption(f"{points['where'].nunique()} machine · device combinations, {describe_selection(selection, res)}, "
               f"threads: {policy}.")
    st.plotly_chart(charts.machines_bars(points, metric), key="machines_bars", config=PLOTLY_CONFIG)
    shown = res.machines[(res.machines["run"] == run) & res.machines["machine_id"].isin(points["machine_id"].unique())]
    if len(shown):
        st.markdown("**Where and how each machine's rows were measured**")
        table(shown[["machine_label", "machine_id", "arch", "emulated", "gpus", "measured_at", "how_measured"]])
        if shown["emulated"].fillna(False).astype(bool).any():
            st.caption("Emulated machines (QEMU user-mode): their rows check that every artifact runs and agrees; "
                       "their timings say nothing about the board and are never ranked.")
    order = list(dict.fromkeys(points.sort_values(
        ["model", "point"], key=lambda s: s.map(data.method_rank) if s.name == "model" else s)["point"]))
    for value, title in ((metric, charts.LABELS.get(metric, metric)),
                         ("macro_f1", "macro-F1 (should agree across machines)")):
        st.markdown(f"**{title}**")
        pivot = points.pivot_table(index="point", columns="where", values=value, aggfunc="first")
        table(pivot.reindex(order).reset_index())

