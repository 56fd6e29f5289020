"""``edgedistill run RECIPE``: train -> export -> bench, resuming where a previous run stopped.

Each stage skips what is already complete and valid: trained methods have a finished
``edgedistill.json``, artifacts a valid ``manifest.json``, and the bench is skipped when this
machine already has rows, measured after they were written, for every checkpoint and artifact.

Exit codes: 0 everything done, 1 some bench jobs failed (the other rows were written), 2 nothing
done (the recipe, data or run folder needs a fix), 3 some methods or baselines failed in training
(the others were trained, exported and benched; the same command retries only what failed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edgedistill import layout

STAGES = ("train", "export", "bench")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML, e.g. configs/quickstart.yaml or configs/hate-speech.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value (repeatable), e.g. --set train.epochs=1")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                   help="stages to run, in order")
    p.add_argument("--force", action="store_true", help="redo every stage even where its outputs are complete")
    p.add_argument("--retrain-changed", action="store_true",
                   help="after editing the recipe: retrain (and re-export) only the methods whose settings changed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def bench_is_current(run_dir: Path, results_dir: Path) -> bool:
    """True when this machine's rows in bench.json cover every checkpoint and artifact of the run
    and were measured after each was last written. A model trained or exported again (or a fresh
    clone that re-creates ``runs/`` beside committed results) makes its rows stale."""
    from datetime import datetime

    from bench.plan import discover
    from bench.schema import BENCH_FILE, BenchFileError, read_document
    from edgedistill.provenance import hardware

    try:
        _, rows = read_document(Path(results_dir) / BENCH_FILE)
    except BenchFileError:
        return False
    machine_id, measured = hardware()["machine_id"], {}
    for r in rows:
        if r.machine_id != machine_id:
            continue
        try:
            t = datetime.strptime(r.measured_at or "", "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            return False                  # a row that cannot say when it was measured is not current
        measured[r.artifact] = min(t, measured.get(r.artifact, t))
    artifacts, _ = discover(run_dir)
    if not artifacts:
        return False
    for a in artifacts:
        written = max((p.stat().st_mtime for p in Path(a.folder).iterdir()), default=float("inf"))
        if a.name not in measured or written > measured[a.name]:
            return False
    return True


def _problems(exc: Exception) -> list[str]:
    """The individual problems of a ConfigError (one per line after its heading) or its message."""
    text = str(exc)
    return text.split("\n  - ")[1:] if "\n  - " in text else [text]


def check_recipe(recipe_path: str, overrides: list[str] | None = None, stages=STAGES, force: bool = False):
    """Build and validate every stage's config before any work: the recipe's own sections, the
    ``export`` and ``bench`` sections, and every method's layers against the teacher's depth.

    Returns ``(recipe, export_config, bench_config)`` (None for stages not run) or raises one
    ConfigError listing every problem found, each naming its section and field.
    """
    from bench.config import load_bench_config
    from distill.pipeline import method_problems
    from edgedistill.configbase import ConfigError, deep_merge, load_yaml, parse_overrides
    from edgedistill.recipe import load_recipe
    from export.config import load_export_config

    raw = deep_merge(load_yaml(recipe_path), parse_overrides(overrides))
    problems: list[str] = []
    export_cfg = bench_cfg = None
    # Collected, not raised: the recipe comes back with defaults for its bad fields, so that the
    # layers are checked against the teacher's depth in the same pass.
    recipe = load_recipe(recipe_path, overrides, errors=problems)
    if "export" in stages:
        try:
            export_cfg = load_export_config(raw.get("export"), {"force": force or None})
        except ConfigError as exc:
            problems += _problems(exc)
    if "bench" in stages:
        try:
            bench_cfg = load_bench_config(raw.get("bench"))
        except ConfigError as exc:
            problems += _problems(exc)
    if "train" in stages and not any(p.startswith("teacher") for p in problems):
        # A method whose own entry is wrong is reported once, by the recipe's check.
        named = [p for p in problems if p.startswith("methods.")]
        problems += [p for p in method_problems(recipe)
                     if not any(q.split(":")[0].split(".")[:2] == p.split(":")[0].split(".")[:2] for q in named)]
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in {recipe_path}; nothing was run:\n  - "
                          + "\n  - ".join(problems))
    return recipe, export_cfg, bench_cfg


def run_all(recipe_path: str, overrides: list[str] | None = None, stages=STAGES,
            force: bool = False, progress: bool = True, retrain_changed: bool = False) -> dict:
    recipe, export_cfg, _ = check_recipe(recipe_path, overrides, stages, force)
    run_dir = recipe.run_dir
    if os.environ.get("RANK", "0") != "0":        # the other processes of a launch follow the main one
        return _run_stages(recipe, export_cfg, stages, force, progress, retrain_changed)
    # A second `edgedistill run` on this folder is refused (without training, a missing folder has nothing to lock).
    with layout.run_lock(run_dir, create="train" in stages):
        return _run_stages(recipe, export_cfg, stages, force, progress, retrain_changed)


def _run_stages(recipe, export_cfg, stages, force: bool, progress: bool, retrain_changed: bool) -> dict:
    from distill.pipeline import prepare_run_dir, train_run, write_results

    run_dir, results = recipe.run_dir, recipe.results_path
    if "train" not in stages and layout.models_dir(run_dir).is_dir():
        # The recipe given is the one the later stages use: check it matches the trained models
        # and store it as the run's recipe, so a standalone export or bench reads the same one.
        prepare_run_dir(recipe)
    timings, bench_failures, train_failures = {}, [], {}
    for i, stage in enumerate(stages, 1):
        print(f"\n=== [{i}/{len(stages)}] {stage}: {recipe.run.name} ===", flush=True)
        t0 = time.perf_counter()
        if stage == "train":
            # A method or baseline that fails is recorded and the others go on to export and bench.
            train_failures = train_run(recipe, force=force, progress=progress,
                                       retrain_changed=retrain_changed).get("failed") or {}
        elif stage == "export":
            from export.pipeline import export_run

            export_run(run_dir, export_cfg, recipe=recipe, progress=progress)
        elif stage == "bench":
            from bench.launchers.process import run_bench

            if not force and bench_is_current(run_dir, results):
                print(f"bench: {results / 'bench.json'} already has this machine's rows for every artifact, measured "
                      "after it was written; skipping (use --force to measure again)")
            else:
                bench_failures = run_bench(run_dir, results_dir=results, progress=progress, recipe=recipe).failures
        timings[stage] = time.perf_counter() - t0
    if "train" not in stages and layout.models_dir(run_dir).is_dir() and not (results / "metrics.json").is_file():
        # Only where the results folder has none (a renamed or copied run): metrics.json names the
        # command that trained, which an export or bench alone must not replace.
        write_results(recipe)
    summary = {"run": recipe.run.name, "results": str(results), "stage_seconds": timings,
               "bench_failures": bench_failures, "train_failures": train_failures}
    print("\n=== done ===")
    for name in ("results.md", "export.md", "report.md"):
        path = results / name
        if path.is_file():
            print(f"\n--- {path} ---\n{path.read_text()}")
    print("Stage times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items()))
    print(f"Explore the results:  edgedistill dashboard --results {recipe.run.results_dir}   (or: make dashboard)")
    return summary


def main(args) -> int:
    from bench.launchers.process import BenchError
    from distill.data import DataError
    from distill.errors import RunError
    from edgedistill.checkpoint import ModelError
    from edgedistill.configbase import ConfigError
    from edgedistill.layout import RunFolderError
    from edgedistill.runtime import ArtifactError

    errors: tuple = (ArtifactError, BenchError, ConfigError, DataError, ModelError, RunError, RunFolderError)
    try:
        summary = run_all(args.recipe, args.overrides, args.stages, args.force, progress=not args.no_progress,
                          retrain_changed=args.retrain_changed)
    except errors as exc:
        print(f"edgedistill run: {exc}", file=sys.stderr)
        return 2
    from distill.failures import TRAIN_FAILED
    from distill.failures import summary as failure_summary

    failed = summary.get("bench_failures") or []
    if failed:
        # The other rows were written; the exit status still says the run is not complete.
        print(f"edgedistill run: {len(failed)} bench job(s) failed (their rows are missing):\n"
              + "\n".join(f"  - {f['job']}: {f['error']}" for f in failed), file=sys.stderr)
    if summary.get("train_failures"):
        print(f"edgedistill run: {failure_summary(summary['train_failures'])}", file=sys.stderr)
        return TRAIN_FAILED
    return 1 if failed else 0
