"""The dashboard's Training page."""
from __future__ import annotations

import streamlit as st

from dashboard import charts, data
from dashboard.widgets import (
    PLOTLY_CONFIG,
    table,
)


def page_training(res: data.Results, run: str) -> None:
    steps = res.steps[res.steps["run"] == run]
    epochs = res.epochs[res.epochs["run"] == run]
    if not len(steps) and not len(epochs):
        st.info(f"Run **{run}** has no training history (metrics.json missing or without history).")
        return
    st.plotly_chart(charts.training_curves(steps, epochs), key="training_curves", config=PLOTLY_CONFIG)
    models = res.models[res.models["run"] == run].sort_values("method", key=lambda s: s.map(data.method_rank))
    table(models[["method", "layers", "params_total", "params_trainable", "best_epoch", "train_loss", "val_loss",
                  "val_macro_f1", "train_time_s", "train_examples_per_s"]])
    st.caption("Click a method in the legend to hide it in all four panels.")

