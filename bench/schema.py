"""The bench result file: flat rows (docs/design.md, "Bench row columns") plus machine blocks.

``BenchRow.to_dict`` is the one serialiser: ``bench.json`` rows and ``bench.csv`` lines are
both made from it, and ``BenchRow.from_dict`` reads either back. Per-class metrics become the
columns ``f1_<label>``, ``precision_<label>``, ``recall_<label>``.

This module imports nothing heavy (no torch, no transformers, no numpy): the GPU script uses it
on a machine with another Python stack.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgedistill.methods import rank
from edgedistill.scenarios import TEXT_LATENCY, TOKENIZE
from edgedistill.scenarios import order as scenario_order

# 2: contention, paired-ratio and roofline columns (all optional; version-1 files read as before).
# 3: text -> label scenarios (edgedistill.scenarios) with tokenize_ms, and size_only (older files read as before).
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
BENCH_FILE, CSV_FILE, REPORT_FILE = "bench.json", "bench.csv", "report.md"
PER_CLASS_METRICS = ("f1", "precision", "recall")

# Columns that identify a measurement; two rows with the same values here are the same
# measurement (a re-run replaces it).
KEY_COLUMNS = ("machine_id", "artifact", "runtime", "device", "precision", "threads", "options",
               "scenario", "batch_size", "seq_len")


def sort_key(row: BenchRow) -> tuple:
    """Stable, readable order: machine, teacher first, checkpoint before its exports, latency
    before throughput, natural length before fixed lengths in increasing order."""
    model = rank(row.model)
    seq = -1 if row.seq_len == "natural" else int(row.seq_len) if str(row.seq_len).isdigit() else 10**9
    return (row.machine_id, model, row.model, row.variant != "pytorch", row.variant, row.runtime, row.device,
            row.precision, row.threads or 0, row.options, scenario_order(row.scenario), row.batch_size, seq)


class BenchFileError(ValueError):
    """A bench.json that cannot be read or merged; the message names the file and the fix."""


# The paired headline ratios a row can carry (bench/scenarios/paired.py), and the reference each is against.
PAIRED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("paired_speedup_vs_teacher", "teacher PyTorch FP32"),
    ("paired_speedup_vs_teacher_int8", "teacher ORT INT8"),
)


@dataclass
class BenchRow:
    # Identity
    machine_id: str
    machine_label: str
    run: str
    model: str                       # teacher | odd | even | tiny | lora | hybrid
    artifact: str                    # <model>/<variant>; checkpoints are <model>/pytorch
    variant: str
    format: str                      # pytorch | onnx | openvino
    precision: str                   # fp32 | fp16 | bf16 | int8
    quantization: str                # none | dynamic | static | nncf
    trimmed_vocab: bool
    runtime: str                     # pytorch | onnxruntime | openvino
    device: str                      # cpu | cuda | gpu
    threads: int | None
    options: str                     # "", "compile", "cuda-graphs", "infer=f32", ...
    scenario: str                    # edgedistill.scenarios: text-latency | text-throughput | latency | throughput
    batch_size: int
    seq_len: str                     # natural | 16 | 64 | 128
    # Accuracy on the test split (same on every row of one artifact x runtime x device x precision)
    accuracy: float | None = None
    macro_f1: float | None = None
    roc_auc: float | None = None
    pr_auc: float | None = None
    per_class: dict = field(default_factory=dict)   # label -> {f1, precision, recall}
    # Footprint
    size_mb: float | None = None
    params: int | None = None
    load_s: float | None = None
    peak_rss_mb: float | None = None
    # Speed (milliseconds per call; a call is one batch)
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_min_ms: float | None = None
    latency_stddev_ms: float | None = None
    rounds: int | None = None
    throughput_per_s: float | None = None
    # text-latency rows: the p50 of the artifact's tokenizer alone on the same texts, in the same process
    tokenize_ms: float | None = None
    # Derived inside the same run (bench.reporting.derive)
    speedup_vs_teacher: float | None = None
    size_ratio_vs_fp32: float | None = None
    f1_retained_pct: float | None = None
    # An INT8 artifact that its export timed slower than its FP32 source, side by side (export/speed.py):
    # it ships for its size, and no speed goal names it.
    size_only: bool | None = None
    # Contention while this row was timed (edgedistill/contention.py): others' share of the CPU time,
    # the hypervisor's steal, the load average; disturbed = past the bench's thresholds.
    other_cpu_pct: float | None = None
    steal_pct: float | None = None
    load1: float | None = None
    disturbed: bool | None = None
    # Paired headline ratios (bench/scenarios/paired.py): reference time / this artifact's time, both in one
    # process in ABBA blocks; median over blocks with a bootstrap 95% interval. References: teacher
    # PyTorch FP32 and teacher ONNX Runtime dynamic INT8.
    paired_speedup_vs_teacher: float | None = None
    paired_speedup_vs_teacher_low: float | None = None
    paired_speedup_vs_teacher_high: float | None = None
    paired_speedup_vs_teacher_int8: float | None = None
    paired_speedup_vs_teacher_int8_low: float | None = None
    paired_speedup_vs_teacher_int8_high: float | None = None
    # Distance to the limit (bench/scenarios/roofline.py): FLOPs per call from the model config, the rate
    # reached at p50, and the time the machine's measured MatMul peak would need.
    gflop_per_call: float | None = None
    achieved_gflops: float | None = None
    floor_ms: float | None = None
    pct_of_peak: float | None = None
    measured_at: str | None = None

    def key(self) -> tuple:
        return tuple(getattr(self, k) for k in KEY_COLUMNS)

    def key_text(self) -> str:
        """``key()`` as one string: how a machine block's ``repeats`` names the row."""
        return "|".join(str(v) for v in self.key())

    def to_dict(self) -> dict:
        """The flat row, in column order; the only serialiser for JSON and CSV."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "per_class":
                for metric in PER_CLASS_METRICS:
                    for label, values in self.per_class.items():
                        out[f"{metric}_{label}"] = values.get(metric)
            else:
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_dict(cls, data: dict, label_names: list[str] | None = None) -> BenchRow:
        """A row from ``to_dict`` output, from JSON or from CSV strings (types restored)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"per_class"}
        missing = [k for k in KEY_COLUMNS + ("model", "variant", "format", "run") if k not in data]
        if missing:
            raise ValueError(f"row lacks column(s) {', '.join(missing)}")
        kwargs = {k: _coerce(k, data[k]) for k in names if k in data}
        labels = label_names if label_names is not None else _labels_in(data)
        per_class = {}
        for label in labels:
            values = {m: _to_float(data.get(f"{m}_{label}")) for m in PER_CLASS_METRICS}
            if any(v is not None for v in values.values()):   # empty CSV cells = no accuracy measured
                per_class[label] = values
        return cls(per_class=per_class, **kwargs)


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(BenchRow)}
SPEED_COLUMNS = ("latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_min_ms",
                 "latency_stddev_ms", "rounds", "throughput_per_s")


def rows_from_timings(identity: dict, metrics: dict | None, footprint: dict, timings: dict,
                      measured_at: str, case_columns=None) -> tuple[list[BenchRow], dict[str, list[float]]]:
    """The one row builder, for every runtime and machine: one row per timed case (its first
    repeat), made of ``identity`` (machine, run, artifact, runtime, device, precision, threads,
    options), the accuracy ``metrics`` (None: not measured), the ``footprint`` (size_mb, params,
    load_s, peak_rss_mb) and the case's speed; plus {row key: [p50 of each repeat]}.
    A case's own options (cuda-graphs, compile) replace the identity's. ``case_columns(timing)``
    adds columns that depend on the case (contention while it was timed, FLOPs and the floor)."""
    per_class = ({label: {m: v[m] for m in PER_CLASS_METRICS} for label, v in metrics["per_class"].items()}
                 if metrics else {})
    accuracy = {k: (metrics or {}).get(k) for k in ("accuracy", "macro_f1", "roc_auc", "pr_auc")}
    rows, repeats, tokenize = {}, {}, {}
    for timing in timings.values():
        case = timing["case"]
        options = case.get("options") or identity.get("options", "")
        if case["scenario"] == TOKENIZE:      # not a row: the tokenizer's share of the text-latency row
            if case.get("repeat", 0) == 0:
                tokenize[options] = timing["latency_p50_ms"]
            continue
        key = (case["scenario"], case["batch_size"], case["seq_len"], options)
        repeats.setdefault(key, []).append(timing["latency_p50_ms"])
        if case.get("repeat", 0) != 0:
            continue
        rows[key] = BenchRow(**{**identity, "options": options}, scenario=case["scenario"],
                             batch_size=case["batch_size"], seq_len=case["seq_len"], per_class=per_class,
                             **accuracy, **footprint, **{k: timing[k] for k in SPEED_COLUMNS},
                             **(case_columns(timing) if case_columns else {}), measured_at=measured_at)
    for (scenario, _, _, options), row in rows.items():
        if scenario == TEXT_LATENCY:
            row.tokenize_ms = tokenize.get(options)
    spread = {rows[k].key_text(): p50s for k, p50s in repeats.items() if len(p50s) > 1}
    return list(rows.values()), spread


def _labels_in(data: dict) -> list[str]:
    return [k[len("f1_"):] for k in data if k.startswith("f1_") and k not in _FIELD_TYPES]


def _to_float(v):
    if v is None or v == "":
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _coerce(name: str, v):
    """Restore a column's type; CSV gives strings, JSON gives the types already."""
    tp = _FIELD_TYPES[name]
    if v is None or (v == "" and tp != "str"):
        return None
    if tp.startswith("bool"):
        return v if isinstance(v, bool) else str(v).lower() == "true"
    if tp.startswith("int"):
        return int(float(v))
    if tp.startswith("float"):
        return _to_float(v)
    return "" if v is None else str(v)


def columns(rows: list[BenchRow]) -> list[str]:
    """Every column of ``rows`` in schema order (per-class columns follow pr_auc)."""
    cols: list[str] = []
    for row in rows:
        for k in row.to_dict():
            if k not in cols:
                cols.append(k)
    if not rows:
        cols = [f.name for f in dataclasses.fields(BenchRow) if f.name != "per_class"]
    return cols


def rows_to_csv(rows: list[BenchRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns(rows), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.to_dict().items()})
    return buf.getvalue()


def rows_from_csv(text: str) -> list[BenchRow]:
    return [BenchRow.from_dict(d) for d in csv.DictReader(io.StringIO(text))]


# --- the file --------------------------------------------------------------------------------

def new_document(run: str) -> dict:
    return {"schema_version": SCHEMA_VERSION, "run": run, "machines": {}, "rows": []}


def machine_block(hardware: dict, provenance: dict, bench_config: dict, extra: dict | None = None) -> dict:
    """What a machine's rows were measured with; ``extra`` holds e.g. the repeat p50s."""
    return {"hardware": hardware, "provenance": provenance, "bench_config": bench_config,
            "measured_at": now_iso(), **(extra or {})}


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _fix_hint(path: Path) -> str:
    return "Pass a bench.json written by `edgedistill bench` (or bench/launchers/gpu/run.py)."


def _start_new_hint(path: Path) -> str:
    """For the file a bench writes into (the only place --force-new acts)."""
    return (f"Move it away (e.g. mv {path} {path}.old) to start a new file, or pass --force-new, which keeps "
            f"it as {path.name}.corrupt-<time> and starts a new one.")


def validate_document(doc, path: str | Path = "bench.json") -> list[BenchRow]:
    """Check a parsed bench.json; return its rows or raise BenchFileError naming the problem."""
    path = Path(path)
    expected = (f"expected a bench result file: a JSON object with schema_version {SCHEMA_VERSION}, run, "
                "machines {machine_id: {hardware, provenance, bench_config, measured_at}} and rows [...]")
    if not isinstance(doc, dict) or not {"schema_version", "machines", "rows"} <= set(doc):
        found = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
        raise BenchFileError(f"{path} is not a bench result file (found {found}); {expected}. {_fix_hint(path)}")
    if doc["schema_version"] not in READABLE_VERSIONS:
        raise BenchFileError(f"{path} has schema_version {doc['schema_version']!r}, this edgedistill writes "
                             f"version {SCHEMA_VERSION} and reads {', '.join(map(str, READABLE_VERSIONS))}; "
                             f"{expected}. {_fix_hint(path)}")
    if not isinstance(doc["machines"], dict) or not isinstance(doc["rows"], list):
        raise BenchFileError(f"{path}: machines must be an object and rows a list; {expected}. {_fix_hint(path)}")
    for mid, block in doc["machines"].items():
        if not isinstance(block, dict) or "hardware" not in block:
            raise BenchFileError(f"{path}: machines.{mid} lacks its hardware block; {expected}. {_fix_hint(path)}")
    rows = []
    for i, data in enumerate(doc["rows"]):
        try:
            row = BenchRow.from_dict(data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BenchFileError(f"{path}: rows[{i}] is not a bench row ({exc}); {expected}. "
                                 f"{_fix_hint(path)}") from None
        if row.machine_id not in doc["machines"]:
            raise BenchFileError(f"{path}: rows[{i}] belongs to machine {row.machine_id!r}, which has no entry in "
                                 f"machines; {expected}. {_fix_hint(path)}")
        rows.append(row)
    return rows


def read_document(path: str | Path) -> tuple[dict, list[BenchRow]]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchFileError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BenchFileError(f"{path} is not valid JSON ({exc}). {_fix_hint(path)}") from None
    return doc, validate_document(doc, path)


def load_or_new(path: str | Path, run: str, force_new: bool | None = False) -> tuple[dict, list[BenchRow]]:
    """The existing bench.json (checked) or a new one; ``force_new`` sets a bad file aside (None: the
    command has no --force-new, so a bad file is refused without offering it)."""
    path = Path(path)
    if not path.exists():
        return new_document(run), []
    try:
        return read_document(path)
    except BenchFileError as exc:
        if not force_new:
            text = str(exc).replace(_fix_hint(path), "").rstrip(" .")
            fix = _start_new_hint(path) if force_new is not None else f"Move it away (e.g. mv {path} {path}.old)."
            raise BenchFileError(f"{text}, so it cannot be merged into. {fix}") from None
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(str(path), aside)
        print(f"{path} was not a usable bench file; kept it as {aside} and started a new one (--force-new)")
        return new_document(run), []


def previous_run(block: dict, rows: list[BenchRow], machine_id: str) -> dict:
    """What a re-run keeps of the run it replaces on the same machine: when it ran, from which
    commit and with which settings, and each row's p50. Two bench runs are the honest test of
    repeatability; the two timing passes inside one run sit only seconds apart."""
    return {"measured_at": block.get("measured_at"),
            "git_commit": (block.get("provenance") or {}).get("git_commit"),
            "bench_config": block.get("bench_config"),
            "p50": {r.key_text(): r.latency_p50_ms for r in rows
                    if r.machine_id == machine_id and r.latency_p50_ms is not None},
            # The paired headline ratios [median, low, high], so a re-run shows whether they agree.
            "paired": {f"{r.key_text()}|{column}": [getattr(r, column), getattr(r, column + "_low"),
                                                    getattr(r, column + "_high")]
                       for r in rows if r.machine_id == machine_id
                       for column in ("paired_speedup_vs_teacher", "paired_speedup_vs_teacher_int8")
                       if getattr(r, column) is not None}}


def replace_machine(doc: dict, rows: list[BenchRow], machine_id: str, block: dict,
                    new_rows: list[BenchRow], keep=None, ran: set[str] | None = None) -> tuple[dict, list[BenchRow]]:
    """``doc`` with ``machine_id``'s block and rows replaced; other machines are untouched. The
    replaced run's p50s stay in the new block as ``previous_run`` (one run back, not a history).
    ``keep(row)``: the machine's old rows that stay beside the new ones (a partial bench, or
    ``--merge --add``); the block they were measured with stays under ``added_to``, and what the
    report reads of it carries over: the kept rows' paired timings, the machine's MatMul peaks, and
    the failures and runtimes of the jobs not run again (``ran``: the labels of the jobs that were)."""
    old = doc["machines"].get(machine_id)
    mine = [r for r in rows if r.machine_id == machine_id and keep is not None and keep(r)]
    kept = [r for r in rows if r.machine_id != machine_id] + mine
    if mine and old:
        prior = {k: v for k, v in old.items() if k not in ("added_to", "previous_run")}
        kept_keys = {r.key_text() for r in mine}
        block = {**block, "added_to": [*old.get("added_to", []), prior]}
        for key in ("repeats", "bandwidth_gbs"):        # per-row entries of the rows kept
            block[key] = {k: v for k, v in (prior.get(key) or {}).items() if k in kept_keys} | (block.get(key) or {})
        paired_now = {p["candidate"] for p in block.get("paired") or []}
        block["paired"] = [p for p in prior.get("paired") or []
                           if p["candidate"] in kept_keys and p["candidate"] not in paired_now
                           ] + list(block.get("paired") or [])
        block["peak_gflops"] = (prior.get("peak_gflops") or {}) | (block.get("peak_gflops") or {})
        redone = set(ran or ()) | {f["job"] for f in block.get("failed") or []}
        block["failed"] = [f for f in prior.get("failed") or [] if f["job"] not in redone] + list(block.get("failed")
                                                                                                   or [])
        block["runtimes"] = {k: v for k, v in (prior.get("runtimes") or {}).items() if k not in redone} | (
            block.get("runtimes") or {})
    machines = {k: v for k, v in doc["machines"].items() if k != machine_id}
    if old and old.get("measured_at") != block.get("measured_at"):
        replaced = [r for r in rows if r.machine_id == machine_id and not (keep is not None and keep(r))]
        block = {**block, "previous_run": previous_run(old, replaced, machine_id)}
    elif old and old.get("previous_run"):          # the same run merged again: it is not its own predecessor
        block = {**block, "previous_run": old["previous_run"]}
    machines[machine_id] = block
    return {**doc, "machines": machines}, kept + list(new_rows)


def document(doc: dict, rows: list[BenchRow]) -> dict:
    """The JSON object to write: rows serialised by to_dict, machines sorted for stable diffs."""
    rows = sorted(rows, key=sort_key)
    return {"schema_version": SCHEMA_VERSION, "run": doc.get("run"),
            "machines": dict(sorted(doc["machines"].items())), "rows": [r.to_dict() for r in rows]}
