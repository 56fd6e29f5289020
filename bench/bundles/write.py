"""A portable bench bundle: everything one target machine needs to bench a run's artifacts.

    edgedistill bundle --run runs/quickstart --out quickstart-bundle          (here, full install)
    edgedistill bench --bundle quickstart-bundle --out bench.json             (there, slim install)
    edgedistill bench --run runs/quickstart --merge bench.json                (here again)

The folder holds the chosen artifacts (each with its tokenizer.json, config.json and
manifest.json), ``inputs.json`` (the test texts and labels, capped as the bench caps them),
the bench settings and ``bundle.json``: schema version, provenance (commit, command, the
machine and architecture that wrote it), the artifacts and a sha256 for every file. The
target verifies every hash before it measures anything.

Optionally (``--gpu``) it also carries the GPU pack (``bench/bundles/gpu_pack.py``: FP16 PyTorch
weights, vocabulary cut to the carried texts) for CUDA runtimes, measured by
``edgedistill gpu-bench --bundle DIR``.

Benching a bundle imports no torch, transformers, datasets or scikit-learn: only the runtimes
(onnxruntime, openvino), tokenizers, numpy, pytest-benchmark, psutil and pyyaml.
"""
from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from pathlib import Path

from bench.bundles.spec import (
    BUNDLE_FILE,
    FORMAT_RUNTIME,
    GPU_FOLDER,
    INPUTS_FILE,
    KIND,
    SCHEMA_VERSION,
    BundleError,
    bundle_files,
    file_table,
)

# The teacher's artifacts every bundle carries by default: the size and speed references on a
# machine without PyTorch.
TEACHER_REFERENCES = ("teacher/onnx-fp32", "teacher/onnx-int8-dynamic")


# --- writing (full install) ------------------------------------------------------------------

def default_selection(found: list, bench_path: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The best ONNX / OpenVINO artifact per goal on every CPU machine in ``bench_path`` (see
    ``bench.reporting.report.goal_winners``), plus the teacher's reference artifacts; and why each was chosen."""
    from bench.reporting.report import goal_winners
    from bench.schema import read_document

    if not bench_path.is_file():
        raise BundleError(f"no bench results at {bench_path}, so the best artifact per goal is unknown. Bench the run "
                          "first (edgedistill bench --run ...), or name the artifacts: --artifacts teacher/onnx-fp32,"
                          "odd/onnx-int8-dynamic (or --all)")
    _, rows = read_document(bench_path)
    present = {a.name for a in found}
    rows = [r for r in rows if r.device == "cpu" and r.format in FORMAT_RUNTIME and r.artifact in present]
    why: dict[str, list[str]] = {}
    for machine in sorted({r.machine_id for r in rows}):
        for goal, row in goal_winners([r for r in rows if r.machine_id == machine]).items():
            why.setdefault(row.artifact, []).append(f"{goal} on {row.machine_label}")
    for name in TEACHER_REFERENCES:
        if name in present:
            why.setdefault(name, []).append("teacher reference")
    order = {a.name: i for i, a in enumerate(found)}
    return sorted(why, key=order.__getitem__), why


def check_out(out: Path, run_dir: Path, force: bool = False) -> None:
    """Refuse an ``--out`` whose replacement would lose files the bundle did not write
    (``edgedistill.owned.check_output_folder``): only a missing or empty folder, or an earlier
    bundle, is replaced; files added to that bundle since only with ``force``; never a user's
    folder or file, the run folder, a folder holding it, one inside it, or the current folder."""
    from edgedistill.owned import OutputError, check_output_folder

    try:
        check_output_folder(out, what="bench bundle", manifest=f"{BUNDLE_FILE} of kind {KIND}",
                            own_files=bundle_files, protect=[run_dir], protect_inside=[run_dir], force=force,
                            example=f"a new folder, e.g. --out {run_dir.name}-bundle")
    except OutputError as exc:
        raise BundleError(str(exc)) from None


def write_bundle(run_dir: str | Path, out: str | Path, artifacts: list[str] | None = None, every: bool = False,
                 overrides: dict | None = None, gpu: bool = False, gpu_max_mb: float | None = None,
                 command: list[str] | None = None, force: bool = False) -> dict:
    """Write the bundle folder ``out`` for ``run_dir``; returns bundle.json's contents. ``out`` may
    replace only an earlier bundle (files added to it since with ``force``) or an empty folder."""
    from bench.config import load_bench_config
    from bench.inputs import cap_test
    from bench.plan import discover
    from distill.data import load_dataset
    from edgedistill import layout
    from edgedistill.configbase import deep_merge
    from edgedistill.io import atomic_dir, atomic_write_json
    from edgedistill.provenance import provenance
    from edgedistill.recipe import load_recipe

    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / "recipe.yaml").is_file():
        raise BundleError(f"{run_dir} is not a run folder (no recipe.yaml); pass --run runs/<run>")
    check_out(out, run_dir, force)
    if gpu_max_mb is not None and not gpu_max_mb > 0:
        raise BundleError(f"--gpu-max-mb {gpu_max_mb:g}: the GPU pack's size budget must be a positive number of "
                          "MiB (default 60)")
    recipe = load_recipe(run_dir / "recipe.yaml")
    section = deep_merge(dict(recipe.bench or {}), {k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = load_bench_config(section)
    found = [a for a in discover(run_dir)[0] if a.format in FORMAT_RUNTIME]
    by_name = {a.name: a for a in found}
    if every:
        names, why = list(by_name), {n: ["--all"] for n in by_name}
    elif artifacts is not None:            # an explicit list; [] carries only the GPU pack
        unknown = [n for n in artifacts if n not in by_name]
        if unknown:
            raise BundleError(f"--artifacts {unknown} are not finished ONNX / OpenVINO exports of {run_dir} "
                              f"(present: {', '.join(by_name) or 'none'}); PyTorch checkpoints travel with --gpu")
        names, why = list(dict.fromkeys(artifacts)), {n: ["--artifacts"] for n in artifacts}
    else:
        bench_json = Path(recipe.run.results_dir) / run_dir.name / "bench.json"
        names, why = default_selection(found, bench_json) if found or not gpu else ([], {})
    if not names and not gpu:
        raise BundleError(f"{run_dir} has no ONNX / OpenVINO artifacts to bundle; run `edgedistill export` first")
    # Verified on the way in: a damaged artifact would be hashed afresh below and pass on the target.
    damaged = {n: layout.artifact_problems(by_name[n].folder) for n in names}
    damaged = {n: p for n, p in damaged.items() if p}
    if damaged:
        raise BundleError("artifact(s) whose files differ from their manifest.json, nothing was written:\n  - "
                          + "\n  - ".join(f"{n}: {'; '.join(p)}" for n, p in damaged.items())
                          + f"\nExport them again (edgedistill export --run {run_dir} --models "
                          f"{','.join(sorted({n.split('/')[0] for n in damaged}))} --variants "
                          f"{','.join(sorted({n.split('/')[1] for n in damaged}))} --force), or leave them out "
                          "with --artifacts.")

    dataset = load_dataset(recipe.data)
    texts, labels = cap_test(list(dataset.test.texts), [int(x) for x in dataset.test.labels], cfg)
    with atomic_dir(out) as tmp:
        entries = []
        for name in names:
            a = by_name[name]
            rel = Path("artifacts") / a.model / a.variant
            shutil.copytree(a.folder, tmp / rel, ignore=shutil.ignore_patterns(".*"))
            entries.append({**dataclasses.asdict(a), "folder": rel.as_posix(), "chosen_for": why.get(name, [])})
        atomic_write_json(tmp / INPUTS_FILE, {"label_names": list(dataset.label_names), "test_texts": texts,
                                              "test_labels": labels, "data": dataset.summary()})
        gpu_info = None
        if gpu:
            from bench.bundles.gpu_pack import DEFAULT_MAX_MB, pack_run

            gpu_info = pack_run(run_dir, tmp / GPU_FOLDER, max_mb=gpu_max_mb or DEFAULT_MAX_MB,
                                max_test=cfg.max_test)
        files = file_table(tmp)
        info = {"schema_version": SCHEMA_VERSION, "kind": KIND, "run": run_dir.name,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "arch": platform.machine(),
                "provenance": provenance(command), "bench": section, "label_names": list(dataset.label_names),
                "test_size": len(texts), "artifacts": entries, "gpu": gpu_info,
                "total_mb": sum(f["bytes"] for f in files.values()) / 2**20, "files": files}
        atomic_write_json(tmp / BUNDLE_FILE, info)
    return info
