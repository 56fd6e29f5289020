"""The dashboard's one loader: every ``results/<run>/{metrics,export,bench}.json`` into tidy frames.

``load_results(folder)`` is cached on the files' modification times, so the page re-reads a run
as soon as a stage rewrites it and never otherwise. A file that is not valid JSON, carries
another ``schema_version`` or lacks the keys the dashboard reads is skipped, and a warning
naming it is returned for the page to show. Metrics are read as written; nothing is recomputed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from bench.schema import READABLE_VERSIONS as BENCH_VERSIONS
from edgedistill.methods import rank

SCHEMA_VERSION = 1
# Later bench.json versions only add columns and scenarios (bench/schema.py); every readable one reads alike.
FILE_VERSIONS = {"bench.json": BENCH_VERSIONS}
RESULT_FILES = ("metrics.json", "export.json", "bench.json")

# docs/design.md, "Bench row columns"; per-class columns (f1_<label>, ...) come on top.
BENCH_IDENTITY = ("machine_id", "machine_label", "run", "model", "artifact", "variant", "format", "precision",
                  "quantization", "trimmed_vocab", "runtime", "device", "threads", "options", "scenario",
                  "batch_size", "seq_len")
BENCH_ACCURACY = ("accuracy", "macro_f1", "roc_auc", "pr_auc")
BENCH_FOOTPRINT = ("size_mb", "params", "load_s", "peak_rss_mb")
BENCH_SPEED = ("latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_min_ms",
               "latency_stddev_ms", "rounds", "throughput_per_s", "tokenize_ms")
BENCH_DERIVED = ("speedup_vs_teacher", "size_ratio_vs_fp32", "f1_retained_pct", "size_only")
BENCH_TRUST = ("other_cpu_pct", "steal_pct", "load1", "paired_speedup_vs_teacher", "paired_speedup_vs_teacher_low",
               "paired_speedup_vs_teacher_high", "paired_speedup_vs_teacher_int8", "paired_speedup_vs_teacher_int8_low",
               "paired_speedup_vs_teacher_int8_high", "gflop_per_call", "achieved_gflops", "floor_ms", "pct_of_peak")
BENCH_COLUMNS = (BENCH_IDENTITY + BENCH_ACCURACY + BENCH_FOOTPRINT + BENCH_SPEED + BENCH_DERIVED + BENCH_TRUST
                 + ("disturbed", "measured_at", "emulated"))
# Without these a row cannot be placed on any chart, so it is dropped (with a warning).
BENCH_REQUIRED = ("machine_id", "model", "artifact", "runtime", "device", "batch_size", "seq_len", "macro_f1")
PER_CLASS_PREFIXES = ("precision_", "recall_", "f1_")

MODEL_COLUMNS = ("run", "method", "layers", "params_total", "params_trainable", "train_time_s",
                 "train_examples_per_s", "best_epoch", "train_loss", "val_loss", "val_macro_f1", "n_test",
                 "accuracy", "macro_f1", "roc_auc", "pr_auc")
STEP_COLUMNS = ("run", "method", "step", "epoch", "loss")
EPOCH_COLUMNS = ("run", "method", "epoch", "train_loss", "val_loss", "val_macro_f1", "val_accuracy")
PER_CLASS_COLUMNS = ("run", "method", "label", "precision", "recall", "f1", "support")
CONFUSION_COLUMNS = ("run", "method", "true", "pred", "count")
# export.json: an INT8 artifact's block ranking (export/sensitivity.py), one row per block.
SENSITIVITY_COLUMNS = ("run", "artifact", "model", "variant", "rank", "block", "label", "kind", "macro_f1",
                       "f1_delta_points", "recovered_points", "agreement_pct", "plain_f1_delta_points",
                       "source_macro_f1", "n", "outcome")
MACHINE_COLUMNS = ("run", "machine_id", "machine_label", "cpu_model", "logical_cores", "memory_gb", "gpus",
                   "os", "arch", "emulated", "measured_at", "bench_rows", "bandwidth_gbs", "passes_within_10pct",
                   "disturbed_rows", "how_measured")


class ResultFileError(ValueError):
    """A result file the dashboard cannot use; the message says why, the loader names the file."""


@dataclass
class Results:
    """Everything under one results folder, as tidy frames (one row per observation)."""
    root: str
    runs: list[str] = field(default_factory=list)
    label_names: dict[str, list[str]] = field(default_factory=dict)
    models: pd.DataFrame = field(default_factory=lambda: _frame(MODEL_COLUMNS))
    per_class: pd.DataFrame = field(default_factory=lambda: _frame(PER_CLASS_COLUMNS))
    confusion: pd.DataFrame = field(default_factory=lambda: _frame(CONFUSION_COLUMNS))
    steps: pd.DataFrame = field(default_factory=lambda: _frame(STEP_COLUMNS))
    epochs: pd.DataFrame = field(default_factory=lambda: _frame(EPOCH_COLUMNS))
    artifacts: pd.DataFrame = field(default_factory=lambda: _frame(("run", "model", "variant")))
    sensitivity: pd.DataFrame = field(default_factory=lambda: _frame(SENSITIVITY_COLUMNS))
    bench: pd.DataFrame = field(default_factory=lambda: _frame(BENCH_COLUMNS))
    machines: pd.DataFrame = field(default_factory=lambda: _frame(MACHINE_COLUMNS))
    files: pd.DataFrame = field(default_factory=lambda: _frame(("run", "file", "status")))
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.runs


def _frame(columns) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _table(records: list[dict], columns) -> pd.DataFrame:
    return pd.DataFrame.from_records(records, columns=list(columns)) if records else _frame(columns)


# ---------------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------------

def read_result_file(path: Path, required: dict[str, type]) -> dict:
    """Parse ``path`` and check its schema version and top-level keys; raise ResultFileError."""
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultFileError(f"not valid JSON ({e.msg} at line {e.lineno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultFileError(f"cannot be read ({e})") from None
    if not isinstance(doc, dict):
        raise ResultFileError(f"expected a JSON object, found {type(doc).__name__}")
    version = doc.get("schema_version")
    versions = FILE_VERSIONS.get(path.name, (SCHEMA_VERSION,))
    if version not in versions:
        raise ResultFileError(f"schema_version {version!r} is not {' or '.join(map(str, versions))}, the "
                              "version(s) this dashboard reads (re-run the stage that wrote it, or use a matching "
                              "edgedistill)")
    for key, tp in required.items():
        if not isinstance(doc.get(key), tp):
            raise ResultFileError(f"key {key!r} is missing or not a {tp.__name__}")
    return doc


def _num(value):
    """A JSON number as float; anything else (None, "n/a") as NaN so columns stay numeric."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _parse_metrics(run: str, doc: dict, out: dict, warn) -> list[str]:
    labels = list((doc.get("data") or {}).get("label_names") or [])
    for method, entry in doc["models"].items():
        if not isinstance(entry, dict):
            warn(f"metrics.json of run {run!r}: model {method!r} is not an object, skipped")
            continue
        test = entry.get("test") or {}
        history = entry.get("history") or {}
        epochs = [e for e in history.get("epochs") or [] if isinstance(e, dict)]
        steps = [s for s in history.get("steps") or [] if isinstance(s, dict)]
        best = entry.get("best_epoch")
        at_best = next((e for e in epochs if e.get("epoch") == best), epochs[-1] if epochs else {})
        layers = entry.get("layers")
        out["models"].append({
            "run": run, "method": method,
            "layers": (",".join(map(str, layers)) if isinstance(layers, list)
                       else ("all" if layers is None else str(layers))),
            "params_total": _num(entry.get("params_total")), "params_trainable": _num(entry.get("params_trainable")),
            "train_time_s": _num(entry.get("train_time_s")),
            "train_examples_per_s": _num(entry.get("train_examples_per_s")), "best_epoch": best,
            "train_loss": _num(at_best.get("train_loss")), "val_loss": _num(at_best.get("val_loss")),
            "val_macro_f1": _num(at_best.get("val_macro_f1")), "n_test": _num(test.get("n")),
            **{k: _num(test.get(k)) for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc")},
        })
        per_class = test.get("per_class") or {}
        if not labels and isinstance(per_class, dict):
            labels = list(per_class)
        for label, m in per_class.items() if isinstance(per_class, dict) else ():
            m = m if isinstance(m, dict) else {}
            out["per_class"].append({"run": run, "method": method, "label": label,
                                     **{k: _num(m.get(k)) for k in ("precision", "recall", "f1", "support")}})
        matrix = test.get("confusion_matrix")
        names = labels or list(per_class)
        if isinstance(matrix, list) and len(matrix) == len(names) and all(
                isinstance(r, list) and len(r) == len(names) for r in matrix):
            for i, row in enumerate(matrix):
                for j, count in enumerate(row):
                    out["confusion"].append({"run": run, "method": method, "true": names[i], "pred": names[j],
                                             "count": _num(count)})
        elif matrix is not None:
            warn(f"metrics.json of run {run!r}: the confusion matrix of {method!r} does not match "
                 f"{len(names)} labels, not shown")
        for s in steps:
            out["steps"].append({"run": run, "method": method, "step": _num(s.get("step")),
                                 "epoch": _num(s.get("epoch")), "loss": _num(s.get("loss"))})
        for e in epochs:
            out["epochs"].append({"run": run, "method": method, **{k: _num(e.get(k)) for k in EPOCH_COLUMNS[2:]}})
    return labels


# export/sensitivity.py's evidence per INT8 artifact: the validation drop with its interval, the pool agreement.
EVIDENCE_COLUMNS = ("drop_points", "drop_low", "drop_high", "pool_agreement_pct", "pool_agreement_low",
                    "pool_agreement_high", "pool_kl", "pool_n", "verdict")


def _parse_export(run: str, doc: dict, out: dict, warn) -> None:
    for i, art in enumerate(doc["artifacts"]):
        if not isinstance(art, dict):
            warn(f"export.json of run {run!r}: artifact #{i} is not an object, skipped")
            continue
        row = {k: v for k, v in art.items() if not isinstance(v, (dict, list))}
        parity = art.get("parity") if isinstance(art.get("parity"), dict) else {}
        row.update({f"parity_{k}": v for k, v in parity.items()})
        row["run"] = run
        row.setdefault("artifact", f"{art.get('model')}/{art.get('variant')}")
        repair = art.get("repair") if isinstance(art.get("repair"), dict) else {}
        row["repair_outcome"] = repair.get("outcome") or ("repaired sibling" if repair.get("of") else None)
        row["kept_fp32"] = ", ".join(repair.get("excluded") or []) or None
        evidence = art.get("evidence") if isinstance(art.get("evidence"), dict) else {}
        for key in EVIDENCE_COLUMNS:
            row[f"evidence_{key}"] = evidence.get(key)
        row["size_only"] = bool((art.get("speed_vs_fp32") or {}).get("slower")) if art.get("precision") == "int8" \
            else None
        out["artifacts"].append(row)
        sens = art.get("sensitivity")
        if isinstance(sens, dict) and isinstance(sens.get("blocks"), list):
            plain = sens.get("plain") if isinstance(sens.get("plain"), dict) else {}
            for b in sens["blocks"]:
                if not isinstance(b, dict):
                    continue
                block = str(b.get("block"))
                out["sensitivity"].append({
                    "run": run, "artifact": row["artifact"], "model": art.get("model"),
                    "variant": art.get("variant"), "rank": _num(b.get("rank")), "block": block,
                    "label": b.get("label") or block,
                    "kind": block.split(".")[-1] if block.startswith("layer.") else block,
                    **{k: _num(b.get(k)) for k in ("macro_f1", "f1_delta_points", "recovered_points",
                                                   "agreement_pct")},
                    "plain_f1_delta_points": _num(plain.get("f1_delta_points")),
                    "source_macro_f1": _num(sens.get("source_macro_f1")), "n": _num(sens.get("n")),
                    "outcome": repair.get("outcome")})


def _parse_bench(run: str, doc: dict, out: dict, warn) -> None:
    rows, dropped = [], 0
    # Rows timed on an emulated CPU (the machine block's hardware says so): shown, never ranked on speed.
    emulated = {mid for mid, b in doc["machines"].items()
                if isinstance(b, dict) and isinstance(b.get("hardware"), dict) and b["hardware"].get("emulated")}
    for row in doc["rows"]:
        if not isinstance(row, dict) or any(row.get(k) is None for k in BENCH_REQUIRED):
            dropped += 1
            continue
        rows.append({**row, "run": run, "emulated": row["machine_id"] in emulated})
    if dropped:
        warn(f"bench.json of run {run!r}: {dropped} row(s) lack one of {', '.join(BENCH_REQUIRED)} and were skipped")
    out["bench"].extend(rows)
    counts = pd.Series([r["machine_id"] for r in rows], dtype=object).value_counts().to_dict()
    # Rows timed while other processes took the CPU (edgedistill/contention.py); absent in version-1 files.
    busy = pd.Series([r["machine_id"] for r in rows if r.get("disturbed") is True],
                     dtype=object).value_counts().to_dict()
    for machine_id, info in doc["machines"].items():
        info = info if isinstance(info, dict) else {}
        hw = info.get("hardware") if isinstance(info.get("hardware"), dict) else {}
        label = hw.get("label") or next((r.get("machine_label") for r in rows if r["machine_id"] == machine_id), None)
        gpus = hw.get("gpus") if isinstance(hw.get("gpus"), list) else []
        out["machines"].append({
            "run": run, "machine_id": machine_id, "machine_label": label or machine_id,
            "cpu_model": hw.get("cpu_model"), "logical_cores": _num(hw.get("logical_cores")),
            "memory_gb": _num(hw.get("memory_gb")),
            "gpus": ", ".join(str(g.get("name")) for g in gpus if isinstance(g, dict)) or "none",
            "os": hw.get("os"), "arch": hw.get("arch"), "emulated": bool(hw.get("emulated")),
            "measured_at": info.get("measured_at"),
            "bench_rows": int(counts.get(machine_id, 0)), "disturbed_rows": int(busy.get(machine_id, 0)),
            **_steadiness(info), "how_measured": _how_measured(info),
        })


def _how_measured(info: dict) -> str:
    """What the result file says about how a machine's rows were made: the note given when it
    was merged (e.g. a GPU box's stack and command), the transport of its weights, its bundle."""
    parts = [info.get("merge_note"), info.get("transport")]
    bundle = info.get("bundle")
    if isinstance(bundle, dict):
        parts.append(f"benched from a bundle written at commit {bundle.get('git_commit')} on {bundle.get('arch')}")
    return " ".join(str(p) for p in parts if p)


def _steadiness(info: dict) -> dict:
    """The bench's own steadiness figures for one machine (bench.reporting.report.steadiness), as text."""
    from bench.reporting.report import steadiness

    s = steadiness(info)
    gbs, passes = s["bandwidth_gbs"], s["passes_within_10pct"]
    return {"bandwidth_gbs": f"{gbs[0]:.1f} to {gbs[1]:.1f}" if gbs else None,
            "passes_within_10pct": f"{passes[0]} of {passes[1]}" if passes else None}


PARSERS = {
    "metrics.json": ({"models": dict}, _parse_metrics),
    "export.json": ({"artifacts": list}, _parse_export),
    "bench.json": ({"rows": list, "machines": dict}, _parse_bench),
}


# ---------------------------------------------------------------------------------------------
# The whole folder
# ---------------------------------------------------------------------------------------------

def result_files(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for run in root.iterdir() if run.is_dir() and not run.name.startswith(".")
                  for p in (run / name for name in RESULT_FILES) if p.is_file())


def signature(root: str | Path) -> tuple:
    """(path, mtime_ns, size) of every result file: the cache key, so a rewritten file is re-read."""
    out = []
    for p in result_files(root):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


def read_results(root: str | Path) -> Results:
    """Read every result file under ``root`` (uncached); bad files become warnings, not errors."""
    root = Path(root)
    out: dict[str, list] = {k: [] for k in ("models", "per_class", "confusion", "steps", "epochs", "artifacts",
                                            "sensitivity", "bench", "machines", "files")}
    warnings: list[str] = []
    runs, label_names = [], {}
    for path in result_files(root):
        run, name = path.parent.name, path.name
        required, parse = PARSERS[name]
        shown = f"{root.name}/{run}/{name}"
        try:
            doc = read_result_file(path, required)
            if doc.get("run") not in (None, run):
                warnings.append(f"{shown}: says run {doc.get('run')!r} but lies in folder {run!r}; "
                                f"shown as {run!r}")
            staged = {k: [] for k in out}
            labels = parse(run, doc, staged, lambda msg, shown=shown: warnings.append(f"{shown}: {msg}"))
        except ResultFileError as e:
            warnings.append(f"{shown} skipped: {e}.")
            out["files"].append({"run": run, "file": name, "status": f"skipped: {e}"})
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            warnings.append(f"{shown} skipped: malformed ({type(e).__name__}: {e}).")
            out["files"].append({"run": run, "file": name, "status": "skipped: malformed"})
            continue
        # Only a file that parsed completely contributes rows, so a bad file leaves nothing half-read.
        for k, rows in staged.items():
            out[k].extend(rows)
        if labels:
            label_names.setdefault(run, labels)
        out["files"].append({"run": run, "file": name, "status": "ok"})
        if run not in runs:
            runs.append(run)

    bench = pd.DataFrame.from_records(out["bench"]) if out["bench"] else _frame(BENCH_COLUMNS)
    for col in BENCH_COLUMNS:
        if col not in bench:
            bench[col] = None
    numbers = BENCH_ACCURACY + BENCH_FOOTPRINT + BENCH_SPEED + BENCH_DERIVED + BENCH_TRUST + ("threads", "batch_size")
    numeric = [c for c in bench if c in numbers or c.startswith(PER_CLASS_PREFIXES)]
    for col in numeric:
        bench[col] = pd.to_numeric(bench[col], errors="coerce")
    for col in ("seq_len", "options", "machine_label", "variant", "precision", "quantization", "format", "scenario"):
        bench[col] = bench[col].fillna("").astype(str)
    bench["machine_label"] = bench["machine_label"].where(bench["machine_label"] != "", bench["machine_id"])
    for run in bench["run"].unique() if len(bench) else ():
        if run not in label_names:
            cols = [c[3:] for c in bench if c.startswith("f1_") and bench.loc[bench["run"] == run, c].notna().any()]
            if cols:
                label_names[run] = cols

    return Results(
        root=str(root), runs=sorted(runs), label_names=label_names,
        models=_table(out["models"], MODEL_COLUMNS), per_class=_table(out["per_class"], PER_CLASS_COLUMNS),
        confusion=_table(out["confusion"], CONFUSION_COLUMNS), steps=_table(out["steps"], STEP_COLUMNS),
        epochs=_table(out["epochs"], EPOCH_COLUMNS),
        artifacts=(pd.DataFrame.from_records(out["artifacts"]) if out["artifacts"]
                   else _frame(("run", "model", "variant"))),
        sensitivity=_table(out["sensitivity"], SENSITIVITY_COLUMNS),
        bench=bench, machines=_table(out["machines"], MACHINE_COLUMNS),
        files=_table(out["files"], ("run", "file", "status")), warnings=warnings,
    )


@st.cache_data(show_spinner="Reading results...", max_entries=8)
def _cached(root: str, key: tuple) -> Results:
    return read_results(root)


def load_results(root: str | Path) -> Results:
    """The cached loader: re-reads only when a result file under ``root`` was added or rewritten."""
    root = str(Path(root).resolve())
    return _cached(root, signature(root))


def method_rank(method: str) -> int:
    """Teacher first, then students in the documented order, unknown names last."""
    return rank(method)
