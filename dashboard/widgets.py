"""What every dashboard page shares: table formatting, the sidebar's cascading filters, the reference
table of a run's models, and the column sets the pages show."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data, select

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


def from_query(key: str, allowed: list, fallback):
    """The URL's value for ``key`` when it is one of ``allowed`` (first visit only), else ``fallback``."""
    value = st.query_params.get(key)
    return value if value in allowed else fallback


def choose(container, label: str, key: str, values: list, fallback, **kwargs):
    """A selectbox whose remembered value is dropped when it is no longer offered (a filter narrowed)."""
    if st.session_state.get(key) not in values:
        st.session_state[key] = fallback
    return container.selectbox(label, values, key=key, **kwargs)


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


def run_bench(res: data.Results, run: str, columns=tuple(c for c, _ in select.FILTERS)
              ) -> tuple[dict, pd.DataFrame, pd.DataFrame] | None:
    """The bench pages' common start: this run's bench rows through the sidebar filters, as
    (selection, filtered rows, all rows of the run); None, with a note on how to measure, when the
    run has none."""
    rows = res.bench[res.bench["run"] == run]
    if not len(rows):
        no_bench(run)
        return None
    selection, filtered = bench_filters(rows, res, columns)
    return selection, filtered, rows


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

