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

import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402
import streamlit as st  # noqa: E402

from dashboard import charts, data, pareto, playground, select  # noqa: E402
from edgedistill.methods import is_baseline  # noqa: E402
from edgedistill.targets import RETAINED_PCT  # noqa: E402

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
LATENCIES = {"latency_p50_ms": "p50", "latency_p90_ms": "p90", "latency_p99_ms": "p99", "latency_mean_ms": "mean"}
SHOW_COLUMNS = ("point", "model", "variant", "precision", "quantization", "trimmed_vocab", "runtime", "options",
                "device", "threads", "batch_size", "seq_len", "macro_f1", "accuracy", "f1_retained_pct",
                "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput_per_s", "speedup_vs_teacher",
                "paired_speedup_vs_teacher", "paired_speedup_vs_teacher_int8", "pct_of_peak", "disturbed",
                "other_cpu_pct", "size_mb", "size_ratio_vs_fp32", "peak_rss_mb", "load_s")
PLOTLY_CONFIG = {"displaylogo": False}


def number_columns(df: pd.DataFrame) -> dict:
    """Three decimals for scores, one for milliseconds and megabytes, counts as counts."""
    cfg = {}
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            continue
        if c.startswith("params") and "(M)" not in c:
            cfg[c] = st.column_config.NumberColumn(format="compact")
        elif c in ("threads", "batch_size", "best_epoch", "rounds", "bench_rows", "bench rows", "models", "artifacts",
                   "logical_cores", "cores", "support"):
            cfg[c] = st.column_config.NumberColumn(format="%d")
        elif not pd.api.types.is_float_dtype(df[c]):
            continue
        elif c.endswith(("_ms", "_mb", "_gb", "_pct", "_s", "_per_s", "speedup_vs_teacher", "(M)")):
            cfg[c] = st.column_config.NumberColumn(format="%.1f")
        else:
            cfg[c] = st.column_config.NumberColumn(format="%.3f")
    return cfg


def table(df: pd.DataFrame, **kwargs) -> None:
    st.dataframe(df, hide_index=True, column_config=number_columns(df), **kwargs)


# ---------------------------------------------------------------------------------------------
# Navigation and shared selectors
# ---------------------------------------------------------------------------------------------

def from_query(key: str, allowed: list, fallback):
    """The URL's value for ``key`` when it is one of ``allowed`` (first visit only), else ``fallback``."""
    value = st.query_params.get(key)
    return value if value in allowed else fallback


def choose(container, label: str, key: str, values: list, fallback, **kwargs):
    """A selectbox whose remembered value is dropped when it is no longer offered (a filter narrowed)."""
    if st.session_state.get(key) not in values:
        st.session_state[key] = fallback
    return container.selectbox(label, values, key=key, **kwargs)


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


def machine_names(res: data.Results) -> dict[str, str]:
    names = res.machines.drop_duplicates("machine_id", keep="last").set_index("machine_id")["machine_label"].to_dict()
    for machine_id in res.bench["machine_id"].unique():
        names.setdefault(machine_id, machine_id)
    # Two boxes of the same model share a label; the id keeps them apart.
    labels = list(names.values())
    return {m: (f"{n} ({m})" if labels.count(n) > 1 else n) for m, n in names.items()}


def bench_filters(rows: pd.DataFrame, res: data.Results,
                  columns=tuple(c for c, _ in select.FILTERS)) -> tuple[dict, pd.DataFrame]:
    """Sidebar selectors for ``columns`` (cascading); returns the selection and the rows it leaves."""
    st.sidebar.subheader("Measurements")
    names = machine_names(res)
    selection = {}
    for column, label in select.FILTERS:
        if column not in columns:
            continue
        values = select.options(rows, column)
        if not values:
            continue
        fmt = (lambda m: names.get(m, m)) if column == "machine_id" else str
        selection[column] = choose(st.sidebar, label, f"filter_{column}", values, select.default(column, values),
                                   format_func=fmt)
        rows = select.apply(rows, {column: selection[column]})
    return selection, rows


def describe_selection(selection: dict, res: data.Results) -> str:
    names = machine_names(res)
    parts = []
    for column, label in select.FILTERS:
        if column in selection:
            value = names.get(selection[column], selection[column]) if column == "machine_id" else selection[column]
            parts.append(f"{label.lower()} **{value}**")
    return ", ".join(parts)


def no_bench(run: str) -> None:
    st.info(f"Run **{run}** has no bench rows yet. Measure it with `edgedistill bench --run runs/{run}` "
            "(or `make run`), then reload.")


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------

def reference_table(res: data.Results, run: str) -> pd.DataFrame:
    """Model, training loss, test accuracy, macro-F1, per-class P/R/F1 and AUCs, one row per method."""
    models = res.models[res.models["run"] == run].copy()
    models = models.sort_values("method", key=lambda s: s.map(data.method_rank))
    out = pd.DataFrame({
        "model": models["method"], "train loss": models["train_loss"], "accuracy": models["accuracy"],
        "macro-F1": models["macro_f1"],
    })
    pc = res.per_class[res.per_class["run"] == run]
    labels = res.label_names.get(run) or sorted(pc["label"].unique())
    for label in labels:
        for metric, short in (("precision", "P"), ("recall", "R"), ("f1", "F1")):
            values = pc[pc["label"] == label].set_index("method")[metric]
            out[f"{short} {label}"] = models["method"].map(values).to_numpy()
    out["ROC-AUC"] = models["roc_auc"].to_numpy()
    out["PR-AUC"] = models["pr_auc"].to_numpy()
    return out


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
    rows = res.bench[res.bench["run"] == run]
    if not len(rows):
        no_bench(run)
        return
    selection, rows = bench_filters(rows, res)
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
            st.caption(f"macro-F1 {row['macro_f1']:.3f} · p50 {row['latency_p50_ms']:.2f} ms · "
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


def page_tradeoffs(res: data.Results, run: str) -> None:
    rows = res.bench[res.bench["run"] == run]
    if not len(rows):
        no_bench(run)
        return
    selection, rows = bench_filters(rows, res)
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


def page_machines(res: data.Results, run: str) -> None:
    rows = res.bench[res.bench["run"] == run]
    if not len(rows):
        no_bench(run)
        return
    selection, rows = bench_filters(rows, res, columns=("scenario", "batch_size", "seq_len"))
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
        table(shown[["machine_label", "machine_id", "arch", "gpus", "measured_at", "how_measured"]])
    order = list(dict.fromkeys(points.sort_values(
        ["model", "point"], key=lambda s: s.map(data.method_rank) if s.name == "model" else s)["point"]))
    for value, title in ((metric, charts.LABELS.get(metric, metric)),
                         ("macro_f1", "macro-F1 (should agree across machines)")):
        st.markdown(f"**{title}**")
        pivot = points.pivot_table(index="point", columns="where", values=value, aggfunc="first")
        table(pivot.reindex(order).reset_index())


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


@st.cache_resource(max_entries=8, show_spinner=False)
def load_predictor(folder: str, stamp: float):
    """One predictor per folder and version, shared by every session of this server."""
    from edgedistill.predictor import load_predictor as load

    predictor = load(folder, device="cpu")
    # The first call pays one-off costs (allocation, graph set-up) that the shown latency should not include.
    predictor.predict(["warm up"])
    return predictor


def _stamp(c: playground.Candidate) -> float:
    marker = Path(c.folder) / ("edgedistill.json" if c.variant == "pytorch" else "manifest.json")
    return marker.stat().st_mtime


def page_playground(res: data.Results, run: str, runs_dirs: list[str]) -> None:
    candidates, warnings = playground.discover(runs_dirs, res.runs)
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
        text = st.text_area("Text", "what a great day, I love this place", max_chars=playground.MAX_CHARS,
                            key="playground_text", help=f"At most {playground.MAX_CHARS} characters.")
        chosen = st.multiselect(f"Models (up to {playground.MAX_CHOSEN})", list(by_name), default=default,
                                max_selections=playground.MAX_CHOSEN, key="playground_models")
        submitted = st.form_submit_button("Predict", type="primary")
    if submitted:
        text = playground.cap(text)
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


def predict_all(text: str, chosen: list[playground.Candidate], bench: pd.DataFrame) -> dict:
    """Each chosen model's label, class probabilities and latency here, beside its bench p50 on CPU."""
    results = []
    for c in chosen:
        entry = {"name": c.name}
        try:
            predictor = load_predictor(c.folder, _stamp(c))
            pred, ms = playground.predict_timed(predictor, text)
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


def page_downloads(res: data.Results, run: str) -> None:
    rows = res.bench[res.bench["run"] == run]
    if len(rows):
        selection, filtered = bench_filters(rows, res)
        filtered = select.points(filtered)
        st.subheader("Filtered bench rows")
        st.caption(describe_selection(selection, res))
        table(filtered)
        st.download_button("Download filtered rows (CSV)", filtered.to_csv(index=False).encode(),
                           file_name=f"{run}-bench-filtered.csv", mime="text/csv", key="dl_filtered")
        st.download_button("Download all bench rows of this run (CSV)", rows.to_csv(index=False).encode(),
                           file_name=f"{run}-bench.csv", mime="text/csv", key="dl_all")
    else:
        no_bench(run)
    ref = reference_table(res, run)
    if len(ref):
        st.subheader("Results table")
        table(ref)
        st.download_button("Download results table (CSV)", ref.to_csv(index=False).encode(),
                           file_name=f"{run}-results.csv", mime="text/csv", key="dl_results")


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
        page_playground(res, run, runs_dirs)
    else:
        {"overview": page_overview, "trade-offs": page_tradeoffs, "per-class": page_per_class,
         "training": page_training, "machines": page_machines, "export": page_export,
         "downloads": page_downloads}[page](res, run)


main()
