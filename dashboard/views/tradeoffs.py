"""The dashboard's Trade-offs page."""
from __future__ import annotations

import streamlit as st

from dashboard import charts, data, pareto, select
from dashboard.widgets import (
    LATENCIES,
    PLOTLY_CONFIG,
    SHOW_COLUMNS,
    describe_selection,
    run_bench,
    table,
)


def page_tradeoffs(res: data.Results, run: str) -> None:
    got = run_bench(res, run)
    if got is None:
        return
    selection, rows, _ = got
    points = select.points(rows)
    c1, c2 = st.columns([1, 1])
    latency = c1.selectbox("Latency statistic", list(LATENCIES), format_func=LATENCIES.get, key="latency_stat")
    scale = c2.radio("Cost axis", ["auto", "linear", "log"], horizontal=True, key="axis_scale",
                     help="auto: logarithmic when the values span a factor of 10 or more")
    log_x = None if scale == "auto" else scale == "log"
    st.caption(f"{len(points)} artifact × runtime measurements on {describe_selection(selection, res)}. "
               "Colour: method; shape: precision; dashed: the Pareto frontier (nothing is both cheaper and more "
               "accurate).")
    left, right = st.columns(2)
    with left:
        fig = charts.tradeoff_scatter(points, latency, log_x=log_x, title=f"Latency {LATENCIES[latency]} vs macro-F1")
        st.plotly_chart(fig, key="tradeoff_latency", config=PLOTLY_CONFIG)
    with right:
        st.plotly_chart(charts.tradeoff_scatter(points, "size_mb", log_x=log_x, title="Size vs macro-F1"),
                        key="tradeoff_size", config=PLOTLY_CONFIG)
    shown = points.assign(
        on_latency_frontier=pareto.pareto_mask(points, latency, "macro_f1"),
        on_size_frontier=pareto.pareto_mask(points, "size_mb", "macro_f1"),
    ).sort_values("macro_f1", ascending=False)
    table(shown[[c for c in ("point", "on_latency_frontier", "on_size_frontier", *SHOW_COLUMNS[1:]) if c in shown]])

