"""The export stage's summary: one row per artifact, the console table, export.json and export.md."""
from __future__ import annotations

from pathlib import Path

from edgedistill.configbase import to_dict
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.provenance import provenance

SCHEMA_VERSION = 1


def summary_row(manifest: dict, folder: Path) -> dict:
    row = {k: v for k, v in manifest.items() if k not in ("provenance", "export_config", "files", "tool_versions")}
    row["artifact"] = f"{manifest['model']}/{manifest['variant']}"
    row["path"] = str(folder)
    row["size_mb"] = round(manifest["size_bytes"] / 1e6, 3)
    row["agreement_pct"] = manifest["parity"]["agreement_pct"]
    row["max_abs_diff"] = manifest["parity"]["max_abs_diff"]
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


def write_results(recipe, run_dir: Path, cfg, rows: list[dict], results: Path) -> None:
    """export.json and export.md in ``results`` (the run's results folder, see edgedistill.layout)."""
    atomic_write_json(results / "export.json", {"schema_version": SCHEMA_VERSION, "run": recipe.run.name,
                                                "run_dir": str(run_dir), "provenance": provenance(),
                                                "config": to_dict(cfg), "artifacts": rows})
    atomic_write_text(results / "export.md", format_markdown(rows, recipe.run.name))
