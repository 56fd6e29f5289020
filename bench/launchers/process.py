"""The bench loop: plan jobs, measure each in its own process, write rows for this machine.

    from bench.launchers.process import run_bench
    run_bench("runs/hate-speech", overrides={"threads": ["all", 1]})

Results go to ``results/<run>/bench.json`` (+ ``bench.csv``, ``report.md``). The file holds
every machine's rows; a run replaces this machine's rows and block, never another machine's.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import BenchConfig, describe, load_bench_config
from bench.inputs import bench_inputs
from bench.plan import LOADS, Job, available_devices, discover_all, plan_jobs
from bench.reporting.derive import add_derived
from bench.reporting.report import render_report, summary_table
from bench.scenarios import paired, roofline
from bench.scenarios.probe import BandwidthProbe
from bench.schema import (
    BENCH_FILE,
    CSV_FILE,
    REPORT_FILE,
    BenchFileError,
    BenchRow,
    document,
    load_or_new,
    machine_block,
    read_document,
    replace_machine,
    rows_from_timings,
    rows_to_csv,
)
from edgedistill import contention
from edgedistill.io import scratch_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH_SCRATCH = "edgedistill-bench"      # <tmp>/edgedistill-bench-pid<PID>@<host>.<random>: inputs, job files


class BenchError(ValueError):
    """A bench run that cannot start or produced nothing; the message says how to fix it."""


@dataclass
class BenchOutcome:
    results_dir: Path
    machine_id: str
    rows: list[BenchRow]                  # this machine's new rows
    failures: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> dict[str, Path]:
        return {n: self.results_dir / n for n in (BENCH_FILE, CSV_FILE, REPORT_FILE)}


# --- one job -------------------------------------------------------------------------------

def run_job(job: Job, cfg: BenchConfig, inputs_path: Path, workdir: Path) -> dict:
    """Measure ``job`` in a fresh Python process; returns the worker's result dict."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec, result, log = workdir / "job.json", workdir / "result.json", workdir / "worker.log"
    spec.write_text(json.dumps({"job": job.to_dict(), "config": dataclasses.asdict(cfg), "inputs": str(inputs_path)}))
    env = worker_env(job.threads)
    try:
        with open(log, "w") as fh:
            subprocess.run([sys.executable, "-m", "bench.launchers.worker", str(spec), str(result)], stdout=fh,
                           stderr=subprocess.STDOUT, env=env, timeout=cfg.job_timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {cfg.job_timeout_s:.0f}s (bench.job_timeout_s)",
                "log": _tail(log)}
    if not result.is_file():
        return {"ok": False, "error": "the worker process died without a result (out of memory?)", "log": _tail(log)}
    out = json.loads(result.read_text())
    if not out.get("ok"):
        out["log"] = _tail(log)
    return out


def worker_env(threads: int) -> dict:
    env = dict(os.environ)
    # Thread pools read these at import; the runtimes also get `threads` explicitly.
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p))
    return env


def run_module(module: str, spec: dict, threads: int, workdir: Path, timeout_s: float) -> dict:
    """``python -m module SPEC RESULT`` in a fresh process on ``threads`` threads; its JSON result."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, result, log = workdir / "spec.json", workdir / "result.json", workdir / "worker.log"
    spec_path.write_text(json.dumps(spec))
    try:
        with open(log, "w") as fh:
            subprocess.run([sys.executable, "-m", module, str(spec_path), str(result)], stdout=fh,
                           stderr=subprocess.STDOUT, env=worker_env(threads), timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f}s"}
    if not result.is_file():
        return {"ok": False, "error": "the worker died without a result", "log": _tail(log)}
    return json.loads(result.read_text())


def measure_peaks(threads: list[int], workdir: Path, errors: dict | None = None) -> dict:
    """This machine's FP32 / INT8 MatMul peak per thread count (bench/scenarios/roofline.py), each in a fresh
    process. A thread count whose peak could not be measured is left out of the result and its reason (the
    worker's last lines of output) goes into ``errors`` and onto stderr: a missing peak is never silent."""
    peaks = {}
    for t in sorted(set(threads)):
        out, log = workdir / f"peak-{t}.json", workdir / f"peak-{t}.log"
        try:
            with open(log, "w") as fh:
                proc = subprocess.run([sys.executable, "-m", "bench.scenarios.roofline", str(out), str(t)],
                                      env=worker_env(t), check=False, stdout=fh, stderr=subprocess.STDOUT,
                                      timeout=600)
            code = f"exit code {proc.returncode}"
        except subprocess.TimeoutExpired:
            code = "timed out after 600 s"
        if out.is_file():
            peaks[str(t)] = json.loads(out.read_text())
            continue
        reason = f"the MatMul peak on {t} thread(s) was not measured ({code}): " + (_tail(log, 4) or "no output")
        print(f"  roofline: {reason}", file=sys.stderr, flush=True)
        if errors is not None:
            errors[str(t)] = reason
    return peaks


def run_paired(rows: list[BenchRow], row_jobs: dict, cfg: BenchConfig, inputs_path: Path, workdir: Path) -> list[dict]:
    """The paired headline ratios (bench/scenarios/paired.py): one worker per thread count loads the
    references and the candidates together. Returns every pair's result (also written into rows)."""
    add_derived(rows)   # retained macro-F1 picks the candidates
    results = []
    for threads, spec in paired.choose_pairs(rows, row_jobs, cfg.paired_top).items():
        print(f"paired: {len(spec['pairs'])} pair(s) at {threads} thread(s)", flush=True)
        out = run_module("bench.scenarios.paired", {**spec, "threads": threads, "inputs": str(inputs_path),
                                                    "blocks": cfg.paired_blocks, "calls": cfg.paired_calls},
                         threads, workdir / f"paired-{threads}", cfg.job_timeout_s)
        if not out.get("ok"):
            print(f"  paired timing failed: {out.get('error')}", file=sys.stderr, flush=True)
            continue
        for p in out["pairs"]:
            p["threads"] = threads
            p["disturbed"] = contention.is_disturbed(p.get("contention"), cfg.disturbed_other_cpu_pct,
                                                     cfg.disturbed_steal_pct)
        results += out["pairs"]
    paired.apply_pairs(rows, results)
    return results


def add_metrics(result: dict, inputs: dict) -> dict:
    """The worker returns class probabilities; accuracy metrics are computed here, so that
    scikit-learn's memory never counts towards the peak of the process serving the artifact."""
    import numpy as np

    from edgedistill.metrics import classification_metrics

    probs = np.asarray(result.pop("probs"), dtype=np.float64)
    if probs.shape != (len(inputs["test_labels"]), len(inputs["label_names"])):
        # One artifact that predicts the wrong shape is one failed job, not a failed bench.
        return {**result, "ok": False, "error": f"the worker returned probabilities of shape {probs.shape} for "
                f"{len(inputs['test_labels'])} test texts and {len(inputs['label_names'])} labels"}
    result["metrics"] = classification_metrics(inputs["test_labels"], probs, inputs["label_names"])
    return result


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def rows_from_result(result: dict, job: Job, run: str, hardware: dict,
                     cfg: BenchConfig | None = None) -> tuple[list[BenchRow], dict]:
    """The worker's result as rows (first repeat) and {row key: [p50 per repeat]}."""
    a = job.artifact
    cfg = cfg or BenchConfig()
    model_config = roofline.artifact_config(a.folder)
    identity = dict(machine_id=hardware["machine_id"], machine_label=hardware["label"], run=run, model=a.model,
                    artifact=a.name, variant=a.variant, format=a.format,
                    precision=result["describe"].get("precision") or job.row_precision(),
                    quantization=a.quantization, trimmed_vocab=a.trimmed_vocab, runtime=job.runtime,
                    device=job.device, threads=job.threads, options=job.row_options(result.get("describe")))
    footprint = dict(size_mb=a.size_bytes / 1e6, params=a.params, load_s=result["load_s"],
                     peak_rss_mb=result["peak_rss_mb"], size_only=a.size_only or None)

    def trust_columns(timing: dict) -> dict:
        # What else ran on the machine while this case was timed, and how far it sits from the compute floor.
        return {**contention.row_columns(timing.get("contention"), cfg.disturbed_other_cpu_pct,
                                         cfg.disturbed_steal_pct),
                **roofline.row_columns(roofline.mean_gflop(model_config, timing.get("shapes")),
                                       timing["latency_p50_ms"], None)}

    return rows_from_timings(identity, result["metrics"], footprint, result["timings"], result["measured_at"],
                             case_columns=trust_columns)


# --- the loop ------------------------------------------------------------------------------

def run_bench(run_dir: str | Path, overrides: dict | None = None, results_dir: str | Path | None = None,
              force_new: bool | None = None, progress: bool = True, command: list[str] | None = None,
              recipe=None, browser: bool = False) -> BenchOutcome:
    """Benchmark every checkpoint and artifact of ``run_dir`` on this machine (see module doc).

    ``recipe`` (default: the run's stored recipe.yaml) gives the bench section and the test data.
    ``browser``: the run's ONNX artifacts in headless Chromium instead (``bench.launchers.web``).
    """
    from distill.data import load_dataset
    from edgedistill import layout
    from edgedistill.recipe import load_recipe

    run_dir = Path(run_dir)
    recipe_path = layout.recipe_file(run_dir)
    if recipe is None and not recipe_path.is_file():
        raise BenchError(f"{run_dir} is not a finished run folder: {recipe_path} is missing. Pass --run runs/<run> "
                         "for a run trained with `edgedistill train <recipe>`.")
    recipe = recipe or load_recipe(recipe_path)
    cfg = load_bench_config(recipe.bench, overrides)
    print("bench config (recipe bench section + overrides):\n" + describe(cfg), flush=True)
    run = run_dir.name
    results_dir = Path(results_dir) if results_dir else layout.run_results_dir(recipe, run_dir)
    bench_path = results_dir / BENCH_FILE
    doc, old_rows = load_or_new(bench_path, run, force_new)   # a bad file fails now, not after an hour

    artifacts, notes, unreadable = discover_all(run_dir)
    # A selected folder whose edgedistill.json / manifest.json is corrupt is a failed artifact.
    broken = [u for u in unreadable if u.selected(cfg)]
    broken_text = "".join(f"\n  - {u.error}" for u in broken)
    if not artifacts:
        raise BenchError(f"{run_dir} has no finished checkpoints (models/<method>/edgedistill.json) or artifacts "
                         "(artifacts/<model>/<variant>/manifest.json); run `edgedistill train` and "
                         "`edgedistill export` first" + broken_text)
    if browser:
        from bench.launchers.web import bench_browser

        inputs = bench_inputs(load_dataset(recipe.data), cfg)
        doc, all_rows, rows, mid, failures = bench_browser(doc, old_rows, artifacts, cfg, inputs, run, command)
        write_outputs(doc, all_rows, results_dir)
        return finish(BenchOutcome(results_dir, mid, rows, failures, notes), bench_path)
    jobs, hw = plan_here(artifacts, cfg, notes, unreadable, broken_text)
    dataset = load_dataset(recipe.data)
    inputs = bench_inputs(dataset, cfg)
    broken_jobs = [{"job": u.name, "error": u.error, "log": ""} for u in broken]
    rows, block = measure_jobs(jobs, cfg, inputs, run, hw, command, progress, bench_path, failed=broken_jobs)
    failures = block.pop("failures")
    # A filtered bench (--models, --variants, --runtimes, --threads) replaces only the rows of the
    # jobs it ran; this machine's other rows stay, unless their artifact is gone from the run.
    doc, all_rows = replace_machine(doc, old_rows, hw["machine_id"], block, rows,
                                    keep=outside_jobs(jobs, {a.name for a in artifacts}), ran={j.label for j in jobs})
    written = write_outputs(doc, all_rows, results_dir)
    from edgedistill.deploy import refresh_cards

    refresh_cards(run_dir, written)       # each artifact's README.md, now with its latency rows
    return finish(BenchOutcome(results_dir, hw["machine_id"], rows, failures, notes), bench_path)


def outside_jobs(jobs: list[Job], present: set[str] | None = None):
    """Whether an old row was measured by none of ``jobs`` (same artifact, runtime, device, precision
    and threads) and its artifact is still ``present``: the rows a partial bench keeps. The precision
    counts: the reference job (teacher PyTorch FP32) leaves the teacher's BF16 rows in place."""
    ran = {(j.artifact.name, j.runtime, j.device, j.row_precision(), j.threads) for j in jobs}

    def keep(row: BenchRow) -> bool:
        return ((row.artifact, row.runtime, row.device, row.precision, row.threads) not in ran
                and (present is None or row.artifact in present))
    return keep


def plan_here(artifacts: list, cfg: BenchConfig, notes: list[str], unreadable=(),
              broken_text: str = "") -> tuple[list[Job], dict]:
    """The jobs for this machine's runtimes and devices (an error when the filters leave none)."""
    from edgedistill.provenance import hardware as machine_hardware

    hw = machine_hardware()
    devices = available_devices(cfg.runtimes or list(LOADS))
    jobs = plan_jobs(artifacts, cfg, devices, hw, unreadable)
    if not jobs:
        raise BenchError(f"nothing to measure: the filters (models={cfg.models}, variants={cfg.variants}, "
                         f"runtimes={cfg.runtimes}, devices={cfg.devices}) leave no artifact x runtime on this "
                         f"machine (runtime devices here: {devices})" + broken_text)
    print(f"machine {hw['machine_id']} ({hw['label']}, {hw.get('arch')}); {len(artifacts)} artifacts, "
          f"{len(jobs)} jobs", flush=True)
    for note in notes:
        print("  note: " + note, flush=True)
    return jobs, hw


def measure_jobs(jobs: list[Job], cfg: BenchConfig, inputs: dict, run: str, hw: dict, command: list[str] | None,
                 progress: bool, target: Path, extra: dict | None = None,
                 failed: list[dict] | None = None) -> tuple[list[BenchRow], dict]:
    """The one bench loop: each job in a fresh worker, metrics here, rows and this machine's block;
    then the machine's MatMul peak and the paired headline ratios. ``failed``: jobs that failed
    before measuring (a corrupt manifest). The block's ``failures`` entry (with logs) is popped
    by ``finish``; ``failed`` stays in the file."""
    from edgedistill.provenance import provenance

    new_rows, failures, repeats, runtimes, bandwidth, row_jobs = [], list(failed or []), {}, {}, {}, {}
    peaks, pairs, peak_errors = {}, [], {}
    for f in failures:
        print(f"\n  FAILED {f['job']}: {f['error']}", file=sys.stderr, flush=True)
    probe = BandwidthProbe() if cfg.probe_s > 0 else None
    with scratch_dir(BENCH_SCRATCH) as tmp:       # a killed bench's leftovers go at the next start
        inputs_path = Path(tmp) / "inputs.json"
        inputs_path.write_text(json.dumps(inputs))
        damaged: dict[str, list[str]] = {}
        for i, job in enumerate(_progress(jobs, progress)):
            if job.artifact.folder not in damaged:         # once per folder, before any job times it
                damaged[job.artifact.folder] = damaged_files(job.artifact)
            if damaged[job.artifact.folder]:
                failures.append({"job": job.label, "error": damaged_text(job.artifact, damaged[job.artifact.folder]),
                                 "log": ""})
                print(f"\n  FAILED {job.label}: {failures[-1]['error']}", file=sys.stderr, flush=True)
                continue
            before = probe.gbs(cfg.probe_s) if probe else None
            result = run_job(job, cfg, inputs_path, Path(tmp) / f"job-{i:03d}")
            after = probe.gbs(cfg.probe_s) if probe else None
            if result.get("ok"):
                result = add_metrics(result, inputs)
            if not result.get("ok"):
                failures.append({"job": job.label, "error": result.get("error"), "log": result.get("log", "")})
                tail = "".join(f"\n    | {line}" for line in result.get("log", "").splitlines()[-6:])
                print(f"\n  FAILED {job.label}: {result.get('error')}{tail}", file=sys.stderr, flush=True)
                continue
            rows, spread = rows_from_result(result, job, run, hw, cfg)
            new_rows += rows
            row_jobs.update({r.key_text(): job for r in rows})
            repeats.update(spread)
            runtimes[job.label] = result["describe"]
            if probe:
                bandwidth.update({r.key_text(): [before, after] for r in rows})
        if new_rows:
            cpu_threads = [j.threads for j in jobs if j.device == "cpu"]
            peaks = measure_peaks(cpu_threads, Path(tmp), peak_errors) if cfg.roofline and cpu_threads else {}
            roofline.apply_peaks(new_rows, peaks)
            pairs = run_paired(new_rows, row_jobs, cfg, inputs_path, Path(tmp)) if cfg.paired_top else []
    if not new_rows:
        detail = "\n".join(f"  - {f['job']}: {f['error']}" for f in failures[:10])
        raise BenchError(f"every bench job failed, so {target} was left as it was:\n{detail}")
    block = machine_block(hw, provenance(command), dataclasses.asdict(cfg),
                          {"repeats": repeats, "bandwidth_gbs": bandwidth, "runtimes": runtimes,
                           "failed": [{k: f[k] for k in ("job", "error")} for f in failures],
                           "peak_gflops": peaks, **({"peak_errors": peak_errors} if peak_errors else {}),
                           "paired": pairs,
                           "test_size": len(inputs["test_labels"]), **(extra or {})})
    return new_rows, {**block, "failures": failures}


def damaged_files(artifact) -> list[str]:
    """A checkpoint's or artifact's files against the sha256 its edgedistill.json / manifest.json
    records (bench.plan.Artifact); [] when intact."""
    from edgedistill import layout

    folder = Path(artifact.folder)
    return layout.checkpoint_problems(folder) if artifact.format == "pytorch" else layout.artifact_problems(folder)


def damaged_text(artifact, problems: list[str]) -> str:
    fix = (f"retrain it (edgedistill train RECIPE --methods {artifact.model} --force)" if artifact.format == "pytorch"
           else f"export it again (edgedistill export --run runs/<run> --models {artifact.model} --variants "
                f"{artifact.variant} --force)")
    return f"not timed: its files differ from what was written ({'; '.join(problems)}); restore the folder or {fix}"


def finish(outcome: BenchOutcome, target: Path) -> BenchOutcome:
    print("\n" + summary_table(outcome.rows))
    print(f"\n{len(outcome.rows)} rows for machine {outcome.machine_id} written to {target} "
          f"(+ its .csv and report); "
          f"{len(outcome.failures)} job(s) failed")
    return outcome


def _progress(jobs: list[Job], enabled: bool):
    """The jobs, under a progress bar (on stderr) that names the job being measured."""
    if not enabled:
        yield from jobs
        return
    from tqdm import tqdm

    bar = tqdm(jobs, desc="bench", unit="job", file=sys.stderr, dynamic_ncols=True)
    for job in bar:
        bar.set_postfix_str(job.label, refresh=True)
        yield job


def write_outputs(doc: dict, rows: list[BenchRow], results_dir: str | Path,
                  json_path: str | Path | None = None) -> dict:
    """bench.json, bench.csv and report.md from the same rows, derived ratios refreshed. With
    ``json_path`` (a bundle's ``--out``) the three files are that path, its .csv and its -report.md."""
    from edgedistill.io import atomic_write_json, atomic_write_text

    results_dir = Path(results_dir)
    if json_path is None:
        paths = [results_dir / n for n in (BENCH_FILE, CSV_FILE, REPORT_FILE)]
    else:
        json_path = Path(json_path)
        paths = [json_path, json_path.with_suffix(".csv"), json_path.with_name(json_path.stem + "-report.md")]
    add_derived(rows)
    out = document(doc, rows)
    ordered = [BenchRow.from_dict(r) for r in out["rows"]]
    atomic_write_json(paths[0], out)
    atomic_write_text(paths[1], rows_to_csv(ordered))
    atomic_write_text(paths[2], render_report(out, ordered))
    return out


def merge_bench_file(source: str | Path, results_dir: str | Path, force_new: bool | None = None,
                     note: str | None = None, add: bool = False, json_path: str | Path | None = None) -> list[str]:
    """Fold another machine's bench.json (e.g. from bench/launchers/gpu/run.py) into ``results_dir``;
    each machine in ``source`` replaces that machine's rows there. ``note`` (where and how the
    file was measured, when the file cannot say it itself) is kept in each merged machine's
    block as ``merge_note``. ``add``: keep the machine's rows that ``source`` does not measure
    (a second file from the same machine, e.g. ONNX Runtime on CUDA beside the PyTorch GPU
    script's rows); the replaced block stays under ``added_to``. ``json_path``: merge into that file
    (and its .csv and -report.md, as ``write_outputs`` names them) instead of ``results_dir``'s
    bench.json. Returns the machine ids merged."""
    source, results_dir = Path(source), Path(results_dir)
    if not source.is_file():
        raise BenchFileError(f"{source} does not exist; pass the bench.json written on the other machine")
    src_doc, src_rows = read_document(source)
    smoke = [mid for mid, b in src_doc["machines"].items() if (b.get("bench_config") or {}).get("smoke")]
    if smoke:
        raise BenchFileError(f"{source} comes from a --smoke run (machine {smoke[0]}): its numbers check the script, "
                             "they measure nothing, and merging would replace that machine's real rows. Merge the "
                             "file of a real run (without --smoke).")
    target = Path(json_path) if json_path else results_dir / BENCH_FILE
    doc, rows = load_or_new(target, src_doc.get("run") or results_dir.name, force_new)
    if src_doc.get("run") and doc.get("run") and src_doc["run"] != doc["run"]:
        raise BenchFileError(f"{source} holds results of run {src_doc['run']!r}, but {target} is run {doc['run']!r}; "
                             "merge it into results/<that run>/ instead (--results)")
    for mid, block in src_doc["machines"].items():
        if note:
            block = {**block, "merge_note": note}
        incoming = [r for r in src_rows if r.machine_id == mid]
        keep = None
        if add and mid in doc["machines"]:
            keys = {r.key() for r in incoming}

            def keep(r, keys=keys):
                return r.key() not in keys
            block = {**block, "failed": [*doc["machines"][mid].get("failed", []), *block.get("failed", [])]}
        doc, rows = replace_machine(doc, rows, mid, block, incoming, keep=keep)
    write_outputs(doc, rows, results_dir, json_path=json_path)
    return list(src_doc["machines"])
