"""How far two bench runs on the same machine agree, row by row.

    edgedistill compare OLD/bench.json NEW/bench.json [--machine ID] [--out repeat.md]

A re-run keeps one run back by itself (``previous_run`` in the machine block, shown in
report.md); this compares any two files, e.g. a run committed earlier
(``git show <commit>:results/<run>/bench.json > old.json``) with the current one. Rows are
matched on their key (artifact, runtime, device, precision, threads, options, scenario, batch
size, sequence length); the spread of a row is max / min - 1 of its two p50s.
"""
from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

from bench.reporting.report import agreement, md_table, paired_run_to_run, previous_origin, run_to_run_pairs
from bench.schema import PAIRED_COLUMNS, BenchFileError, previous_run, read_document
from edgedistill.io import atomic_write_text
from edgedistill.targets import AGREE_PCT

TITLE = "# Two bench runs on machine"     # the first line of what --out writes (and may replace)


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
    parts = [f"{TITLE} {mid}", "",
             f"- earlier: `{old_path}` ({previous_origin(block)})",
             f"- later: `{new_path}` (commit {(new_prov.get('git_commit') or '?')[:7]}, {block.get('measured_at')})",
             f"- command: `edgedistill compare {old_path} {new_path}`", "",
             f"Rows whose p50 agrees within {AGREE_PCT:g}%: {agreement([s for _, _, s in pairs])}.", ""]
    by_group: dict[tuple, list[float]] = defaultdict(list)
    for r, _, s in pairs:
        by_group[(r.runtime, r.precision, r.threads, r.scenario)].append(s)
    parts += [md_table(["runtime", "precision", "threads", "scenario", "rows", f"within {AGREE_PCT:g}%",
                        "median spread %"],
                       [[*k, len(v), sum(s <= AGREE_PCT for s in v), f"{statistics.median(v):.1f}"]
                        for k, v in sorted(by_group.items(), key=lambda kv: tuple(map(str, kv[0])))]), "",
              "Largest spreads:", "",
              md_table(["artifact", "runtime", "precision", "threads", "scenario", "seq len", "p50 earlier ms",
                        "p50 later ms", "spread %"],
                       [[r.artifact, r.runtime, r.precision, r.threads, r.scenario, r.seq_len, f"{b:.3f}",
                         f"{r.latency_p50_ms:.3f}", f"{s:.1f}"]
                        for r, b, s in sorted(pairs, key=lambda t: -t[2])[:10]])]
    parts += paired_agreement(block, [r for r in new_rows if r.machine_id == mid])
    return "\n".join(parts) + "\n"


def paired_agreement(block: dict, rows) -> list[str]:
    """The paired headline ratios of both runs side by side, with their intervals and spread."""
    names = dict(PAIRED_COLUMNS)
    found = paired_run_to_run(block, rows)
    if not found:
        return []
    lines = [[r.artifact, r.runtime, r.threads, names[column], f"{old[0]:.2f}x [{old[1]:.2f}, {old[2]:.2f}]",
              f"{getattr(r, column):.2f}x [{getattr(r, column + '_low'):.2f}, {getattr(r, column + '_high'):.2f}]",
              f"{spread:.1f}"] for r, column, old, spread in found]
    spreads = [spread for *_, spread in found]
    return ["", f"Paired headline ratios agreeing within {AGREE_PCT:g}%: {sum(s <= AGREE_PCT for s in spreads)} of "
            f"{len(spreads)}.", "",
            md_table(["artifact", "runtime", "threads", "x reference", "earlier [95% interval]",
                      "later [95% interval]", "spread %"], lines)]


def add_arguments(p) -> None:
    p.add_argument("old", help="the earlier run's bench.json")
    p.add_argument("new", help="the later run's bench.json")
    p.add_argument("--machine", help="machine id to compare (default: the first machine both files hold)")
    p.add_argument("--out", help="also write the markdown here (atomically)")


def _is_comparison(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith(TITLE)
    except (OSError, UnicodeDecodeError):
        return False


def main(args) -> int:
    from edgedistill.owned import OutputError, check_result_file

    try:
        if args.out:
            # Checked first: no input (or any file it did not write) is ever replaced by the markdown.
            check_result_file(args.out, what="comparison (markdown written by edgedistill compare)",
                              inputs=[args.old, args.new], owns=_is_comparison, example="repeat.md")
        text = compare(args.old, args.new, args.machine)
    except (BenchFileError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text)
    return 0
