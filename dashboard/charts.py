"""Plotly figures for the dashboard pages; each takes tidy frames from ``dashboard.data`` and draws them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.data import method_rank
from dashboard.pareto import pareto_front, spans_decades
from edgedistill.methods import COLOURS, is_baseline

# One colour per method everywhere (edgedistill.methods), so "odd" is the same colour on every page.
METHOD_COLORS = COLOURS
PRECISION_SYMBOLS = {"fp32": "circle", "fp16": "diamond", "bf16": "square", "int8": "triangle-up"}
LABELS = {
    "macro_f1": "macro-F1 (test)", "accuracy": "accuracy (test)", "size_mb": "size (MB)",
    "latency_p50_ms": "latency p50 (ms)", "latency_p90_ms": "latency p90 (ms)", "latency_p99_ms": "latency p99 (ms)",
    "latency_mean_ms": "latency mean (ms)", "throughput_per_s": "throughput (texts/s)",
    "model": "method", "precision": "precision", "point": "artifact · runtime",
}
HOVER = ("artifact", "runtime", "options", "device", "threads", "batch_size", "seq_len", "precision", "quantization",
         "size_mb", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "throughput_per_s", "accuracy", "macro_f1",
         "f1_retained_pct", "speedup_vs_teacher")


def _method_order(methods) -> list[str]:
    return sorted(set(methods), key=lambda m: (method_rank(m), m))


def log_ticks(values) -> dict:
    """1-2-5 ticks labelled in full (0.5, 1, 2, ...) for a log axis; plotly's default drops the leading "0."."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    v = v[v > 0].dropna()
    if not len(v):
        return {}
    lo, hi = np.floor(np.log10(v.min())), np.ceil(np.log10(v.max()))
    ticks = [float(m * 10.0 ** e) for e in np.arange(lo, hi + 1) for m in (1, 2, 5)]
    ticks = [t for t in ticks if v.min() / 1.5 <= t <= v.max() * 1.5]
    return dict(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])


def _layout(fig: go.Figure, title: str | None = None, height: int = 480) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=60 if title else 30, b=10),
                      legend=dict(title=None), template="plotly_white")
    return fig


def tradeoff_scatter(points: pd.DataFrame, cost: str, score: str = "macro_f1", log_x: bool | None = None,
                     title: str | None = None) -> go.Figure:
    """Cost (latency or size) against macro-F1, one marker per artifact x runtime, the frontier as a step line.

    ``log_x=None`` picks a log axis when the costs span a decade or more.
    """
    df = points.dropna(subset=[cost, score])
    log_x = spans_decades(df[cost]) if log_x is None else log_x
    hover = {c: True for c in HOVER if c in df and c not in (cost, score)}
    fig = px.scatter(
        df, x=cost, y=score, color="model", symbol="precision", hover_name="point", hover_data=hover,
        color_discrete_map=METHOD_COLORS, symbol_map=PRECISION_SYMBOLS, log_x=log_x, labels=LABELS,
        category_orders={"model": _method_order(df["model"]), "precision": list(PRECISION_SYMBOLS)},
    )
    fig.update_traces(marker=dict(size=12, line=dict(width=1, color="white")))
    if log_x:
        fig.update_xaxes(**log_ticks(df[cost]))
    base = df[df["model"].map(is_baseline)]
    if len(base):
        # Peer baselines (what a user would run instead) ringed and named, so they never pass for students.
        fig.add_trace(go.Scatter(x=base[cost], y=base[score], mode="markers+text", name="peer baseline",
                                 text=[f"baseline: {m}" for m in base["model"]], textposition="top center",
                                 marker=dict(size=22, symbol="circle-open", color="#111827", line=dict(width=2)),
                                 hoverinfo="skip"))
    front = pareto_front(df, cost, score)
    if len(front):
        # A step line: past each frontier point, more cost buys nothing until the next one.
        fig.add_trace(go.Scatter(x=front[cost], y=front[score], mode="lines", line_shape="hv", name="Pareto frontier",
                                 line=dict(color="#9ca3af", dash="dash", width=1.5), hoverinfo="skip"))
    return _layout(fig, title)


def per_class_bars(per_class: pd.DataFrame, labels: list[str] | None = None) -> go.Figure:
    """Precision, recall and F1 per class, grouped by method, one panel per metric."""
    long = per_class.melt(id_vars=["method", "label"], value_vars=["precision", "recall", "f1"],
                          var_name="metric", value_name="value")
    fig = px.bar(long, x="label", y="value", color="method", barmode="group", facet_col="metric",
                 color_discrete_map=METHOD_COLORS, range_y=[0, 1.05],
                 category_orders={"method": _method_order(long["method"]), "metric": ["precision", "recall", "f1"],
                                  "label": labels or sorted(long["label"].unique())},
                 hover_data={"value": ":.3f"}, labels={"label": "class", "value": ""})
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return _layout(fig, height=420)


def confusion_heatmap(confusion: pd.DataFrame, labels: list[str], normalize: bool, title: str) -> go.Figure:
    """Rows are true classes, columns predictions; normalized = each row divided by its class's count."""
    m = confusion.pivot_table(index="true", columns="pred", values="count", aggfunc="sum")
    m = m.reindex(index=labels, columns=labels)
    values = m.to_numpy(dtype=float)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    fig = px.imshow(values, x=labels, y=labels, text_auto=".2f" if normalize else ".0f", color_continuous_scale="Blues",
                    zmin=0, zmax=1 if normalize else None, aspect="auto",
                    labels=dict(x="predicted", y="true", color="share of true class" if normalize else "texts"))
    fig.update_xaxes(side="bottom", type="category")
    fig.update_yaxes(type="category")
    return _layout(fig, title, height=360)


def training_curves(steps: pd.DataFrame, epochs: pd.DataFrame) -> go.Figure:
    """One figure: training loss per logged step, and validation loss / macro-F1 / accuracy per epoch."""
    fig = make_subplots(rows=2, cols=2, subplot_titles=("training loss (per logged step)", "validation loss",
                                                        "validation macro-F1", "validation accuracy"),
                        horizontal_spacing=0.08, vertical_spacing=0.14)
    panels = ((1, 2, "val_loss"), (2, 1, "val_macro_f1"), (2, 2, "val_accuracy"))
    for method in _method_order(list(steps["method"]) + list(epochs["method"])):
        color = METHOD_COLORS.get(method)
        s = steps[steps["method"] == method].sort_values("step")
        first = True
        if len(s):
            fig.add_trace(go.Scatter(x=s["step"], y=s["loss"], mode="lines", name=method, legendgroup=method,
                                     line=dict(color=color), customdata=s[["epoch"]],
                                     hovertemplate="step %{x}<br>epoch %{customdata[0]:.2f}<br>loss %{y:.4f}"),
                          row=1, col=1)
            first = False
        e = epochs[epochs["method"] == method].sort_values("epoch")
        for r, c, col in panels:
            if e[col].notna().any():
                fig.add_trace(go.Scatter(x=e["epoch"], y=e[col], mode="lines+markers", name=method, legendgroup=method,
                                         showlegend=first, line=dict(color=color),
                                         hovertemplate=f"epoch %{{x}}<br>{col} %{{y:.4f}}"), row=r, col=c)
                first = False
    fig.update_xaxes(title_text="step", row=1, col=1)
    for r, c, _ in panels:
        fig.update_xaxes(title_text="epoch", dtick=1, row=r, col=c)
    return _layout(fig, height=640)


def machines_bars(rows: pd.DataFrame, metric: str, log_x: bool | None = None) -> go.Figure:
    """The same artifacts side by side on every machine x device (one bar colour per machine x device)."""
    df = rows.dropna(subset=[metric])
    log_x = spans_decades(df[metric]) if log_x is None else log_x
    order = df.sort_values(["model", "artifact"], key=lambda s: s.map(method_rank) if s.name == "model" else s)["point"]
    fig = px.bar(df, y="point", x=metric, color="where", barmode="group", orientation="h", log_x=log_x,
                 hover_data={c: True for c in ("threads", "batch_size", "seq_len", "macro_f1", "speedup_vs_teacher")
                             if c in df},
                 category_orders={"point": list(dict.fromkeys(order))}, labels={**LABELS, "where": "machine · device"})
    fig.update_yaxes(title=None)
    if log_x:
        fig.update_xaxes(**log_ticks(df[metric]))
    return _layout(fig, height=max(360, 26 * df["point"].nunique() * max(1, df["where"].nunique()) // 2 + 120))


BLOCK_KINDS = {"embeddings": "embeddings", "qkv": "Q/K/V", "attn_out": "attention out", "ffn_in": "FFN in",
               "ffn_out": "FFN out", "classifier": "classifier"}


def sensitivity_bars(blocks: pd.DataFrame, title: str | None = None) -> go.Figure:
    """One INT8 artifact's blocks, most sensitive on top: the validation macro-F1 points bought back
    by keeping the block alone in FP32; the dashed line is the whole gap to the FP32 source."""
    df = blocks.sort_values("rank").assign(kind_name=lambda d: d["kind"].map(BLOCK_KINDS).fillna(d["kind"]))
    fig = px.bar(df, y="label", x="recovered_points", color="kind_name", orientation="h",
                 category_orders={"label": list(df["label"]), "kind_name": list(BLOCK_KINDS.values())},
                 hover_data={"rank": True, "macro_f1": ":.4f", "f1_delta_points": ":+.2f", "agreement_pct": ":.1f",
                             "kind_name": False},
                 labels={"recovered_points": "validation macro-F1 points bought back (block alone in FP32)",
                         "label": "", "kind_name": "block", "macro_f1": "validation macro-F1",
                         "f1_delta_points": "dF1 vs FP32 (pts)", "agreement_pct": "agreement with FP32 %"})
    gap = df["plain_f1_delta_points"].dropna()
    if len(gap) and gap.iloc[0] < 0:
        fig.add_vline(x=-gap.iloc[0], line_dash="dash", line_color="#6b7280",
                      annotation_text="gap to FP32", annotation_position="top")
    return _layout(fig, title, height=max(320, 22 * len(df) + 140))
