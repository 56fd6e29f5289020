"""The dashboard's Per class page."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data, select
from dashboard.widgets import (
    PLOTLY_CONFIG,
    choose,
    table,
)


def page_per_class(res: data.Results, run: str) -> None:
    labels = res.label_names.get(run, [])
    pc = res.per_class[res.per_class["run"] == run]
    if not len(pc):
        st.info(f"Run **{run}** has no per-class metrics (metrics.json missing or without per_class).")
    else:
        methods = sorted(pc["method"].unique(), key=data.method_rank)
        chosen = st.multiselect("Models", methods, default=methods, key="per_class_methods")
        pc = pc[pc["method"].isin(chosen)]
        st.plotly_chart(charts.per_class_bars(pc, labels), key="per_class_bars", config=PLOTLY_CONFIG)
        support = pc.drop_duplicates("label").set_index("label")["support"]
        st.caption("Test split support per class: " + ", ".join(f"{k} {v:.0f}" for k, v in support.items())
                   + ". Accuracy alone hides a weak minority class; its recall shows it.")
        wide = pc.pivot_table(index="method", columns="label", values=["precision", "recall", "f1"])
        wide.columns = [f"{m} {label}" for m, label in wide.columns]
        table(wide.reset_index().sort_values("method", key=lambda s: s.map(data.method_rank)))

    st.subheader("Confusion matrices")
    cm = res.confusion[res.confusion["run"] == run]
    if not len(cm):
        st.info("No confusion matrices in metrics.json for this run.")
    else:
        methods = sorted(cm["method"].unique(), key=data.method_rank)
        method = choose(st, "Model", "confusion_method", methods, methods[0])
        one = cm[cm["method"] == method]
        names = labels or sorted(one["true"].unique())
        left, right = st.columns(2)
        left.plotly_chart(charts.confusion_heatmap(one, names, False, f"{method}: counts"), key="cm_counts",
                          config=PLOTLY_CONFIG)
        right.plotly_chart(charts.confusion_heatmap(one, names, True, f"{method}: normalized by true class"),
                           key="cm_normalized", config=PLOTLY_CONFIG)

    rows = res.bench[res.bench["run"] == run]
    per_label = [c for c in rows.columns if c.startswith(data.PER_CLASS_PREFIXES) and rows[c].notna().any()]
    if len(rows) and per_label:
        with st.expander("Per-class scores of every benchmarked artifact (bench rows)"):
            # Scores are measured on the full test split, identical across threads, batch sizes and
            # machines; only the runtime and device (e.g. FP16 on CUDA) can change them.
            points = pd.concat([select.points(g) for _, g in rows.groupby("device")])
            points = points.assign(point=points["point"] + " · " + points["device"])
            order = [f"{p}{label}" for p in data.PER_CLASS_PREFIXES[::-1] for label in labels
                     if f"{p}{label}" in per_label]
            table(points[["point", "macro_f1", *(order or per_label)]].sort_values("macro_f1", ascending=False))

