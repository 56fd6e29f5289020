"""How an emulated machine's accuracy agrees with the native machines' rows of the same artifacts.

    python -m tools.emulated_agreement arm-emulated.json --against results/quickstart/bench.json

For every artifact x runtime x precision the emulated file measured (``emulated: true`` in its machine
block, see edgedistill/provenance.py), the accuracy and macro-F1 beside the same artifact x runtime x
precision on each native machine of ``--against``: the difference in test texts (accuracy difference x
test size) and whether it lies within ``--texts`` texts (FP32 should agree exactly or to rounding; INT8
kernels round differently on Arm, so a text or two may flip). Timings are not compared: an emulator's
say nothing about the board. Prints a Markdown table; exit code 1 when a row disagrees by more.
"""
from __future__ import annotations

import argparse
import sys

from bench.schema import BenchFileError, BenchRow, read_document


def _fmt(v, digits: int = 4) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def accuracy_rows(doc: dict, rows: list[BenchRow], emulated: bool) -> dict[tuple, tuple[BenchRow, int | None]]:
    """{(artifact, runtime, precision, machine_id): (one row, the machine's test size)} for the machines whose
    hardware block is (or is not) marked emulated; accuracy is the same on every row of one such key."""
    out = {}
    for r in rows:
        block = doc["machines"].get(r.machine_id) or {}
        if bool((block.get("hardware") or {}).get("emulated")) != emulated or r.accuracy is None:
            continue
        out.setdefault((r.artifact, r.runtime, r.precision, r.machine_id), (r, block.get("test_size")))
    return out


def agreement(emulated_doc: dict, emulated_rows: list[BenchRow], native_doc: dict, native_rows: list[BenchRow],
              texts: float = 2.0) -> list[dict]:
    """One entry per emulated artifact x runtime x precision x native machine measuring the same."""
    mine = accuracy_rows(emulated_doc, emulated_rows, True)
    theirs = accuracy_rows(native_doc, native_rows, False)
    out = []
    for (artifact, runtime, precision, _mid), (r, size) in sorted(mine.items(), key=lambda kv: kv[0]):
        matches = [(k, v) for k, v in theirs.items() if k[:3] == (artifact, runtime, precision)]
        if not matches:
            out.append({"artifact": artifact, "runtime": runtime, "precision": precision, "emulated": r,
                        "native": None, "native_machine": None, "texts_apart": None, "agrees": None})
        for (_, _, _, other), (n, other_size) in matches:
            size_used = size or other_size
            apart = abs(r.accuracy - n.accuracy) * size_used if size_used else None
            out.append({"artifact": artifact, "runtime": runtime, "precision": precision, "emulated": r,
                        "native": n, "native_machine": n.machine_label or other, "texts_apart": apart,
                        "agrees": None if apart is None or size != other_size else apart <= texts + 1e-9})
    return out


def table(entries: list[dict]) -> str:
    head = ["artifact", "runtime", "precision", "accuracy (emulated)", "accuracy (native)", "macro-F1 (emulated)",
            "macro-F1 (native)", "texts apart", "agrees", "native machine"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        r, n = e["emulated"], e["native"]
        agrees = {True: "yes", False: "**no**", None: "-"}[e["agrees"]]
        lines.append("| " + " | ".join([e["artifact"], e["runtime"], e["precision"], _fmt(r.accuracy),
                                         _fmt(n.accuracy if n else None), _fmt(r.macro_f1),
                                         _fmt(n.macro_f1 if n else None),
                                         _fmt(e["texts_apart"], 1) if e["texts_apart"] is not None else "-", agrees,
                                         e["native_machine"] or "not measured natively"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.emulated_agreement", description=__doc__.split("\n\n")[0])
    p.add_argument("emulated", help="the bench.json written under emulation (tools/arm_emulated_bench.sh)")
    p.add_argument("--against", required=True, help="a bench.json with native rows of the same artifacts")
    p.add_argument("--texts", type=float, default=2.0, help="test texts the accuracy may differ by (default 2)")
    args = p.parse_args(argv)
    try:
        edoc, erows = read_document(args.emulated)
        ndoc, nrows = read_document(args.against)
    except BenchFileError as exc:
        print(f"emulated_agreement: {exc}", file=sys.stderr)
        return 2
    entries = agreement(edoc, erows, ndoc, nrows, args.texts)
    if not entries:
        print(f"emulated_agreement: {args.emulated} holds no rows of a machine marked emulated (hardware.emulated); "
              "bench under QEMU with tools/arm_emulated_bench.sh", file=sys.stderr)
        return 2
    print(table(entries))
    return 1 if any(e["agrees"] is False for e in entries) else 0


if __name__ == "__main__":
    raise SystemExit(main())
