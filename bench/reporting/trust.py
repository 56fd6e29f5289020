"""report.md's trust sections: contention, paired headline ratios, distance to the limit.

Rendered per machine, device and thread count from the rows and the machine block; nothing is
measured or recomputed here.
"""
from __future__ import annotations

import statistics

from bench.schema import PAIRED_COLUMNS, BenchRow
from edgedistill.scenarios import DESCRIBE, headline_scenario


def _fmt(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _table(header: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in line) + " |" for line in lines])


def _name(r: BenchRow) -> str:
    return f"`{r.artifact}` on {r.runtime} ({r.precision}{', ' + r.options if r.options else ''})"


def contention_note(rows: list[BenchRow], block: dict) -> str:
    """How busy the machine was while the rows were timed, and how many rows that disturbed."""
    measured = [r for r in rows if r.other_cpu_pct is not None]
    if not measured:
        return ""
    cfg = block.get("bench_config") or {}
    others = [r.other_cpu_pct for r in measured]
    steal = [r.steal_pct or 0.0 for r in measured]
    loads = [r.load1 for r in measured if r.load1 is not None]
    busy = [r for r in measured if r.disturbed]
    text = (f"Contention (`edgedistill/contention.py`, while each row was timed): other processes used a median "
            f"{statistics.median(others):.1f}% of the CPU (max {max(others):.0f}%), steal max {max(steal):.1f}%"
            + (f", load average {min(loads):.1f} to {max(loads):.1f}" if loads else "") + ". "
            f"{len(busy)} of {len(measured)} rows are **disturbed** (others > "
            f"{cfg.get('disturbed_other_cpu_pct', 10):g}% or steal > {cfg.get('disturbed_steal_pct', 5):g}%; "
            "marked `busy` above): their absolute latencies are not this machine's.")
    return text


def _ratio(r: BenchRow, column: str, previous: dict | None = None) -> str:
    v = getattr(r, column)
    if v is None:
        return "-"
    text = f"{v:.2f}x [{_fmt(getattr(r, column + '_low'))}, {_fmt(getattr(r, column + '_high'))}]"
    before = (previous or {}).get(f"{r.key_text()}|{column}")
    if before and before[0]:
        text += f"; previous run {before[0]:.2f}x ({100 * (max(v, before[0]) / min(v, before[0]) - 1):.0f}% apart)"
    return text


def paired_text(r: BenchRow) -> str:
    """' Paired: 9.1x [8.7, 9.6] the teacher PyTorch FP32, ...' for a row with paired ratios, else ''."""
    parts = [f"{_ratio(r, column)} the {name}" for column, name in PAIRED_COLUMNS if getattr(r, column) is not None]
    return (" Paired: " + ", ".join(parts) + ("; timed while the machine was busy" if r.disturbed else "") + "."
            if parts else "")


def paired_table(rows: list[BenchRow], block: dict, threads) -> str:
    """The candidates' paired ratios with their intervals and the contention of each pair."""
    paired = [r for r in rows
              if r.paired_speedup_vs_teacher is not None or r.paired_speedup_vs_teacher_int8 is not None]
    if not paired:
        return ""
    busy = {}
    for p in block.get("paired") or []:
        if p.get("threads") == threads:
            c = p.get("contention") or {}
            busy.setdefault(p["candidate"], []).append((c.get("other_cpu_pct"), p.get("disturbed")))
    lines = []
    for r in sorted(paired, key=lambda r: r.latency_p50_ms or float("inf")):
        seen = busy.get(r.key_text(), [])
        others = [o for o, _ in seen if o is not None]
        previous = (block.get("previous_run") or {}).get("paired")
        lines.append([_name(r), _ratio(r, "paired_speedup_vs_teacher", previous),
                      _ratio(r, "paired_speedup_vs_teacher_int8", previous),
                      _fmt(r.speedup_vs_teacher) + "x" if r.speedup_vs_teacher else "-",
                      _fmt(max(others), 0) + "%" if others else "-", "yes" if any(d for _, d in seen) else ""])
    cfg = block.get("bench_config") or {}
    what = DESCRIBE.get(paired[0].scenario, paired[0].scenario)
    head = (f"Paired headline ratios (`bench/scenarios/paired.py`): each candidate and the reference loaded in one "
            f"process, timed in alternating ABBA blocks ({cfg.get('paired_blocks', '?')} blocks of "
            f"{cfg.get('paired_calls', '?')} calls of {what}, batch 1, natural length); median of the per-block ratios "
            "[bootstrap 95% interval]. The separate-"
            "process speed-up (from the rows' p50s) is shown for comparison.")
    return head + "\n\n" + _table(["artifact", "x teacher PyTorch FP32 (paired)", "x teacher ORT INT8 (paired)",
                                   "x teacher (separate rows)", "others' CPU", "disturbed"], lines)


def limit_table(rows: list[BenchRow], block: dict, threads) -> str:
    """FLOPs, achieved rate and the compute floor of the headline rows (batch 1, natural length)."""
    peak = (block.get("peak_gflops") or {}).get(str(threads))
    scenario = headline_scenario(rows)
    headline = [r for r in rows if r.scenario == scenario and r.batch_size == 1 and r.seq_len == "natural"
                and r.gflop_per_call]
    if not headline:
        return ""
    if not peak:
        why = (block.get("peak_errors") or {}).get(str(threads))
        return f"Distance to the limit: no floor or % of peak here, because {why}" if why else ""
    keep = [r for r in headline if r.paired_speedup_vs_teacher is not None or r.paired_speedup_vs_teacher_int8
            is not None or (r.model == "teacher" and r.variant in ("pytorch", "onnx-int8-dynamic", "onnx-fp32"))]
    keep = keep or sorted(headline, key=lambda r: r.latency_p50_ms or float("inf"))[:5]
    lines = [[_name(r), _fmt(r.gflop_per_call, 3), _fmt(r.latency_p50_ms), _fmt(r.achieved_gflops, 1),
              _fmt(r.floor_ms, 3), _fmt(r.latency_p50_ms / r.floor_ms, 1) + "x" if r.floor_ms else "-",
              _fmt(r.pct_of_peak, 1)] for r in sorted(keep, key=lambda r: r.latency_p50_ms or float("inf"))]
    m, k, n = peak.get("shape", ["?"] * 3)
    head = (f"Distance to the limit (`bench/scenarios/roofline.py`): FLOPs per forward counted from the model config "
            f"(embeddings excluded, at the padded length); this machine's peak through ONNX Runtime on {threads} "
            f"thread(s), a {m}x{k}x{n} MatMul: FP32 {peak.get('fp32')} GFLOP/s, INT8 (dynamic) {peak.get('int8')} "
            "GFLOP/s. Floor = FLOPs / the peak of the row's precision (INT8 rows: the INT8 peak; the rest: FP32).")
    return head + "\n\n" + _table(["artifact", "GFLOP / call", "p50 ms", "achieved GFLOP/s", "floor ms",
                                   "p50 / floor", "% of peak"], lines)
