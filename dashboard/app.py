"""The Streamlit app: ``edgedistill dashboard`` runs it over a results folder.

Pages are chosen in the sidebar and mirrored in the URL (``?page=trade-offs&run=quickstart``),
so a link or a screenshot script can open any page directly. The folders come from the
environment the CLI sets: ``EDGEDISTILL_RESULTS`` (default ``results``) and ``EDGEDISTILL_RUNS``
(default ``runs``; several joined with ``os.pathsep``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import data  # noqa: E402
from dashboard.views import (  # noqa: E402
    downloads,
    export,
    machines,
    overview,
    per_class,
    playground,
    tradeoffs,
    training,
)
from dashboard.widgets import choose, from_query  # noqa: E402

RESULTS_ENV, RUNS_ENV = "EDGEDISTILL_RESULTS", "EDGEDISTILL_RUNS"
PAGES = {
    "overview": "Overview",
    "trade-offs": "Trade-offs",
    "per-class": "Per class",
    "training": "Training",
    "machines": "Machines",
    "export": "Export",
    "playground": "Playground",
    "downloads": "Downloads",
}


def choose_page() -> str:
    slugs = list(PAGES)
    if "page" not in st.session_state:
        st.session_state["page"] = from_query("page", slugs, slugs[0])
    page = st.sidebar.radio("Page", slugs, key="page", format_func=PAGES.get)
    st.query_params["page"] = page
    return page


def choose_run(res: data.Results) -> str:
    if "run" not in st.session_state:
        st.session_state["run"] = from_query("run", res.runs, res.runs[-1])
    run = choose(st.sidebar, "Run", "run", res.runs, res.runs[-1])
    st.query_params["run"] = run
    return run


def page_empty(results_dir: str) -> None:
    st.header("No results yet")
    st.markdown(f"The dashboard shows what the pipeline writes to `results/<run>/` (metrics.json, export.json, "
                f"bench.json), and `{results_dir}` holds none. Produce a first run (a few minutes on a laptop CPU):")
    st.code("make run", language="bash")
    st.markdown("or, inside the installed environment:")
    st.code("edgedistill run configs/quickstart.yaml", language="bash")
    st.markdown("Then reload this page. Results elsewhere? Start the dashboard with "
                "`edgedistill dashboard --results DIR`.")


def main() -> None:
    st.set_page_config(page_title="edgedistill dashboard", page_icon=":material/speed:", layout="wide")
    results_dir = os.environ.get(RESULTS_ENV, "results")
    runs_dirs = [d for d in os.environ.get(RUNS_ENV, "runs").split(os.pathsep) if d]
    res = data.load_results(results_dir)
    page = choose_page()
    st.title(f"edgedistill · {PAGES[page]}")
    for w in res.warnings:
        st.warning(w, icon=":material/warning:")
    if res.empty:
        page_empty(results_dir)
        return
    run = choose_run(res)
    st.caption(f"Run **{run}** · results from `{res.root}`")
    if page == "playground":
        playground.page_playground(res, run, runs_dirs)
    else:
        {"overview": overview.page_overview, "trade-offs": tradeoffs.page_tradeoffs,
         "per-class": per_class.page_per_class, "training": training.page_training,
         "machines": machines.page_machines, "export": export.page_export,
         "downloads": downloads.page_downloads}[page](res, run)



main()
