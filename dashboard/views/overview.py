"""The dashboard's Overview page."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, pareto, select
from dashboard.widgets import (
    describe_selection,
    machine_names,
    reference_table,
    run_bench,
    table,
)
from edgedistill.methods import is_baseline
from edgedistill.scenarios import DESCRIBE
from edgedistill.targets import RETAINED_PCT


def page_overview(res: data.Results, run: str) -> None:
    st.subheader("Runs")
    runs, names = [], machine_names(res)
    for r in res.runs:
        files = res.files[res.files["run"] == r]
        machines = res.bench.loc[res.bench["run"] == r, "machine_id"].unique()
        runs.append({
            "run": r,
            "models": int((res.models["run"] == r).sum()),
            "artifacts": int((res.artifacts["run"] == r).sum()) if "run" in res.artifacts else 0,
            "bench rows": int((res.bench["run"] == r).sum()),
            "machines": ", ".join(sorted(names.get(m, m) for m in machines)) or "none",
            "files": ", ".join(f"{f} ({s})" if s != "ok" else f for f, s in zip(files["file"], files["status"])),
        })
    table(pd.DataFrame(runs))

    st.subheader("Machines")
    if len(res.machines):
        m = res.machines.sort_values("measured_at", na_position="first").groupby("machine_id", as_index=False).agg(
            machine=("machine_label", "last"), cpu=("cpu_model", "last"), cores=("logical_cores", "last"),
            memory_gb=("memory_gb", "last"), gpus=("gpus", "last"), os=("os", "last"),
            runs=("run", lambda s: ", ".join(sorted(set(s)))), bench_rows=("bench_rows", "sum"),
            last_measured=("measured_at", "last"), bandwidth_gbs=("bandwidth_gbs", "last"),
            passes_within_10pct=("passes_within_10pct", "last"), disturbed_rows=("disturbed_rows", "sum"))
        table(m)
    else:
        st.caption("No bench.json yet, so no machines.")

    st.subheader(f"Results of run {run} (test split)")
    ref = reference_table(res, run)
    if len(ref):
        table(ref)
        st.caption("From metrics.json: PyTorch checkpoints on the test split; train loss at the best epoch. "
                   "P / R / F1 are per class, AUCs one-vs-rest macro averages.")
    else:
        st.info(f"Run **{run}** has no metrics.json; train it with `edgedistill train` or `make run`.")

    st.subheader("Best artifact per goal")
    got = run_bench(res, run)
    if got is None:
        return
    selection, rows, _ = got
    points = select.points(rows)
    keep = st.slider("Target (% of the teacher's macro-F1 kept)", 90.0, 100.0, RETAINED_PCT, 0.5, key="retained",
                     format="%.1f")
    ref_f1, source = pareto.teacher_reference(points, res.models[res.models["run"] == run])
    best = pareto.best_per_goal(points, ref_f1, keep)
    cols = st.columns(len(pareto.GOALS))
    values = {"accurate": ("macro_f1", "macro-F1 {:.3f}"), "fastest_1pct": ("latency_p50_ms", "p50 {:.2f} ms"),
              "fastest_3pct": ("latency_p50_ms", "p50 {:.2f} ms"), "smallest": ("size_mb", "{:.1f} MB")}
    for col, (goal, title) in zip(cols, pareto.GOALS.items()):
        row = best[goal]
        with col.container(border=True):
            st.markdown(f"**{title.replace('within 1%', f'keeping >= {keep:g}%')}**")
            if row is None:
                st.write("No artifact qualifies" + ("" if ref_f1 is not None
                                                    else " (no teacher result to compare with)"))
                continue
            key, fmt = values[goal]
            st.metric(row["point"] + (" (baseline)" if is_baseline(row["model"]) else ""), fmt.format(row[key]))
            st.caption(f"macro-F1 {row['macro_f1']:.3f} · p50 {row['latency_p50_ms']:.2f} ms "
                       f"({DESCRIBE.get(row['scenario'], row['scenario'])}) · "
                       f"{row['size_mb']:.1f} MB · {row['precision']}"
                       + (" · timed while the machine was busy (disturbed)"
                          if row.get("disturbed") in (True,) else ""))
    for b in pareto.baselines(points, ref_f1, best):
        won = ", ".join(pareto.GOALS[g].lower() for g in b["wins"])
        retained = f"{b['retained_pct']:.1f}% of the teacher" if b["retained_pct"] is not None else "teacher unknown"
        text = (f"Peer baseline **{b['model']}**: macro-F1 {b['macro_f1']:.3f} ({retained}), "
                f"{b['rank']} of {b['of']} models by macro-F1")
        (st.success if won else st.caption)(text + (f"; **wins: {won}** — a baseline beats every distilled model "
                                                    "there." if won else "."))
    ref_text = f"{ref_f1:.3f} ({source})" if ref_f1 is not None else source
    st.caption(f"Among {len(points)} artifact × runtime measurements on {describe_selection(selection, res)}. "
               f"Teacher macro-F1: {ref_text}.")

