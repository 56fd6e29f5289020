"""report.md from the bench rows: one section per machine, device and thread count.

Each section has the main table (model, format, precision, runtime, size, macro-F1, per-class
F1, p50/p90 at batch 1, throughput, speed-up vs teacher PyTorch FP32, size ratio vs ONNX FP32,
and the p50 spread between repeats when the bench ran with ``repeat >= 2``), p50 by sequence
length, and "best artifact per goal". Nothing here measures or recomputes a metric.
"""
from __future__ import annotations

from collections import defaultdict

from bench.reporting import trust
from bench.scenarios.probe import change_pct
from bench.schema import KEY_COLUMNS, PAIRED_COLUMNS, BenchRow
from edgedistill import goals
from edgedistill.methods import BASELINES, is_baseline
from edgedistill.scenarios import BATCHED, DESCRIBE, LATENCY, TEXT_SCENARIOS, THROUGHPUT, headline_scenario
from edgedistill.targets import AGREE_PCT, WITHIN_1PCT, WITHIN_3PCT
from edgedistill.targets import RETAINED_PCT as RETAINED_GOAL  # % of teacher macro-F1 kept to count as "as good"


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def md_table(header: list[str], lines: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out)


def _config_key(r: BenchRow) -> tuple:
    return (r.artifact, r.runtime, r.precision, r.options)


def headline_seq_len(rows: list[BenchRow]) -> str | None:
    lens = [r.seq_len for r in rows if r.scenario == LATENCY]
    return "natural" if "natural" in lens else (lens[0] if lens else None)


def headline_rows(rows: list[BenchRow]) -> list[BenchRow]:
    """The batch-1 rows the main table and the goals rank: text -> label at natural length where measured
    (``edgedistill.scenarios``), else forward-only at the headline length (files from before it)."""
    scenario = headline_scenario(rows)
    seq = "natural" if scenario in TEXT_SCENARIOS else headline_seq_len(rows)
    return [r for r in rows if r.scenario == scenario and r.seq_len == seq and r.batch_size == 1]


def _labels(rows: list[BenchRow]) -> list[str]:
    for r in rows:
        if r.per_class:
            return list(r.per_class)
    return []


def _at_threads(key: str, threads: int | None) -> bool:
    """Whether a ``BenchRow.key_text()`` key belongs to ``threads`` (None: any)."""
    fields, at = key.split("|"), KEY_COLUMNS.index("threads")
    return threads is None or (len(fields) > at and fields[at] == str(threads))


def spread_pct(p50s: list[float]) -> float | None:
    """Spread of two or more p50s of one row (timing passes, or two runs): max / min - 1, in %."""
    return 100 * (max(p50s) / min(p50s) - 1) if len(p50s) > 1 and min(p50s) > 0 else None


def repeat_spreads(repeats: dict[str, list[float]], threads: int | None = None) -> list[float]:
    """p50 spread of each row timed more than once (keys: BenchRow.key_text)."""
    spreads = [spread_pct(p50s) for key, p50s in repeats.items() if _at_threads(key, threads)]
    return [s for s in spreads if s is not None]


# Settings that change what a p50 means; two runs that differ in one are not repeats of each other.
TIMING_SETTINGS = ("min_rounds", "throughput_min_rounds", "max_time", "warmup_iterations", "disable_gc",
                   "natural_texts", "batch_size", "throughput_batches", "seed", "max_test")


def run_to_run_pairs(block: dict, rows: list[BenchRow], threads: int | None = None) -> list[tuple]:
    """(row, its p50 in the previous bench run on this machine, spread %) for every row that run
    also measured; [] without a previous run."""
    before = (block.get("previous_run") or {}).get("p50") or {}
    pairs = []
    for r in rows:
        if r.key_text() in before and r.latency_p50_ms and _at_threads(r.key_text(), threads):
            spread = spread_pct([before[r.key_text()], r.latency_p50_ms])
            if spread is not None:
                pairs.append((r, before[r.key_text()], spread))
    return pairs


def previous_origin(block: dict) -> str:
    """Where the previous run came from: commit, time, and any timing setting that differed."""
    prev = block.get("previous_run") or {}
    now_cfg, old_cfg = block.get("bench_config") or {}, prev.get("bench_config") or {}
    differ = [k for k in TIMING_SETTINGS if now_cfg.get(k) != old_cfg.get(k)]
    return f"commit {(prev.get('git_commit') or '?')[:7]}, {prev.get('measured_at') or '?'}" + (
        f"; timing settings differed: {', '.join(differ)}" if differ else "")


def paired_run_to_run(block: dict, rows: list[BenchRow], threads: int | None = None) -> list[tuple]:
    """(row, column, previous [median, low, high], spread %) for every paired headline ratio the
    previous bench run on this machine also measured; [] without one."""
    before = (block.get("previous_run") or {}).get("paired") or {}
    out = []
    for r in rows:
        if threads is not None and r.threads != threads:
            continue
        for column, _ in PAIRED_COLUMNS:
            old, new = before.get(f"{r.key_text()}|{column}"), getattr(r, column)
            if old and old[0] and new:
                out.append((r, column, old, 100 * (max(old[0], new) / min(old[0], new) - 1)))
    return out


def run_to_run(block: dict, rows: list[BenchRow], threads: int | None = None) -> tuple[list[float], str]:
    """p50 spread of each row against the previous bench run on this machine, and where that run
    came from. ([], "") without a previous run."""
    spreads = [spread for _, _, spread in run_to_run_pairs(block, rows, threads)]
    return (spreads, previous_origin(block)) if spreads else ([], "")


def agreement(spreads: list[float]) -> str:
    """'N of M (median spread X%, worst Y%)': how many rows agree within ``AGREE_PCT``."""
    return (f"{sum(s <= AGREE_PCT for s in spreads)} of {len(spreads)} (median spread "
            f"{sorted(spreads)[len(spreads) // 2]:.1f}%, worst {max(spreads):.0f}%)")


def run_to_run_note(block: dict, rows: list[BenchRow], threads: int | None = None) -> str:
    spreads, origin = run_to_run(block, rows, threads)
    if not spreads:
        return ""
    return (f"Against the previous bench run on this machine ({origin}), rows whose p50 agrees within {AGREE_PCT:g}%: "
            f"{agreement(spreads)}.")


def steadiness(block: dict) -> dict:
    """How steady a machine was during its bench, from its block in bench.json: the range of the
    memory-bandwidth probe (GB/s) and how many rows' timing passes agree on p50 within 10%
    (``(agreeing, timed more than once)``); None where the bench did not record it."""
    probes = block.get("bandwidth_gbs") if isinstance(block.get("bandwidth_gbs"), dict) else {}
    gbs = [v for pair in probes.values() if isinstance(pair, list) for v in pair
           if isinstance(v, (int, float)) and not isinstance(v, bool)]
    repeats = block.get("repeats") if isinstance(block.get("repeats"), dict) else {}
    spreads = [spread_pct(p) for p in repeats.values() if isinstance(p, list) and len(p) > 1
               and all(isinstance(v, (int, float)) and v > 0 for v in p)]
    return {"bandwidth_gbs": (min(gbs), max(gbs)) if gbs else None,
            "passes_within_10pct": (sum(s <= AGREE_PCT for s in spreads), len(spreads)) if spreads else None}


def drift_note(block: dict, threads: int | None = None) -> str:
    """How much the machine itself moved during the run (``bench/scenarios/probe.py``), and whether the rows
    whose job saw a steady machine repeated better than those whose job did not."""
    probes = {k: v for k, v in (block.get("bandwidth_gbs") or {}).items()
              if _at_threads(k, threads) and v and None not in v}
    if not probes:
        return ""
    values = [x for pair in probes.values() for x in pair]
    moved = sorted(change_pct(*pair) for pair in probes.values())
    text = (f"Machine drift: the memory-bandwidth probe (`bench/scenarios/probe.py`, one thread, just before and "
            f"just after each job) read {min(values):.1f} to {max(values):.1f} GB/s over the run "
            f"({max(values) / min(values):.1f}x); "
            f"across one job it moved by a median {moved[len(moved) // 2]:.0f}%.")
    steady, unsteady = [], []
    for key, pair in probes.items():
        s = spread_pct((block.get("repeats") or {}).get(key) or [])
        if s is not None:
            (steady if change_pct(*pair) <= AGREE_PCT else unsteady).append(s <= AGREE_PCT)
    if steady or unsteady:
        text += f" Rows whose two timing passes agree within {AGREE_PCT:g}%: " + "; ".join(
            f"{sum(group)} of {len(group)} where the probe moved {what} during the job"
            for group, what in ((steady, f"{AGREE_PCT:g}% or less"), (unsteady, f"more than {AGREE_PCT:g}%"))
            if group) + "."
    return text


def main_table(rows: list[BenchRow], spreads: dict[str, list[float]] | None = None) -> str:
    """One line per artifact x runtime x precision: batch-1 latency of the headline scenario (text -> label
    where measured), beside it the forward-only p50 and the tokenizer's share of a text -> label call."""
    latency = headline_rows(rows)
    scenario = latency[0].scenario if latency else LATENCY
    text = scenario in TEXT_SCENARIOS
    forward = {_config_key(r): r for r in rows if r.scenario == LATENCY and r.seq_len == "natural"
               and r.batch_size == 1} if text else {}
    throughput = {_config_key(r): r for r in rows if r.scenario == BATCHED[scenario] and r.seq_len == "natural"}
    labels = _labels(rows)
    with_options = any(r.options for r in latency)
    with_spread = bool(spreads)
    with_busy = any(r.disturbed is not None for r in latency)
    tb = next((r.batch_size for r in throughput.values()), None)
    header = ["model", "format", "precision", "runtime"] + (["options"] if with_options else []) + \
             ["size MB", "macro-F1"] + [f"F1 {label}" for label in labels] + \
             ["p50 ms", "p90 ms"] + (["forward p50 ms", "tokenizer %"] if text else []) + \
             [f"throughput/s (batch {tb})" if tb else "throughput/s", "speed-up", "size ratio"] + \
             (["p50 spread %"] if with_spread else []) + (["busy"] if with_busy else [])
    lines = []
    for r in latency:
        t = throughput.get(_config_key(r))
        line = [r.model, r.format if r.variant == "pytorch" else f"{r.format} ({r.variant})", r.precision, r.runtime]
        line += [r.options] if with_options else []
        line += [fmt(r.size_mb, 1), fmt(r.macro_f1, 4)] + [fmt(r.per_class.get(lb, {}).get("f1"), 3) for lb in labels]
        line += [fmt(r.latency_p50_ms), fmt(r.latency_p90_ms)]
        if text:
            f = forward.get(_config_key(r))
            line += [fmt(f.latency_p50_ms if f else None), fmt(tokenizer_share(r), 0)]
        line += [fmt(t.throughput_per_s if t else None, 1),
                 fmt(r.speedup_vs_teacher) + ("x" if r.speedup_vs_teacher else ""),
                 fmt(r.size_ratio_vs_fp32) + (" (size only)" if r.size_only else "")]
        if with_spread:
            p50s = (spreads or {}).get(r.key_text())
            line.append(fmt(spread_pct(p50s or []), 1))
        if with_busy:
            line.append(f"busy ({r.other_cpu_pct:.0f}%)" if r.disturbed else "")
        lines.append(line)
    what = (f"Latency at batch 1: {DESCRIBE[scenario]}" + (", one text at its natural length" if text else
            f", {latency[0].seq_len if latency else '?'} length") + f"; throughput: {DESCRIBE[BATCHED[scenario]]}, "
            "natural-length batches.")
    if text:
        what += (" Forward p50: the same texts pre-tokenized; tokenizer %: the tokenizer alone as a share of the "
                 "text -> label p50.")
    if any(r.size_only for r in latency):
        what += (" Size only: an INT8 artifact its export timed slower than its FP32 source side by side; it "
                 "ships for its size, and no speed goal names it.")
    return what + "\n\n" + md_table(header, lines)


def tokenizer_share(row: BenchRow) -> float | None:
    """The tokenizer's share of a text -> label call, in percent (both p50s from the same process)."""
    if row.tokenize_ms is None or not row.latency_p50_ms:
        return None
    return 100.0 * row.tokenize_ms / row.latency_p50_ms


def seq_len_table(rows: list[BenchRow]) -> str:
    lens = list(dict.fromkeys(r.seq_len for r in rows if r.scenario == LATENCY and r.batch_size == 1))
    if len(lens) < 2:
        return ""
    by = defaultdict(dict)
    for r in rows:
        if r.scenario == LATENCY and r.batch_size == 1:
            by[_config_key(r)][r.seq_len] = r
    lines = [[*k[:3], *([k[3]] if any(c[3] for c in by) else []),
              *[fmt(v[s].latency_p50_ms) if s in v else "-" for s in lens]] for k, v in by.items()]
    header = ["artifact", "runtime", "precision", *(["options"] if any(c[3] for c in by) else []),
              *[f"p50 ms @ {s}" for s in lens]]
    return md_table(header, lines)


def goal_winners(rows: list[BenchRow]) -> dict[str, BenchRow]:
    """The best row per goal, from batch-1 latency rows at the headline length (``edgedistill.goals``:
    most accurate, fastest within 1% and within 3% of the teacher's macro-F1, smallest within 1%, the
    same computation the dashboard shows), plus the highest throughput keeping 99% from the throughput
    rows. Goals nothing qualifies for are left out; without a teacher macro-F1 only the most accurate."""
    latency = headline_rows(rows)
    ref = reference_f1(latency)
    out = {g: w for g, w in goals.goal_winners(latency, ref).items() if w is not None}
    if ref is None:
        return out
    batched = BATCHED[latency[0].scenario] if latency else THROUGHPUT
    tput = [r for r in rows if r.scenario == batched and r.throughput_per_s and not r.size_only
            and goals.keeps(r, ref, RETAINED_GOAL)]
    if tput:
        out["throughput"] = max(tput, key=lambda r: r.throughput_per_s)
    return out


def reference_f1(rows: list[BenchRow]) -> float | None:
    """The teacher PyTorch FP32 macro-F1 these rows' ``f1_retained_pct`` refers to (``edgedistill.goals``)."""
    return goals.reference_f1(rows)


def best_per_goal(rows: list[BenchRow]) -> str:
    winners = goal_winners(rows)

    def name(r):
        kind = " (a peer baseline)" if is_baseline(r.model) else ""
        return f"`{r.artifact}`{kind} on {r.runtime} ({r.precision}{', ' + r.options if r.options else ''})"

    if reference_f1(headline_rows(rows)) is None:
        a = winners.get("accurate")
        return ("No teacher PyTorch FP32 row here, so retained macro-F1 (and the best artifact per speed and size "
                "goal) is unknown; bench the teacher checkpoint too (bench.reference: true)."
                + (f"\n- **Most accurate**: {name(a)}: macro-F1 {fmt(a.macro_f1, 4)}." if a else ""))
    out = []

    for goal, pct in (("fastest_1pct", WITHIN_1PCT), ("fastest_3pct", WITHIN_3PCT)):
        f = winners.get(goal)
        if f is None:
            out.append(f"- No artifact keeps >= {pct:g}% of the teacher's macro-F1 here.")
            continue
        out.append(f"- **{goals.GOALS[goal]}** (keeping >= {pct:g}% of teacher macro-F1): {name(f)}: p50 "
                   f"{fmt(f.latency_p50_ms)} ms ({DESCRIBE.get(f.scenario, f.scenario)}),"
                   f" {fmt(f.speedup_vs_teacher)}x the teacher PyTorch FP32, size ratio "
                   f"{fmt(f.size_ratio_vs_fp32)} vs its ONNX FP32 ({fmt(f.size_mb, 1)} MB), macro-F1 "
                   f"{fmt(f.macro_f1, 4)} ({fmt(f.f1_retained_pct, 1)}% of teacher)." + trust.paired_text(f))
    s = winners.get("smallest")
    if s is not None:
        out.append(f"- **Smallest keeping >= {RETAINED_GOAL:.0f}%**: {name(s)}: {fmt(s.size_mb, 1)} MB (size ratio "
                   f"{fmt(s.size_ratio_vs_fp32)}), {fmt(s.speedup_vs_teacher)}x, {fmt(s.f1_retained_pct, 1)}% of "
                   "teacher macro-F1.")
    if "throughput" in winners:
        t = winners["throughput"]
        out.append(f"- **Highest throughput keeping >= {RETAINED_GOAL:.0f}%**: {name(t)}: "
                   f"{fmt(t.throughput_per_s, 1)} texts/s at batch {t.batch_size}"
                   f"{' (length-bucketed pass over the test split)' if t.seq_len == 'bucketed' else ''}.")
    a = winners.get("accurate")
    if a is not None:
        out.append(f"- **Most accurate**: {name(a)}: macro-F1 {fmt(a.macro_f1, 4)}.")
    out += baselines_text(rows, winners)
    return "\n".join(out)


def baselines_text(rows: list[BenchRow], winners: dict) -> list[str]:
    """Where each peer baseline sits among the measured models, and, plainly, any goal one wins."""
    latency = headline_rows(rows)
    standing = goals.baseline_standing(latency, reference_f1(latency), winners)
    if not standing:
        return []
    out = []
    for b in standing:
        r = b["point"]
        won = ", ".join(goals.GOALS[g].lower() for g in b["wins"] if g in goals.GOALS)
        out.append(f"- Baseline **{b['model']}** (`{r.artifact}`, {BASELINES[b['model']].library}): macro-F1 "
                   f"{fmt(b['macro_f1'], 4)} ({fmt(b['retained_pct'], 1)}% of teacher), p50 {fmt(b['latency'])} ms; "
                   f"{_ordinal(b['rank'])} of {b['of']} models by macro-F1" + (f"; wins: {won}." if won else "."))
    wins = goals.baseline_wins({g: w for g, w in winners.items() if g in goals.GOALS})
    for goal, model in wins.items():
        out.append(f"- **A peer baseline wins a goal: {model} is the {goals.GOALS[goal].lower()}; no distilled "
                   "model beats it there.**")
    return out


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _machine_header(mid: str, block: dict) -> str:
    hw = block.get("hardware", {})
    libs = (block.get("provenance") or {}).get("libraries", {})
    gpus = ", ".join(g.get("name", "?") for g in hw.get("gpus", [])) or "none"
    lib_text = ", ".join(f"{k} {libs[k]}" for k in ("torch", "onnxruntime", "openvino", "transformers") if k in libs)
    lines = [f"## {hw.get('label', mid)} (`{mid}`)", "",
             f"{hw.get('cpu_model', '?')}, {hw.get('physical_cores', '?')} physical / {hw.get('logical_cores', '?')} "
             f"logical cores, {hw.get('memory_gb', '?')} GB, ISA: {' '.join(hw.get('isa_flags', [])) or '-'}; GPUs: "
             f"{gpus}. Measured {block.get('measured_at', '?')}" + (f"; {lib_text}." if lib_text else ".")]
    web = hw.get("browser")
    if isinstance(web, dict):     # a browser measured as a machine (bench/launchers/web.py)
        lines = lines[:2] + [
            f"{web.get('name')} {web.get('version')} (headless) on {(hw.get('host') or {}).get('label', '?')}: ONNX "
            f"Runtime Web {web.get('onnxruntime_web')} on WASM (SIMD: {'yes' if web.get('wasm_simd') else 'no'}, "
            f"threads: {'yes' if web.get('wasm_threads') else 'no'}, {web.get('threads')} used of "
            f"{web.get('hardware_concurrency')} logical cores), tokenizer in JavaScript (@huggingface/tokenizers "
            f"{web.get('tokenizers_js')}). Measured {block.get('measured_at', '?')}."]
    if block.get("test_size"):
        lines.append(f"Accuracy on {block['test_size']} test texts.")
    if block.get("transport"):
        lines.append(f"Note: {block['transport']}")
    failed = block.get("failed") or []
    if failed:
        lines += ["", f"{len(failed)} job(s) failed:"] + [f"- {f['job']}: {f['error']}" for f in failed]
    return "\n".join(lines)


EMULATED_NOTE = ("Timed on an emulated CPU ({why}): these rows check that every artifact loads, runs and agrees "
                 "with the other machines' accuracy; their timings measure the emulator, not the board, and rank "
                 "nothing.")


def render_report(doc: dict, rows: list[BenchRow]) -> str:
    parts = [f"# Bench report: {doc.get('run')}", "",
             "Generated from bench.json (schema version {}); speed-up = teacher PyTorch FP32 p50 / p50 on the same "
             "machine, device, threads and scenario; size ratio = size / the model's ONNX FP32 size."
             .format(doc.get("schema_version"))]
    for mid, block in doc.get("machines", {}).items():
        mine = [r for r in rows if r.machine_id == mid]
        parts += ["", _machine_header(mid, block)]
        groups = defaultdict(list)
        for r in mine:
            groups[(r.device, r.threads)].append(r)
        for (device, threads), group in groups.items():
            parts += ["", f"### {device}, {threads} thread(s)", "", main_table(group, block.get("repeats"))]
            for note in (drift_note(block, threads) if device == "cpu" else "",
                         run_to_run_note(block, group, threads), trust.contention_note(group, block),
                         trust.paired_table(group, block, threads),
                         trust.limit_table(group, block, threads)):
                parts += ["", note] if note else []
            by_len = seq_len_table(group)
            if by_len:
                parts += ["", "p50 latency (ms) at batch 1 by sequence length:", "", by_len]
            if (block.get("hardware") or {}).get("emulated"):
                parts += ["", EMULATED_NOTE.format(why=block["hardware"].get("emulated_by") or "emulated")]
            else:
                parts += ["", "Best artifact per goal:", "", best_per_goal(group)]
    return "\n".join(parts) + "\n"


def summary_table(rows: list[BenchRow]) -> str:
    """The console summary at the end of a run: the main table per device and thread count."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r.device, r.threads)].append(r)
    return "\n\n".join(f"{device}, {threads} thread(s):\n{main_table(group)}"
                       for (device, threads), group in groups.items())


def main(argv=None) -> int:
    """Re-render a report from a bench.json: nothing is measured, the derived ratios are refreshed."""
    import argparse
    import sys
    from pathlib import Path

    from bench.reporting.derive import add_derived
    from bench.schema import BenchFileError, document, read_document
    from edgedistill.io import atomic_write_text

    p = argparse.ArgumentParser(prog="python -m bench.reporting.report", description=main.__doc__)
    p.add_argument("bench_json", help="a bench.json (e.g. results/<run>/bench.json)")
    p.add_argument("--out", help="the report to write (default: report.md beside the bench.json)")
    args = p.parse_args(argv)
    try:
        doc, rows = read_document(args.bench_json)
    except (BenchFileError, OSError) as exc:
        print(f"bench.reporting.report: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.bench_json).with_name("report.md")
    same = out.resolve() == Path(args.bench_json).resolve()
    if same or out.suffix.lower() in (".json", ".csv"):
        print(f"bench.reporting.report: --out {out} refused: the report is Markdown and would replace "
              f"{'its own input' if same else 'a data file'}; write it to a .md file, e.g. --out "
              f"{Path(args.bench_json).with_name('report.md')}", file=sys.stderr)
        return 2
    add_derived(rows)
    ordered = document(doc, rows)     # the order and shape write_outputs gives the bench's own report
    atomic_write_text(out, render_report(ordered, [BenchRow.from_dict(r) for r in ordered["rows"]]))
    print(f"wrote {out} from {args.bench_json} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
