"""How far two bench runs on the same machine agree, row by row.

    python -m bench.compare OLD/bench.json NEW/bench.json [--machine ID] [--out repeat.md]

A re-run keeps one run back by itself (``previous_run`` in the machine block, shown in
report.md); this compares any two files, e.g. a run committed earlier
(``git show <commit>:results/<run>/bench.json > old.json``) with the current one. Rows are
matched on their key (artifact, runtime, device, precision, threads, options, scenario, batch
size, sequence length); the spread of a row is max / min - 1 of its two p50s.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from bench.report import agreement, md_table, previous_origin, run_to_run_pairs
from bench.schema import BenchFileError, previous_run, read_document
from edgedistill.io import atomic_write_text


def compare(old_path: str | Path, new_path: str | Path, machine: str | None = None) -> str:
    old_doc, old_rows = read_document(old_path)
    new_doc, new_rows = read_document(new_path)
    shared = [m for m in new_doc["machines"] if m in old_doc["machines"]]
    if machine is not None and machine not in shared:
        raise BenchFileError(f"machine {machine!r} is not in both files (shared: {', '.join(shared) or 'none'})")
    if not shared:
        raise BenchFileError(f"{old_path} and {new_path} have no machine in common: repeatability compares two runs "
                             "on the same machine (compare machines on the dashboard's Machines page instead)")
    mid = machine or shared[0]
    block = {**new_doc["machines"][mid],
             "previous_run": previous_run(old_doc["machines"][mid], old_rows, mid)}
    pairs = run_to_run_pairs(block, [r for r in new_rows if r.machine_id == mid])
    if not pairs:
        raise BenchFileError(f"no row of machine {mid} is in both {old_path} and {new_path}")
    new_prov = block.get("provenance") or {}
    parts = [f"# Two bench runs on machine {mid}", "",
             f"- earlier: `{old_path}` ({previous_origin(block)})",
             f"- later: `{new_path}` (commit {(new_prov.get('git_commit') or '?')[:7]}, {block.get('measured_at')})",
             f"- command: `python -m bench.compare {old_path} {new_path}`", "",
             f"Rows whose p50 agrees within 10%: {agreement([s for _, _, s in pairs])}.", ""]
    by_group: dict[tuple, list[float]] = defaultdict(list)
    for r, _, s in pairs:
        by_group[(r.runtime, r.precision, r.threads, r.scenario)].append(s)
    parts += [md_table(["runtime", "precision", "threads", "scenario", "rows", "within 10%", "median spread %"],
                       [[*k, len(v), sum(s <= 10 for s in v), f"{statistics.median(v):.1f}"]
                        for k, v in sorted(by_group.items(), key=lambda kv: tuple(map(str, kv[0])))]), "",
              "Largest spreads:", "",
              md_table(["artifact", "runtime", "precision", "threads", "scenario", "seq len", "p50 earlier ms",
                        "p50 later ms", "spread %"],
                       [[r.artifact, r.runtime, r.precision, r.threads, r.scenario, r.seq_len, f"{b:.3f}",
                         f"{r.latency_p50_ms:.3f}", f"{s:.1f}"]
                        for r, b, s in sorted(pairs, key=lambda t: -t[2])[:10]])]
    parts += paired_agreement(block, [r for r in new_rows if r.machine_id == mid])
    return "\n".join(parts) + "\n"


PAIRED = (("paired_speedup_vs_teacher", "teacher PyTorch FP32"), ("paired_speedup_vs_teacher_int8", "teacher ORT INT8"))


def paired_agreement(block: dict, rows) -> list[str]:
    """The paired headline ratios of both runs side by side, with their intervals and spread."""
    before = (block.get("previous_run") or {}).get("paired") or {}
    lines, spreads = [], []
    for r in rows:
        for column, reference in PAIRED:
            old, new = before.get(f"{r.key_text()}|{column}"), getattr(r, column)
            if not old or not old[0] or new is None:
                continue
            spread = 100 * (max(old[0], new) / min(old[0], new) - 1)
            spreads.append(spread)
            lines.append([r.artifact, r.runtime, r.threads, reference,
                          f"{old[0]:.2f}x [{old[1]:.2f}, {old[2]:.2f}]",
                          f"{new:.2f}x [{getattr(r, column + '_low'):.2f}, {getattr(r, column + '_high'):.2f}]",
                          f"{spread:.1f}"])
    if not lines:
        return []
    return ["", f"Paired headline ratios agreeing within 10%: {sum(s <= 10 for s in spreads)} of {len(spreads)}.", "",
            md_table(["artifact", "runtime", "threads", "x reference", "earlier [95% interval]",
                      "later [95% interval]", "spread %"], lines)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="the earlier run's bench.json")
    p.add_argument("new", help="the later run's bench.json")
    p.add_argument("--machine", help="machine id to compare (default: the first machine both files hold)")
    p.add_argument("--out", help="also write the markdown here (atomically)")
    args = p.parse_args(argv)
    try:
        text = compare(args.old, args.new, args.machine)
    except BenchFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
