"""The export stage's summary: one row per artifact, the console table, export.json and export.md."""
from __future__ import annotations

from pathlib import Path

from edgedistill.configbase import to_dict
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.provenance import provenance
from edgedistill.targets import REPAIRED_KEEPS_SPEEDUP

SCHEMA_VERSION = 1


def summary_row(manifest: dict, folder: Path) -> dict:
    row = {k: v for k, v in manifest.items() if k not in ("provenance", "export_config", "files", "tool_versions")}
    row["artifact"] = f"{manifest['model']}/{manifest['variant']}"
    row["path"] = str(folder)
    row["size_mb"] = round(manifest["size_bytes"] / 1e6, 3)
    row["agreement_pct"] = manifest["parity"]["agreement_pct"]
    row["max_abs_diff"] = manifest["parity"]["max_abs_diff"]
    # A resumed export keeps artifacts an earlier command built: each row names its own builder,
    # so export.json's top-level provenance (the last command) is not read as every artifact's.
    prov = manifest.get("provenance") or {}
    hw, libs = prov.get("hardware") or {}, prov.get("libraries") or {}
    row["built_by"] = {"command": prov.get("command"), "git_commit": prov.get("git_commit"),
                       "hardware": {k: hw[k] for k in ("label", "machine_id", "logical_cores", "memory_gb") if k in hw},
                       "libraries": {k: libs[k] for k in ("torch", "transformers", "onnxruntime", "openvino")
                                     if k in libs}}
    return row


TABLE = (("artifact", "artifact", "{}"), ("size MB", "size_mb", "{:.2f}"),
         ("x FP32 ONNX", "size_ratio_vs_fp32", "{:.3f}"),
         ("agreement %", "agreement_pct", "{:.1f}"), ("max abs dlogit", "max_abs_diff", "{:.2e}"),
         ("macro-F1", "macro_f1", "{:.4f}"), ("dF1 pts", "macro_f1_delta", "{:+.2f}"), ("flagged", "flagged", "{}"),
         ("speed x FP32", "speed_vs_fp32", None), ("kernels A/LN/G, int8/fp32 MatMul", "runtime_fusions", None))


def _kernels(f: dict | None) -> str:
    if not f:
        return "-"
    return f"{f['attention']}/{f['layer_norm']}/{f['gelu']}, {f['int8_matmul']}/{f['fp32_matmul']}"


def _cells(row: dict) -> list[str]:
    from export import speed

    cells = []
    for _, key, fmt in TABLE:
        value = row.get(key)
        if key == "macro_f1_delta" and value is not None:
            value = 100 * value
        if fmt is None:
            cells.append(speed.cell(value) if key == "speed_vs_fp32" else _kernels(value))
            continue
        cells.append("-" if value is None else ("FLAGGED" if value is True else "" if value is False
                                                else fmt.format(value)))
    return cells


def format_table(rows: list[dict]) -> str:
    head = [h for h, _, _ in TABLE]
    body = [_cells(r) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells,
                                                                                                       widths)))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(c) for c in body])


def format_markdown(rows: list[dict], run: str) -> str:
    head = [h for h, _, _ in TABLE]
    out = [f"# Export: {run}", "",
           "Sizes are model files only; `x FP32 ONNX` is the size relative to the model's onnx-fp32. Agreement and "
           "max abs dlogit compare with the PyTorch FP32 checkpoint on the parity sample of the test split; "
           "dF1 is the macro-F1 difference (points) on the test split. `speed x FP32`: an INT8 artifact's "
           "speed-up over its FP32 source, timed side by side in one process (ABBA blocks on one median-length "
           "test text; median ratio [bootstrap 95% interval]; `busy`: others used the CPU meanwhile; SLOWER: "
           "the INT8 graph lost). `kernels`: what ONNX Runtime runs after its load-time fusions: attention / "
           "layer-norm / GELU fused nodes, then integer / FP32 MatMuls.", "",
           "| " + " | ".join(head) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(out) + "\n"


TOP_BLOCKS = 5       # blocks per INT8 artifact in export.md; export.json has them all


def format_evidence(rows: list[dict]) -> str:
    """export.md's evidence table: per INT8 artifact, its validation drop with the paired interval, its
    agreement with FP32 on the pool, the mean KL there, the budget's verdict and whether it ships for size only."""
    from export import sensitivity

    judged = [r for r in rows if r.get("evidence")]
    if not judged:
        return ""
    first = judged[0]["evidence"]
    out = ["", "## INT8 evidence (validation and the unlabelled pool)", "",
           f"Each INT8 artifact against the PyTorch FP32 checkpoint it came from, on {first.get('n', '?')} validation "
           f"texts (macro-F1 drop, points, with its paired bootstrap 95% interval) and {first.get('pool_n', 0)} texts "
           f"of {first.get('pool') or 'no pool'} (the share whose label INT8 keeps, with its interval, and the mean "
           "KL divergence of FP32's probabilities from INT8's). Over budget only where the evidence says so "
           "(export/sensitivity.py): the interval shows a drop and its estimate is above "
           f"{first['max_f1_drop']:g} pts; "
           "within it where the interval's top is, or where the pool's flipped labels cannot add up to it; "
           "`inside the noise` otherwise, and not repaired. `size only`: its export timed it slower than its FP32 "
           "source side by side; it ships for its size, and no speed goal names it.", "",
           "| artifact | val dF1 pts [95%] | pool agreement % [95%] | pool KL | verdict | size only |",
           "|---|---:|---:|---:|---|---|"]
    for r in judged:
        e = r["evidence"]
        val = f"{_pts(-e['drop_points'])} [{_pts(-e['drop_high'])}, {_pts(-e['drop_low'])}]" if "drop_points" in e \
            else _pts(e.get("f1_delta_points"))
        pool = (f"{e['pool_agreement_pct']:.2f} [{e['pool_agreement_low']:.2f}, {e['pool_agreement_high']:.2f}]"
                if "pool_agreement_pct" in e else "-")
        kl = f"{e['pool_kl']:.2e}" if "pool_kl" in e else "-"
        slow = "yes" if (r.get("speed_vs_fp32") or {}).get("slower") else ""
        out.append(f"| {r['artifact']} | {val} | {pool} | {kl} | {sensitivity.VERDICTS[e['verdict']]} | {slow} |")
    return "\n".join(out) + "\n"


def _pts(value: float | None) -> str:
    return "-" if value is None else f"{round(value, 2) + 0.0:+.2f}"      # + 0.0: no "-0.00"


def _kl_cut(block: dict) -> str:
    if "kl_reduction" not in block:
        return "-"
    return f"{block['kl_reduction']:.2e} [{block['kl_reduction_low']:.1e}, {block['kl_reduction_high']:.1e}]"


def format_sensitivity(rows: list[dict]) -> str:
    """export.md's INT8 sections: each plain INT8 artifact's most sensitive blocks, then the repairs."""
    from export import sensitivity, speed

    ranked = [r for r in rows if r.get("sensitivity")]
    if not ranked:
        return ""
    first = ranked[0]
    out = ["", "## INT8 sensitivity (validation)", "",
           f"Each INT8 artifact quantized again with one block kept in FP32 and scored on "
           f"{first['sensitivity']['n']} validation texts against the PyTorch FP32 checkpoint it came from (the test "
           "split is not used). Blocks: per layer Q/K/V (projections and attention products), attention out, FFN in, "
           f"FFN out; the embeddings; the classifier (pooler and head). Most sensitive first; the top {TOP_BLOCKS} "
           "here, every block in export.json. `recovered`: macro-F1 points bought back against the plain INT8 "
           "artifact; `dF1`: points against the FP32 source; `KL cut`: how much it lowers the mean KL against FP32 "
           "on the pool [bootstrap 95% interval]; a block counts (`yes`) only where that interval is above zero, "
           "and the repair uses only counted blocks."]
    for r in ranked:
        sens, plain = r["sensitivity"], r["sensitivity"]["plain"]
        out += ["", f"### {r['artifact']}: plain INT8 {_pts(plain['f1_delta_points'])} pts, "
                    f"{plain['agreement_pct']:.1f}% agreement with FP32", "",
                "| rank | block | val macro-F1 | dF1 pts | recovered pts | agreement % | KL cut [95%] | counts |",
                "|---:|---|---:|---:|---:|---:|---:|---|"]
        out += [f"| {b['rank']} | {b['label']} | {b['macro_f1']:.4f} | {_pts(b['f1_delta_points'])} | "
                f"{_pts(b['recovered_points'])} | {b['agreement_pct']:.1f} | {_kl_cut(b)} | "
                f"{'yes' if b.get('counts', True) else 'no'} |" for b in sens["blocks"][:TOP_BLOCKS]]
        if sens.get("already_fp32"):
            out.append(f"\nAlready FP32 in this variant: {', '.join(sens['already_fp32'])}.")
    budget = first["repair"]["max_f1_drop"]
    out += ["", f"## INT8 repair (budget: {budget:g} pts of validation macro-F1 below the FP32 source)", "",
            "An INT8 artifact the evidence shows over the budget gets a `-repaired` sibling: its counted blocks kept "
            "in FP32, in ranking order, until it is no longer over budget; one whose drop is inside the noise is "
            "left as it is. The test columns only report.", ""]
    out += ["- " + sensitivity.outcome_text(r["artifact"], r["repair"], f"{r['model']}/{r['repair']['fp32_answer']}")
            for r in ranked]
    fixed = [r for r in rows if (r.get("repair") or {}).get("of")]
    if fixed:
        out += ["", "| artifact | kept in FP32 | val dF1 pts | test dF1 pts | speed x plain INT8 | speed x FP32 |",
                "|---|---|---:|---:|---:|---:|"]
        out += [f"| {r['artifact']} | {', '.join(r['repair']['excluded'])} | "
                f"{_pts(r['repair']['validation']['f1_delta_points'])} | {_pts(100 * r['macro_f1_delta'])} | "
                f"{speed.cell(r.get('speed_vs_int8'))} | {speed.cell(r.get('speed_vs_fp32'))} |" for r in fixed]
    return "\n".join(out + test_check(rows, budget)) + "\n"


def test_check(rows: list[dict], budget: float) -> list[str]:
    """The repair's targets as the test split reports them: every INT8 artifact (plain or repaired) within
    ``budget`` points of its FP32 source's test macro-F1, and every repaired artifact keeping
    ``REPAIRED_KEEPS_SPEEDUP`` of its plain sibling's speed (paired); each miss named, with why."""
    int8 = [r for r in rows if r.get("precision") == "int8" and r.get("macro_f1_delta") is not None]
    if not int8:
        return []
    by_name = {r["artifact"]: r for r in rows}
    misses = [r for r in int8 if 100 * r["macro_f1_delta"] < -budget - 1e-9]
    out = ["", f"## Test check: INT8 within {budget:g} pts of its FP32 source", "",
           f"{len(int8) - len(misses)} of {len(int8)} INT8 artifacts are within {budget:g} pts of their FP32 source's "
           f"test macro-F1 (the budget is applied on validation; the test split only reports)."]
    if misses:
        out.append("")
    for r in misses:
        n = r.get("eval_samples")
        why = f"{_pts(100 * r['macro_f1_delta'])} pts on {n} test texts"
        repair = r.get("repair") or {}
        if repair.get("of"):
            why += (f"; repaired on validation to {_pts(repair['validation']['f1_delta_points'])} pts: the validation "
                    "split chose the blocks, and the test split does not confirm that choice")
        else:
            sibling = by_name.get(f"{r['artifact']}-repaired")
            val = (r.get("sensitivity") or {}).get("plain", {}).get("f1_delta_points")
            if sibling is not None:
                why += (f"; its repaired sibling {sibling['artifact']} is at {_pts(100 * sibling['macro_f1_delta'])} "
                        "pts on test")
            elif val is not None:
                why += (f"; within budget on validation ({_pts(val)} pts), so not repaired: validation and test "
                        "disagree on it by more than the budget")
            else:
                why += "; not ranked (export.sensitivity_scope), so not repaired"
        out.append(f"- {r['artifact']}: {why}")
    fixed = [r for r in rows if (r.get("repair") or {}).get("of") and r.get("speed_vs_int8")]
    if fixed:
        out += ["", f"A repaired artifact keeps >= {REPAIRED_KEEPS_SPEEDUP:.0%} of its plain INT8 sibling's speed-up "
                    "over FP32 (repaired timed against plain INT8 in one process, ABBA):", ""]
        for r in fixed:
            s = r["speed_vs_int8"]
            verdict = "meets it" if s["speedup"] >= REPAIRED_KEEPS_SPEEDUP else "misses it"
            busy = " (timed while the machine was busy)" if s.get("disturbed") else ""
            out.append(f"- {r['artifact']}: {s['speedup']:.2f}x the plain INT8's speed [{s['low']:.2f}, "
                       f"{s['high']:.2f}]: {verdict}{busy}")
    return out


def write_results(recipe, run_dir: Path, cfg, rows: list[dict], results: Path) -> None:
    """export.json and export.md in ``results`` (the run's results folder, see edgedistill.layout)."""
    atomic_write_json(results / "export.json", {"schema_version": SCHEMA_VERSION, "run": recipe.run.name,
                                                "run_dir": str(run_dir), "provenance": provenance(),
                                                "config": to_dict(cfg), "artifacts": rows})
    atomic_write_text(results / "export.md", format_markdown(rows, recipe.run.name) + format_evidence(rows)
                      + format_sensitivity(rows))
