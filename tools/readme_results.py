"""Result blocks for the README and docs/results.md, generated from a run's result files
(nothing typed by hand).

    # README.md: the headline table and trade-off plot of the quickstart run
    python -m tools.readme_results --run quickstart --section headline --write README.md
    # docs/results.md: a run's full results, the generality suite, the CPU-and-GPU table
    python -m tools.readme_results --run hate-speech --write docs/results.md
    python -m tools.readme_results --results experiments --run suite --section suite --write docs/results.md
    python -m tools.readme_results --results experiments --run quickstart-earlier-models --section gpu \\
        --write docs/results.md

Reads ``metrics.json``, ``export.json`` and ``bench.json`` (the suite:
``suite.json`` and ``suite.md``); every number printed comes from those files, and each block
opens with where its numbers come from (command, recipe, commit, hardware), taken from the files'
provenance. Each section has its own markers in the file it is written into:
``<!-- headline:start -->``, ``<!-- results:start -->``, ``<!-- suite:start -->`` and
``<!-- gpu-results:start -->``, each closed by the matching ``:end -->``. Without ``--write`` the
block is only printed (``--section all`` also writes ``results/<run>/summary.md``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.reporting.report import (
    agreement,
    best_per_goal,
    drift_note,
    fmt,
    md_table,
    paired_run_to_run,
    repeat_spreads,
    run_to_run,
)
from bench.schema import read_document
from distill.report import results_table
from distill.suite import machines_text
from edgedistill import goals
from edgedistill.io import atomic_write_text
from edgedistill.methods import COLOURS, ORDER, is_baseline, rank
from edgedistill.scenarios import BATCHED, DESCRIBE, headline_scenario
from edgedistill.targets import (
    AGREE_PCT,
    HEADLINE_P50_MS,
    MEMORY_VS_TEACHER,
    RETAINED_PCT,
    SPEEDUP_VS_TEACHER_FP32,
    SPEEDUP_VS_TEACHER_INT8,
    THROUGHPUT_VS_TEACHER,
)

START, END = "<!-- results:start -->", "<!-- results:end -->"
GPU_START, GPU_END = "<!-- gpu-results:start -->", "<!-- gpu-results:end -->"
SUITE_START, SUITE_END = "<!-- suite:start -->", "<!-- suite:end -->"
HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"
PROVENANCE_START, PROVENANCE_END = "<!-- provenance:start -->", "<!-- provenance:end -->"
MARKERS = {"all": (START, END), "gpu": (GPU_START, GPU_END), "suite": (SUITE_START, SUITE_END),
           "headline": (HEADLINE_START, HEADLINE_END), "provenance": (PROVENANCE_START, PROVENANCE_END)}
RESULTS_DOC = Path("docs/results.md")     # where the headline's one line of provenance points
GOAL = RETAINED_PCT


def native_cpus(doc: dict) -> list[str]:
    """The CPU machines whose rows speak for a CPU: not a GPU box, not a browser, not an emulated CPU."""
    def native(hw: dict) -> bool:
        return not (hw.get("gpus") or hw.get("browser") or hw.get("emulated"))
    return [m for m, b in doc["machines"].items() if native(b.get("hardware") or {})]


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _latency_rows(rows, machine_id, threads=None, seq="natural"):
    """Batch-1 CPU rows of the headline scenario (text -> label where measured, ``edgedistill.scenarios``)."""
    mine = [r for r in rows if r.machine_id == machine_id and r.device == "cpu"]
    scenario = headline_scenario(mine)
    out = [r for r in mine if r.scenario == scenario and r.batch_size == 1 and r.seq_len == seq]
    if threads is not None:
        out = [r for r in out if r.threads == threads]
    return out


def tradeoff_plot(rows, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"fp32": "o", "bf16": "s", "fp16": "D", "int8": "^"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for r in rows:
        if r.macro_f1 is None or r.latency_p50_ms is None:
            continue
        kw = dict(c=COLOURS.get(r.model, "black"), marker=markers.get(r.precision, "x"), s=46, alpha=0.8,
                  edgecolors="white", linewidths=0.5)
        axes[0].scatter(r.latency_p50_ms, r.macro_f1, **kw)
        axes[1].scatter(r.size_mb, r.macro_f1, **kw)
    for ax, xlabel in zip(axes, ["p50 latency, batch 1, natural length (ms, log)", "size on disk (MB, log)"]):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test macro-F1")
        ax.grid(alpha=0.3, which="both")
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=m) for m, c in COLOURS.items()]
    handles += [plt.Line2D([], [], color="grey", marker=mk, ls="", label=p) for p, mk in markers.items()]
    axes[1].legend(handles=handles, loc="lower right", fontsize=8, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _student_vs_teacher(metrics: dict) -> list[str]:
    models, labels = metrics["models"], metrics["data"]["label_names"]
    t = models.get("teacher")
    if not t:
        return []
    lines = []
    for m in ORDER:
        if m == "teacher" or m not in models:
            continue
        e = models[m]["test"]
        deltas = {lb: e["per_class"][lb]["f1"] - t["test"]["per_class"][lb]["f1"] for lb in labels}
        worst = min(deltas, key=deltas.get)
        lines.append(f"- **{m}** keeps {100 * e['macro_f1'] / t['test']['macro_f1']:.1f}% of the teacher's test "
                     f"macro-F1 ({e['macro_f1']:.4f} vs {t['test']['macro_f1']:.4f}); per-class F1 change: "
                     + ", ".join(f"{lb} {d:+.3f}" for lb, d in deltas.items())
                     + (f". The largest loss is on **{worst}**." if deltas[worst] < 0 else ". No class loses F1."))
    return lines


def _short(commit: str | None) -> str:
    if not commit:
        return "?"
    head, dirty = commit.split("-", 1) if "-" in commit else (commit, "")
    return head[:7] + (f"-{dirty}" if dirty else "")


def _link(path: Path, target: Path | None) -> str:
    """``path`` (relative to the repository root) as a link from the file the block is written into."""
    return Path(os.path.relpath(path, target.parent if target else Path("."))).as_posix()


def _command(run: str, section: str, target: Path | None, results_root: Path) -> str:
    cmd = "python -m tools.readme_results"
    if results_root != Path("results"):
        cmd += f" --results {results_root.as_posix()}"
    cmd += f" --run {run}" + (f" --section {section}" if section != "all" else "")
    return cmd + (f" --write {target.as_posix()}" if target else "")


def _where(prov: dict) -> str:
    """Hardware and libraries of one provenance block, in words."""
    hw, libs = prov.get("hardware") or {}, prov.get("libraries") or {}
    lib = ", ".join(f"{k} {libs[k]}" for k in ("torch", "transformers", "onnxruntime", "openvino") if k in libs)
    return (f"{hw.get('label', '?')} ({hw.get('logical_cores', '?')} cores, {hw.get('memory_gb', '?')} GB)"
            + (f"; {lib}" if lib else ""))


def _cmd_text(prov: dict) -> str:
    """The recorded command, its program without the folder it ran from."""
    words = (prov.get("command") or "?").split()
    return " ".join([os.path.basename(words[0]), *words[1:]]) if words else "?"


def _recipe(prov: dict) -> str | None:
    return next((w for w in (prov.get("command") or "").split() if w.endswith((".yaml", ".yml"))), None)


def provenance(run: str, section: str, target: Path | None, results_root: Path, stages: list[tuple[str, dict]],
               trained_on: str | None = None) -> str:
    """The generated header of a block: the command that wrote it and, per stage, the command,
    commit and hardware recorded in the result files. ``trained_on`` names the machines of work whose
    provenance is kept per row (the suite's pairs), so no stage claims "all" of it."""
    recipe = next((r for _, p in stages if (r := _recipe(p))), None)
    lines = [f"Generated by `{_command(run, section, target, results_root)}` from "
             f"`{(results_root / run).as_posix()}/`" + (f" (recipe `{recipe}`)" if recipe else "") + "."]
    places = {_where(prov) for _, prov in stages}
    for stage, prov in stages:
        lines.append(f"{stage}: `{_cmd_text(prov)}` at commit `{_short(prov.get('git_commit'))}`"
                     + (f" on {_where(prov)}." if len(places) > 1 or trained_on else "."))
    if trained_on:
        lines.append(f"Trained on {trained_on}.")
    elif len(places) == 1:
        lines.append(f"All on {places.pop()}.")
    return " ".join(lines)


def short_provenance(run: str, block: dict, target: Path | None, results_root: Path) -> str:
    """One line: the command that wrote the block, the bench's command, machine and date, and a link to the
    full per-stage provenance (docs/results.md, rendered by ``build`` from the same files)."""
    prov = block.get("provenance") or {}
    date = (block.get("measured_at") or "?")[:10]
    return (f"Generated by `{_command(run, 'headline', target, results_root)}`; bench: `{_cmd_text(prov)}` at "
            f"commit `{_short(prov.get('git_commit'))}` on {_where(prov)}, {date}. Every stage's command, commit "
            f"and machine: [{RESULTS_DOC.as_posix()}]({_link(RESULTS_DOC, target)}#{run}-provenance).")


def full_provenance(run: str, results_root: Path, target: Path | None) -> str:
    """Every stage of a run with its command, commit and machine, and each machine its bench.json holds."""
    out_dir = results_root / run
    doc, _ = read_document(out_dir / "bench.json")
    stages = _stages(_load(out_dir / "metrics.json"), _load(out_dir / "export.json"), doc)
    lines = [provenance(run, "provenance", target, results_root, stages), ""]
    for mid, block in doc["machines"].items():
        prov, hw = block.get("provenance") or {}, block.get("hardware") or {}
        kind = "a browser" if hw.get("browser") else "an emulated CPU" if hw.get("emulated") else \
            "a GPU machine" if hw.get("gpus") else "a CPU"
        lines.append(f"- `{mid}` ({kind}): {hw.get('label', '?')}, measured {(block.get('measured_at') or '?')[:16]} "
                     f"by `{_cmd_text(prov)}` at commit `{_short(prov.get('git_commit'))}`.")
    return "\n".join(lines) + "\n"


def _export_stages(export: dict) -> list[tuple[str, dict]]:
    """The export per command that built its artifacts (each artifact records its own builder; a
    later export that kept them all is only export.json's top-level provenance)."""
    groups: dict[tuple, tuple[list[str], dict]] = {}
    for row in export.get("artifacts") or []:
        built = row.get("built_by") or {}
        groups.setdefault((built.get("command"), built.get("git_commit")), ([], built))[0].append(
            row.get("artifact") or f"{row['model']}/{row['variant']}")
    builders: dict[str, set] = {}          # model -> the commands that built its artifacts
    for key, (artifacts, _) in groups.items():
        for a in artifacts:
            builders.setdefault(a.split("/")[0], set()).add(key)
    out = []
    for artifacts, built in groups.values():
        # A model whose artifacts all came from one command is named once; otherwise per artifact.
        names = list(dict.fromkeys(a.split("/")[0] if len(builders[a.split("/")[0]]) == 1 else a
                                   for a in artifacts))
        prov = {**export["provenance"], **{k: v for k, v in built.items() if v}}
        out.append(("Export" if len(groups) == 1 else f"Export of {', '.join(names)}", prov))
    return out or [("Export", export["provenance"])]


def _stages(metrics: dict | None, export: dict | None, doc: dict | None) -> list[tuple[str, dict]]:
    """(what, provenance) per stage: training per group of models that one command trained (each
    model records its own), then the export and the CPU bench; stages one command ran share a line."""
    out: list[tuple[str, dict]] = []
    if metrics:
        groups: dict[tuple, tuple[list[str], dict]] = {}
        for name, entry in {**metrics.get("models", {}), **(metrics.get("baselines") or {})}.items():
            prov = entry.get("provenance") or metrics["provenance"]
            groups.setdefault((prov.get("command"), prov.get("git_commit")), ([], prov))[0].append(name)
        out += [(f"Training of {', '.join(names)}", prov) for names, prov in groups.values()]
    if export and export.get("provenance"):
        out += _export_stages(export)
    for block in (doc or {}).get("machines", {}).values():
        if not (block.get("hardware") or {}).get("gpus") and block.get("provenance"):
            # A partial bench keeps the rows of the benches before it: each is named, oldest first.
            provs = [b["provenance"] for b in block.get("added_to") or [] if b.get("provenance")]
            provs.append(block["provenance"])
            out += [("CPU bench" if i == 0 else "CPU bench of some artifacts again", prov)
                    for i, prov in enumerate(provs)]
            break
    merged: list[tuple[list[str], dict]] = []
    for stage, prov in out:
        same = next((m for m in merged if (m[1].get("command"), m[1].get("git_commit"))
                     == (prov.get("command"), prov.get("git_commit"))), None)
        if same is None:
            merged.append(([stage], prov))
        else:
            same[0].append(stage[0].lower() + stage[1:] if not stage.startswith("CPU bench") else stage)
    return [(", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0], prov)
            for names, prov in merged]


def build(run: str, results_root: Path = Path("results"), target: Path | None = None,
          links_from: Path | None = None) -> str:
    """The run's full results block for ``target``; links are relative to ``links_from`` (default: target)."""
    links_from = links_from or target
    out_dir = results_root / run
    metrics = _load(out_dir / "metrics.json")
    if metrics is None:
        raise SystemExit(f"{out_dir / 'metrics.json'} is missing: train first (edgedistill train configs/{run}.yaml)")
    export = _load(out_dir / "export.json")
    bench_path = out_dir / "bench.json"
    doc, rows = read_document(bench_path) if bench_path.is_file() else (None, [])
    parts = [f"## Results: `{run}`", "", provenance(run, "all", target, results_root, _stages(metrics, export, doc)),
             ""]
    parts += ["### Accuracy on the test split", "", results_table(metrics).split("\n", 2)[2], ""]
    parts += _student_vs_teacher(metrics) + [""]
    if export:
        arts = [{**a, "artifact": a.get("artifact") or f"{a['model']}/{a['variant']}",
                 "size_mb": a.get("size_mb") or a["size_bytes"] / 1e6,
                 "agreement_pct": a.get("agreement_pct", (a.get("parity") or {}).get("agreement_pct"))}
                for a in export["artifacts"]]
        int8 = [a for a in arts if a.get("precision") == "int8"]
        parts += ["### Export: size and what INT8 costs", ""]
        header = ["artifact", "size MB", "x FP32 ONNX", "agreement %", "macro-F1", "dF1 (pts)", "flagged"]
        sel = [a for a in arts if a["model"] in ("teacher", "odd", "tiny", "hybrid")]
        parts.append(md_table(header, [[a["artifact"], fmt(a["size_mb"], 1), fmt(a.get("size_ratio_vs_fp32"), 3),
                                        fmt(a.get("agreement_pct"), 1), fmt(a.get("macro_f1"), 4),
                                        # export.json keeps the change as a fraction of 1; the column is in points
                                        fmt(None if a.get("macro_f1_delta") is None else 100 * a["macro_f1_delta"], 2),
                                        "yes" if a.get("flagged") else ""] for a in sel]))
        parts += ["", f"All {len(arts)} artifacts (every model) are in `results/{run}/export.md`."]
        if int8:
            d = [100 * a["macro_f1_delta"] for a in int8 if a.get("macro_f1_delta") is not None]   # points
            flagged = [a["artifact"] for a in int8 if a.get("flagged")]
            parts.append(f"INT8 changes macro-F1 by {min(d):+.2f} to {max(d):+.2f} points across {len(d)} INT8 "
                         "artifacts"
                         + (f"; flagged (more than 1 point below FP32): {', '.join(flagged)}." if flagged else
                            "; none falls more than 1 point below its FP32 source."))
            checked = [a for a in int8 if a.get("speed_vs_fp32")]
            if checked:
                slower = [a["artifact"] for a in checked if a["speed_vs_fp32"].get("slower")]
                ratios = [a["speed_vs_fp32"]["speedup"] for a in checked]
                parts.append(f"Timed side by side with its FP32 source graph (`export/speed.py`, paired, batch 1), "
                             f"each of the {len(checked)} checked INT8 artifacts runs {min(ratios):.2f}x to "
                             f"{max(ratios):.2f}x as fast"
                             + (f"; slower than FP32: {', '.join(slower)}." if slower else
                                "; none is slower than its FP32 source."))
        parts.append("")

    gpu_rows = False
    if doc is not None:
        gpu_rows = any(b.get("hardware", {}).get("gpus") for b in doc["machines"].values())
        cpu_machines = native_cpus(doc)
        if cpu_machines:
            mid = cpu_machines[0]
            block = doc["machines"][mid]
            counts = sorted({r.threads for r in rows if r.machine_id == mid and r.threads}, reverse=True)
            for threads in counts:      # every core first, then e.g. one thread
                lat = _latency_rows(rows, mid, threads)
                mine = [r for r in rows if r.machine_id == mid and r.threads == threads and r.device == "cpu"]
                parts += [f"### Speed on this CPU ({block['hardware']['label']}, {threads} "
                          f"thread{'s' * (threads > 1)})",
                          "", best_per_goal(mine), ""]
                parts += _ratios(lat, mine, block.get("repeats") or {}, threads, run_to_run(block, mine, threads),
                                 block) + [""]
                note = drift_note(block, threads)
                parts += [note, ""] if note else []
            threads = counts[0] if counts else None
            lat = _latency_rows(rows, mid, threads)
            png = out_dir / "tradeoff.png"
            tradeoff_plot(lat, png,
                          f"{run}: every artifact x runtime on {block['hardware']['label']} ({threads} threads)")
            parts += ["", f"![latency and size vs macro-F1]({_link(png, links_from)})", "",
                      "Full tables (every artifact, runtime, sequence length, thread count): "
                      f"[`results/{run}/report.md`]({_link(out_dir / 'report.md', links_from)}).", ""]
    if metrics["data"].get("source") == "hate-speech" and "teacher" in metrics["models"]:
        support = {k: v["support"] for k, v in metrics["models"]["teacher"]["test"]["per_class"].items()}
        minority = min(support, key=support.get)
        share = 100 * support[minority] / sum(support.values())
        parts += ["### Compared with the course project", "",
                  "The course project distilled a 12-layer BERT on wiki_toxic from a teacher that was never "
                  "fine-tuned, "
                  "reported validation accuracy as test accuracy, trained its methods on unequal budgets and swapped "
                  "the odd/even labels. Its published table is therefore not comparable number for number: here the "
                  "teacher is fine-tuned first, every method shares one budget, each model's epoch is chosen on the "
                  "validation split and only the test split is reported, per class, and odd means the teacher's layers "
                  "1, 3, 5 counted from 1. The data differ too (Davidson et al. tweets with a "
                  f"{share:.0f}% {minority} minority class, not Wikipedia comments), so accuracy is dominated by the "
                  f"majority class: read macro-F1 and the {minority} F1 instead. Results are from one seed; on a "
                  f"{support[minority]}-example minority class a few predictions move its F1 by several points.", ""]
    if doc is not None and not gpu_rows:
        parts += ["No GPU rows yet: `bench/launchers/gpu/` holds the prepared GPU script "
                  "(see `bench/launchers/gpu/README.md`).", ""]
    elif doc is not None:
        parts += cpu_and_gpu(run, doc, rows, results_root)
    return "\n".join(parts).rstrip() + "\n"


def headline(run: str, results_root: Path = Path("results"), target: Path | None = None) -> str:
    """One row per model of a run: its test macro-F1 and share of the teacher's, and its fastest
    artifact on the CPU machine (size, batch-1 p50, speed-up over the teacher in PyTorch FP32);
    then the trade-off plot of every artifact."""
    out_dir = results_root / run
    metrics = _load(out_dir / "metrics.json")
    if metrics is None or not (out_dir / "bench.json").is_file():
        raise SystemExit(f"{out_dir} needs metrics.json and bench.json: run the recipe first "
                         f"(edgedistill run configs/{run}.yaml)")
    doc, rows = read_document(out_dir / "bench.json")
    cpu = native_cpus(doc)
    if not cpu:
        raise SystemExit(f"{out_dir / 'bench.json'} has no CPU machine to take the headline from")
    mid, block = cpu[0], doc["machines"][cpu[0]]
    threads = max((r.threads or 0 for r in rows if r.machine_id == mid and r.device == "cpu"), default=None)
    lat = _latency_rows(rows, mid, threads)
    models = {**metrics["models"], **(metrics.get("baselines") or {})}
    teacher = models.get("teacher", {}).get("test", {}).get("macro_f1")
    ref = next((r for r in lat if r.model == "teacher" and r.variant == "pytorch" and r.precision == "fp32"), None)
    body = []
    for name in sorted(models, key=rank):
        f1 = models[name]["test"]["macro_f1"]
        mine = [r for r in lat if r.model == name and r.latency_p50_ms and not r.size_only]
        fast = min(mine, key=lambda r: r.latency_p50_ms, default=None)
        body.append([f"{name} (baseline)" if is_baseline(name) else name, fmt(f1, 4),
                     fmt(100 * f1 / teacher, 1) if teacher else "-",
                     f"`{fast.variant}` ({fast.runtime})" if fast else "-", fmt(fast and fast.macro_f1, 4),
                     fmt(fast and fast.size_mb, 1), fmt(fast and fast.latency_p50_ms, 2),
                     f"{fast.speedup_vs_teacher:.1f}x" if fast and fast.speedup_vs_teacher else "-"])
    what = DESCRIBE.get(lat[0].scenario if lat else "", "batch 1")
    head = ["Model", "Test macro-F1", "% of teacher", "Fastest artifact", "Its macro-F1", "Size MB",
            f"p50 ms, {what}", "Speed-up vs teacher"]
    test = metrics["data"].get("sizes", {}).get("test") or block.get("test_size")
    png = out_dir / "tradeoff.png"
    tradeoff_plot(lat, png, f"{run}: every artifact x runtime on {block['hardware']['label']} ({threads} threads)")
    parts = [md_table(head, body), "",
             f"Test split of {test} texts; the test macro-F1 is the trained model's (PyTorch FP32; a baseline's "
             "own library). The fastest artifact is the model's export with the lowest median latency for one "
             f"text at its natural length, {what} (the artifact's own tokenizer, forward pass and argmax, as "
             f"`Runtime.predict` serves it), on {block['hardware']['label']} ({threads} threads), with its own "
             "macro-F1; an INT8 artifact its export timed slower than its FP32 source ships for size only and is "
             "not listed; the speed-up is against the teacher in PyTorch FP32 on the same machine"
             + (f" ({ref.latency_p50_ms:.2f} ms, {ref.size_mb:.1f} MB)" if ref else "") + ".", "",
             f"![latency and size vs macro-F1 of every artifact]({_link(png, target)})", "",
             short_provenance(run, block, target, results_root), ""]
    return "\n".join(parts)


def cpu_and_gpu(run: str, doc: dict, rows, results_root: Path = Path("results")) -> list[str]:
    """Each model on the CPU machine and on the GPU machine(s) side by side, with where the GPU
    rows come from (their machine block's notes; ``gpu-provenance.md`` when the run has one)."""
    machines = doc["machines"]
    cpu_ids = native_cpus(doc)
    gpu_ids = [m for m, b in machines.items() if (b.get("hardware") or {}).get("gpus")]
    if not cpu_ids or not gpu_ids:
        return []
    cpu, out = cpu_ids[0], []
    threads = max((r.threads or 0 for r in rows if r.machine_id == cpu and r.device == "cpu"), default=None)
    cpu_lat = _latency_rows(rows, cpu, threads)
    cpu_tput = [r for r in rows if r.machine_id == cpu and r.device == "cpu" and r.threads == threads
                and r.scenario == "throughput" and r.seq_len == "natural"]
    for gid in gpu_ids:
        block = machines[gid]
        hw, libs = block.get("hardware") or {}, (block.get("provenance") or {}).get("libraries") or {}
        lat = [r for r in rows if r.machine_id == gid and r.device == "cuda" and r.scenario == "latency"
               and r.batch_size == 1 and r.seq_len == "natural"]
        tput = [r for r in rows if r.machine_id == gid and r.device == "cuda" and r.scenario == "throughput"]
        gpu_name = ", ".join(g.get("name", "?") for g in hw.get("gpus", []))
        out += [f"### CPU and GPU side by side: {machines[cpu]['hardware']['label']} ({threads} threads) and "
                f"{gpu_name}", "",
                "Batch 1 at natural length (p50, ms) and throughput (texts/s; CPU at batch "
                f"{cpu_tput[0].batch_size if cpu_tput else '-'}, GPU at batch {tput[0].batch_size if tput else '-'}); "
                "the same models and test texts on both machines. The fastest CPU artifact is any export of the "
                "model on any CPU runtime.", ""]
        head = ["model", "CPU PyTorch FP32", "fastest CPU artifact", "CPU p50", "GPU FP32 eager", "GPU FP16 eager",
                "GPU FP16 CUDA graphs", "CPU throughput (best)", "GPU FP16 throughput", "macro-F1 CPU / GPU FP16"]
        body = []
        models = [m for m in ORDER if any(r.model == m for r in lat)]
        for m in models:
            def one(pool, m=m, **want):
                return next((r for r in pool if r.model == m and all(getattr(r, k) == v for k, v in want.items())),
                            None)
            ref = one(cpu_lat, variant="pytorch", precision="fp32")
            fast = min((r for r in cpu_lat if r.model == m and r.latency_p50_ms), key=lambda r: r.latency_p50_ms,
                       default=None)
            best_tput = max((r for r in cpu_tput if r.model == m and r.throughput_per_s),
                            key=lambda r: r.throughput_per_s, default=None)
            g32, g16 = one(lat, precision="fp32", options=""), one(lat, precision="fp16", options="")
            graphs, gt = one(lat, precision="fp16", options="cuda-graphs"), one(tput, precision="fp16", options="")
            body.append([m, fmt(ref and ref.latency_p50_ms), f"`{fast.variant}` on {fast.runtime}" if fast else "-",
                         fmt(fast and fast.latency_p50_ms), fmt(g32 and g32.latency_p50_ms),
                         fmt(g16 and g16.latency_p50_ms), fmt(graphs and graphs.latency_p50_ms),
                         fmt(best_tput and best_tput.throughput_per_s, 0), fmt(gt and gt.throughput_per_s, 0),
                         f"{fmt(ref and ref.macro_f1, 4)} / {fmt(g16 and g16.macro_f1, 4)}"])
        out += [md_table(head, body), ""]
        where = (f"GPU rows: measured {block.get('measured_at', '?')[:10]} on {hw.get('label', gid)} (`{gid}`), "
                 f"torch {libs.get('torch', '?')}, transformers {libs.get('transformers', '?')}, with "
                 f"`{(block.get('bench_config') or {}).get('script', 'bench/launchers/gpu/run.py')}`; merged into this "
                 "run's bench.json with `edgedistill bench --merge`.")
        notes = [n for n in (block.get("merge_note"), block.get("transport")) if n]
        failed = block.get("failed") or []
        if failed:
            notes.append(f"Not measured: {', '.join(f['job'] for f in failed)} ({failed[0]['error']}).")
        prov = results_root / run / "gpu-provenance.md"
        if prov.is_file():
            notes.append(f"How and where they were measured: `{prov.as_posix()}`.")
        out += [" ".join([where, *notes]), ""]
    return out


def _ratios(lat, rows, repeats: dict | None = None, threads: int | None = None,
            previous: tuple[list[float], str] | None = None, block: dict | None = None) -> list[str]:
    """The headline artifact (the fastest keeping 99%) against the teacher's baselines, one run.

    With paired ratios (bench/scenarios/paired.py) the artifact is the paired candidate with the largest
    speed-up over the teacher and its ratios carry their 95% interval, and the previous bench run's
    beside them; a target counts as met only when both runs meet it. Without them (older files) the
    ratios come from the rows' p50s, per timing pass."""
    def find(model, variant, runtime, precision=None):
        for r in lat:
            if r.model == model and r.variant == variant and r.runtime == runtime and (precision is None
                                                                                       or r.precision == precision):
                return r
        return None

    base = find("teacher", "pytorch", "pytorch", "fp32")
    good = [r for r in lat if r.f1_retained_pct is not None and r.f1_retained_pct >= GOAL and r.latency_p50_ms]
    if not base or not good:
        return []
    best = goals.fastest(good)       # the goal's own winner (edgedistill/goals.py), as the report names it
    if best is None:
        return []
    what = DESCRIBE.get(best.scenario, best.scenario)
    ort = find("teacher", "onnx-int8-dynamic", "onnxruntime")
    batched = BATCHED.get(best.scenario, "throughput")
    tput = {(r.artifact, r.runtime, r.precision, r.options): r for r in rows if r.scenario == batched}
    tb, bt = tput.get((best.artifact, best.runtime, best.precision, best.options)), tput.get(
        (base.artifact, base.runtime, base.precision, base.options))
    met = {True: "yes", False: "**no**"}

    def per_pass(slow_p50s: list[float], fast) -> list[float]:
        """The p50 ratio in each timing pass (the rows hold the first pass): a ratio that only
        holds in one pass is noise, so a target counts as met only when every pass meets it."""
        b = (repeats or {}).get(fast.key_text())
        if b and len(slow_p50s) == len(b):
            return [x / y for x, y in zip(slow_p50s, b)]
        return [slow_p50s[0] / fast.latency_p50_ms]

    def passes(r) -> list[float]:
        got = (repeats or {}).get(r.key_text())
        return list(got) if got else [r.latency_p50_ms]

    def shown(values: list[float], unit: str = "x", digits: int = 1) -> str:
        return f"{values[0]:.{digits}f}{unit}" + (" (other pass: " + ", ".join(f"{v:.{digits}f}{unit}"
                                                                               for v in values[1:]) + ")"
                                                  if len(values) > 1 else "")

    before = {column: old for _, column, old, _ in paired_run_to_run(block or {}, [best], threads)}

    def paired_line(column: str, what: str, target: float) -> str:
        v, lo, hi = (getattr(best, column + s) for s in ("", "_low", "_high"))
        text, ok = f"{v:.1f}x [{lo:.1f}, {hi:.1f}]", v >= target
        if column in before:
            old = before[column]
            text += f"; previous run {old[0]:.1f}x [{old[1]:.1f}, {old[2]:.1f}]"
            ok = ok and old[0] >= target
        return f"| {what} | {text} | >= {target:g}x | {met[ok]} |"

    lines = ["| ratio (same run, same machine) | value | target | met |", "|---|---|---|---|"]
    if best.paired_speedup_vs_teacher:
        lines.append(paired_line("paired_speedup_vs_teacher", f"speed-up of `{best.artifact}` ({best.runtime}) over "
                                 f"teacher PyTorch FP32, {what}, batch 1, natural length, paired [95% interval]",
                                 SPEEDUP_VS_TEACHER_FP32))
        if best.paired_speedup_vs_teacher_int8:
            lines.append(paired_line("paired_speedup_vs_teacher_int8", "... over the teacher's own ORT dynamic INT8, "
                                     "paired", SPEEDUP_VS_TEACHER_INT8))
    else:
        speedups = per_pass(passes(base), best)
        lines.append(f"| p50 speed-up of `{best.artifact}` ({best.runtime}) over teacher PyTorch FP32, batch 1 | "
                     f"{shown(speedups)} | >= {SPEEDUP_VS_TEACHER_FP32:g}x | "
                     f"{met[min(speedups) >= SPEEDUP_VS_TEACHER_FP32]} |")
        if ort and ort.latency_p50_ms:
            r = per_pass(passes(ort), best)
            lines.append(f"| ... over the teacher's own ORT dynamic INT8 | {shown(r)} | >= {SPEEDUP_VS_TEACHER_INT8:g}x"
                         f" | {met[min(r) >= SPEEDUP_VS_TEACHER_INT8]} |")
    p50s = passes(best)
    lines.append(f"| p50 latency of `{best.artifact}`, {what}, batch 1, natural length | {shown(p50s, ' ms', 3)} | "
                 f"<= {HEADLINE_P50_MS:g} ms | {met[max(p50s) <= HEADLINE_P50_MS]} |")
    if tb and bt and tb.throughput_per_s and bt.throughput_per_s:
        r = tb.throughput_per_s / bt.throughput_per_s
        lines.append(f"| throughput at batch {tb.batch_size} vs teacher PyTorch FP32 | {r:.1f}x | "
                     f">= {THROUGHPUT_VS_TEACHER:g}x | {met[r >= THROUGHPUT_VS_TEACHER]} |")
    if best.peak_rss_mb and base.peak_rss_mb:
        r = best.peak_rss_mb / base.peak_rss_mb
        lines.append(f"| peak memory of the serving process vs teacher PyTorch FP32 | "
                     f"{r:.2f} ({best.peak_rss_mb:.0f} vs {base.peak_rss_mb:.0f} MB) | <= {MEMORY_VS_TEACHER:g} | "
                     f"{met[r <= MEMORY_VS_TEACHER]} |")
    lines.append(f"| macro-F1 retained | {best.f1_retained_pct:.1f}% | >= {GOAL:g}% | "
                 f"{met[best.f1_retained_pct >= GOAL]} |")
    headline = [spread for *_, spread in paired_run_to_run(block or {}, rows, threads)]
    if headline:
        lines.append(f"| paired headline ratios agreeing with the previous bench run within {AGREE_PCT:g}% | "
                     f"{sum(s <= AGREE_PCT for s in headline)} of {len(headline)} (worst {max(headline):.1f}%) | all | "
                     f"{met[all(s <= AGREE_PCT for s in headline)]} |")
    spreads = repeat_spreads(repeats or {}, threads)
    if spreads:
        lines.append(f"| rows whose two timing passes agree on p50 within {AGREE_PCT:g}% | {agreement(spreads)} | all "
                     f"| {met[all(s <= AGREE_PCT for s in spreads)]} |")
    spreads, origin = previous or ([], "")
    if spreads:
        lines.append(f"| rows whose p50 agrees with the previous bench run within {AGREE_PCT:g}% ({origin}) | "
                     f"{agreement(spreads)} | all | {met[all(s <= AGREE_PCT for s in spreads)]} |")
    return lines


def replace_block(readme: Path, block: str, start: str = START, end: str = END) -> None:
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} block to replace")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{start}\n{block}{end}{tail}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.readme_results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run name (results/<run>/)")
    p.add_argument("--results", default="results", help="results root folder")
    p.add_argument("--write", "--readme", dest="write", metavar="FILE",
                   help="Markdown file whose block for --section is replaced (README.md for headline, "
                   "docs/results.md for the others)")
    p.add_argument("--section", choices=list(MARKERS), default="all",
                   help="all: the run's full results (<!-- results:start -->); headline: one row per model and the "
                   "trade-off plot (<!-- headline:start -->); gpu: the CPU-and-GPU table (<!-- gpu-results:start -->); "
                   "suite: the generality suite's table, results/<run>/suite.md with run: suite "
                   "(<!-- suite:start -->); provenance: every stage's command, commit and machine "
                   "(<!-- provenance:start -->)")
    args = p.parse_args(argv)
    results, target = Path(args.results), Path(args.write) if args.write else None
    if args.section == "suite":
        table = (results / args.run / "suite.md").read_text()
        suite = _load(results / args.run / "suite.json") or {}
        # The file's own title becomes a sentence: the page already has a heading.
        title, _, body = table.partition("\n")
        machines = suite.get("machines")
        head = provenance(args.run, "suite", target, results, [("Tables", suite["provenance"])]
                          if suite.get("provenance") else [], trained_on=machines_text(machines) if machines else None)
        block = f"{title.lstrip('# ')}. {head}\n{body}"
    elif args.section == "gpu":
        doc, rows = read_document(results / args.run / "bench.json")
        gpu = [b for b in doc["machines"].values() if (b.get("hardware") or {}).get("gpus")]
        head = provenance(args.run, "gpu", target, results,
                          _stages(_load(results / args.run / "metrics.json"), None, doc)
                          + [("GPU bench", b["provenance"]) for b in gpu if b.get("provenance")])
        block = head + "\n\n" + "\n".join(cpu_and_gpu(args.run, doc, rows, results)).rstrip() + "\n"
    elif args.section == "headline":
        block = headline(args.run, results, target)
    elif args.section == "provenance":
        block = full_provenance(args.run, results, target)
    else:
        block = build(args.run, results, target)
        summary = results / args.run / "summary.md"
        atomic_write_text(summary, build(args.run, results, target, links_from=summary) if target else block)
    if target:
        replace_block(target, block, *MARKERS[args.section])
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
