"""The dashboard's Playground page."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from dashboard import data
from dashboard import playground as play
from dashboard.widgets import (
    PLOTLY_CONFIG,
)


@st.cache_resource(max_entries=8, show_spinner=False)
def load_predictor(folder: str, stamp: float):
    """One predictor per folder and version, shared by every session of this server."""
    from edgedistill.predictor import load_predictor as load

    predictor = load(folder, device="cpu")
    # The first call pays one-off costs (allocation, graph set-up) that the shown latency should not include.
    predictor.predict(["warm up"])
    return predictor


def _stamp(c: play.Candidate) -> float:
    marker = Path(c.folder) / ("edgedistill.json" if c.variant == "pytorch" else "manifest.json")
    return marker.stat().st_mtime


def page_playground(res: data.Results, run: str, runs_dirs: list[str]) -> None:
    candidates, warnings = play.discover(runs_dirs, res.runs)
    for w in warnings:
        st.warning(w)
    if not candidates:
        st.info(f"No trained models or exported artifacts were found for the runs in the results folder "
                f"({', '.join(res.runs)}) under {', '.join(f'`{d}`' for d in runs_dirs)}. They live in "
                "`runs/<run>/models/<method>/` and `runs/<run>/artifacts/<method>/<variant>/`, which are not "
                "committed: produce them with `make run`, or start the dashboard with `--runs DIR`. "
                "The other pages work without them.")
        return
    candidates.sort(key=lambda c: (c.run != run, c.run, data.method_rank(c.model), c.variant != "pytorch", c.variant))
    by_name = {c.name: c for c in candidates}
    default = [c.name for c in candidates if c.run == run][:2]
    with st.form("playground"):
        text = st.text_area("Text", "what a great day, I love this place", max_chars=play.MAX_CHARS,
                            key="playground_text", help=f"At most {play.MAX_CHARS} characters.")
        chosen = st.multiselect(f"Models (up to {play.MAX_CHOSEN})", list(by_name), default=default,
                                max_selections=play.MAX_CHOSEN, key="playground_models")
        submitted = st.form_submit_button("Predict", type="primary")
    if submitted:
        text = play.cap(text)
        if not text:
            # A model asked to classify nothing still returns a confident-looking label.
            st.session_state["playground_out"] = None
            st.info("Nothing to classify: the text is empty or only spaces. Type or paste a text first.")
            return
        st.session_state["playground_out"] = predict_all(text, [by_name[n] for n in chosen if n in by_name],
                                                         res.bench)
    out = st.session_state.get("playground_out")
    if not out:
        st.caption("Models load on first use and stay loaded for later predictions.")
        return
    cols = st.columns(len(out["results"]) or 1)
    for col, r in zip(cols, out["results"]):
        with col.container(border=True):
            st.markdown(f"**{r['name']}**")
            if "error" in r:
                st.error(r["error"])
                continue
            st.metric("label", r["label"])
            probs = pd.DataFrame({"class": r["classes"], "probability": r["probs"]})
            probs["predicted"] = probs["class"] == r["label"]
            fig = px.bar(probs, x="probability", y="class", orientation="h", range_x=[0, 1], text_auto=".3f",
                         color="predicted", color_discrete_map={True: "#2563eb", False: "#cbd5e1"})
            fig.update_layout(height=60 + 34 * len(probs), margin=dict(l=0, r=0, t=10, b=0), yaxis_title=None,
                              xaxis_title=None, template="plotly_white", showlegend=False)
            fig.update_yaxes(categoryorder="array", categoryarray=r["classes"], autorange="reversed")
            st.plotly_chart(fig, key=f"probs_{r['name']}", config={**PLOTLY_CONFIG, "displayModeBar": False})
            st.caption(f"{r['latency_ms']:.2f} ms here (median of 3 calls, batch 1, CPU)")
            if r.get("bench"):
                st.caption(f"bench p50 {r['bench']['latency_p50_ms']:.2f} ms on {r['bench']['where']}")
    st.caption(f"Text: {len(out['text'])} characters.")


def predict_all(text: str, chosen: list[play.Candidate], bench: pd.DataFrame) -> dict:
    """Each chosen model's label, class probabilities and latency here, beside its bench p50 on CPU."""
    results = []
    for c in chosen:
        entry = {"name": c.name}
        try:
            predictor = load_predictor(c.folder, _stamp(c))
            pred, ms = play.predict_timed(predictor, text)
        except ImportError as e:
            entry["error"] = f"The export stage cannot load models here ({e})."
        except Exception as e:  # one broken artifact must not take the other columns down
            entry["error"] = f"Could not load or run {c.folder}: {type(e).__name__}: {e}"
        else:
            probs = [float(p) for p in pred.probs[0]]
            names = (list(c.label_names) if len(c.label_names) == len(probs)
                     else [f"class {i}" for i in range(len(probs))])
            entry.update(label=str(pred.labels[0]), probs=probs, latency_ms=ms, classes=names)
            # The bench's single-text CPU figure to compare with: its fastest machine and thread count.
            rows = bench[(bench["run"] == c.run) & (bench["artifact"] == c.artifact) & (bench["device"] == "cpu")
                         & (bench["batch_size"] == 1)
                         & (bench["seq_len"] == "natural")].dropna(subset=["latency_p50_ms"])
            if len(rows):
                best = rows.loc[rows["latency_p50_ms"].idxmin()]
                entry["bench"] = {"latency_p50_ms": float(best["latency_p50_ms"]),
                                  "where": f"{best['machine_label']}, {best['threads']:.0f} thread(s)"}
        results.append(entry)
    return {"text": text, "results": results}

