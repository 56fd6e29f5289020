"""The dashboard's Export page."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.widgets import (
    PLOTLY_CONFIG,
    choose,
    table,
)

EXPORT_COLUMNS = ("artifact", "precision", "quantization", "size_mb", "agreement_pct", "macro_f1", "dF1 pts",
                  "flagged", "repair_outcome", "kept_fp32")


def page_export(res: data.Results, run: str) -> None:
    arts = res.artifacts[res.artifacts["run"] == run]
    if not len(arts):
        st.info(f"Run **{run}** has no export.json; export it first: `edgedistill export --run runs/{run}`.")
        return
    shown = arts.assign(**{"dF1 pts": 100 * pd.to_numeric(arts.get("macro_f1_delta"), errors="coerce")})
    table(shown[[c for c in EXPORT_COLUMNS if c in shown]])
    st.caption("Test split, against the PyTorch FP32 checkpoint. `repair_outcome`: what the INT8 budget "
               "(export.max_f1_drop, validation) asked for; `kept_fp32`: the blocks a repaired artifact keeps in FP32.")
    evidence = arts[arts.get("evidence_verdict", pd.Series(dtype=object)).notna()] \
        if "evidence_verdict" in arts else arts.iloc[0:0]
    if len(evidence):
        st.subheader("INT8 evidence (validation and the unlabelled pool)")
        shown = evidence.assign(**{
            "val dF1 pts": -pd.to_numeric(evidence["evidence_drop_points"], errors="coerce"),
            "95% low": -pd.to_numeric(evidence["evidence_drop_high"], errors="coerce"),
            "95% high": -pd.to_numeric(evidence["evidence_drop_low"], errors="coerce"),
            "pool agreement %": evidence["evidence_pool_agreement_pct"],
            "pool 95% low": evidence["evidence_pool_agreement_low"], "pool KL": evidence["evidence_pool_kl"],
            "pool texts": evidence["evidence_pool_n"], "verdict": evidence["evidence_verdict"]})
        table(shown[["artifact", "val dF1 pts", "95% low", "95% high", "pool agreement %", "pool 95% low",
                     "pool KL", "pool texts", "verdict", "size_only"]])
        st.caption("Each INT8 artifact against its FP32 source: the validation macro-F1 change with its paired "
                   "bootstrap 95% interval, and the share of the unlabelled pool's texts whose label INT8 keeps. "
                   "Over budget only where the evidence says so (`over`); `noise`: a change inside its interval, "
                   "not repaired. `size_only`: slower than its FP32 source side by side; it ships for its size.")
    st.subheader("INT8 sensitivity (validation)")
    sens = res.sensitivity[res.sensitivity["run"] == run]
    if not len(sens):
        st.info("No INT8 sensitivity ranking in this run's export.json (export.sensitivity_samples: 0, or an "
                "export made before the ranking existed).")
        return
    worst = sens.sort_values("plain_f1_delta_points")["artifact"].iloc[0]
    artifacts = list(dict.fromkeys(sens["artifact"]))
    artifact = choose(st, "INT8 artifact", "sensitivity_artifact", artifacts, worst)
    one = sens[sens["artifact"] == artifact]
    first = one.iloc[0]
    st.caption(f"Each block kept alone in FP32, the rest INT8, scored on {first['n']:.0f} validation texts. Plain "
               f"INT8: {first['plain_f1_delta_points']:+.2f} pts of macro-F1 against its FP32 source "
               f"({first['source_macro_f1']:.4f}); repair: {first['outcome']}.")
    st.plotly_chart(charts.sensitivity_bars(one, title=f"{artifact}: which block loses the accuracy"),
                    key="sensitivity_bars", config=PLOTLY_CONFIG)
    with st.expander("Every block (table)"):
        table(one[["rank", "label", "macro_f1", "f1_delta_points", "recovered_points", "agreement_pct"]])

