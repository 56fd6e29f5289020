"""The dashboard's Downloads page."""
from __future__ import annotations

import streamlit as st

from dashboard import data, select
from dashboard.widgets import (
    describe_selection,
    reference_table,
    run_bench,
    table,
)


def page_downloads(res: data.Results, run: str) -> None:
    got = run_bench(res, run)
    if got is not None:
        selection, filtered, rows = got
        filtered = select.points(filtered)
        st.subheader("Filtered bench rows")
        st.caption(describe_selection(selection, res))
        table(filtered)
        st.download_button("Download filtered rows (CSV)", filtered.to_csv(index=False).encode(),
                           file_name=f"{run}-bench-filtered.csv", mime="text/csv", key="dl_filtered")
        st.download_button("Download all bench rows of this run (CSV)", rows.to_csv(index=False).encode(),
                           file_name=f"{run}-bench.csv", mime="text/csv", key="dl_all")
    ref = reference_table(res, run)
    if len(ref):
        st.subheader("Results table")
        table(ref)
        st.download_button("Download results table (CSV)", ref.to_csv(index=False).encode(),
                           file_name=f"{run}-results.csv", mime="text/csv", key="dl_results")

