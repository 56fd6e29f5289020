"""``export_run``: every trained model of a run -> checked, deployable artifact folders.

    from export.config import load_export_config
    from export.pipeline import export_run
    rows = export_run("runs/quickstart", load_export_config({"variants": ["onnx-fp32", "onnx-int8-dynamic"]}))

For each model (``runs/<run>/models/<method>``) and variant it builds
``runs/<run>/artifacts/<method>/<variant>/`` (model file, tokenizer, config.json, manifest.json),
checks it against the PyTorch FP32 checkpoint (parity on TEST texts, macro-F1 delta) and
writes manifest.json last inside an atomic folder. Artifacts with a valid manifest whose files
match the sha256 it records are kept unless ``force``, so an interrupted export resumes; scratch
files live in ``runs/<run>/.tmp/`` and a killed export's leftovers are removed on the next run. The
summary goes to
``results/<run>/export.json`` and ``export.md`` (export/report.py).
"""
from __future__ import annotations

import gc
import os
import shutil
import time
from pathlib import Path

from edgedistill import deploy, layout
from edgedistill.configbase import dump, to_dict
from edgedistill.integrity import file_records
from edgedistill.io import atomic_dir, atomic_write_json, remove_stale_temporaries
from edgedistill.io import workspace as make_workspace
from edgedistill.methods import ORDER as METHODS
from edgedistill.provenance import provenance
from edgedistill.recipe import Recipe, load_run_recipe
from edgedistill.runtime import (
    MANIFEST,
)
from export import checks, convert, sensitivity
from export.builders import BUILDERS, STATIC_BUILDERS
from export.config import REPAIRED_SUFFIX, ExportConfig, variant_spec
from export.errors import ExportError
from export.manifest import SCHEMA_VERSION, inspect_artifact, valid_manifest
from export.model_job import TOKENIZER_FILES, ModelJob
from export.repair import check_evidence, check_sensitivity, quantize_options, ranked_with, repaired_record
from export.report import format_table, summary_row, write_results
from export.validate import check_artifact, check_speed

TOOLS = ("torch", "transformers", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "tokenizers")


def tool_versions() -> dict[str, str]:
    from edgedistill.provenance import library_versions

    return library_versions(TOOLS)


# --- the run -------------------------------------------------------------------------------

def discover_models(run_dir: Path, wanted: list[str] | None) -> list[str]:
    """The models to export, in METHODS order; each must be a finished checkpoint."""
    models_dir = layout.models_dir(run_dir)
    present = [m for m in METHODS if (models_dir / m).is_dir()]
    if wanted:
        missing = [m for m in wanted if m not in present]
        if missing:
            raise ExportError(f"model(s) {missing} not found under {models_dir} (present: "
                              f"{', '.join(present) or 'none'}); "
                              "train them first or leave them out of --models")
        chosen = [m for m in METHODS if m in wanted]
    else:
        chosen = present
    if not chosen:
        raise ExportError(f"{run_dir} has no trained models (no folders {', '.join(METHODS)} under {models_dir}); "
                          "run `edgedistill train <recipe>` first")
    unfinished = [m for m in chosen if not (models_dir / m / layout.CHECKPOINT_MARKER).is_file()]
    if unfinished:
        raise ExportError(f"checkpoint(s) {', '.join(str(models_dir / m) for m in unfinished)} have no "
                          "edgedistill.json: "
                          "their training did not finish (the file is written last). Finish training "
                          f"(`edgedistill train`), or export only the finished ones with --models "
                          f"{','.join(m for m in chosen if m not in unfinished) or '<method>'}.")
    return chosen


# --- one artifact ---------------------------------------------------------------------------

def build_artifact(job: ModelJob, variant: str, final: Path, log, repair: dict | None = None) -> dict:
    """One artifact folder, checked; ``repair`` (the plain INT8 artifact's, for a ``-repaired``
    variant) names the blocks kept in FP32."""
    spec = variant_spec(variant)
    trim = spec["trimmed_vocab"]
    started = time.perf_counter()
    options = {}
    if spec["repaired"]:
        options = {"exclude_blocks": list(repair["excluded"]), **quantize_options(spec, repair)}
    with atomic_dir(final) as out:
        if job.static:          # the static student's own graphs; no blocks to keep in FP32
            extra = STATIC_BUILDERS[spec["base"]](job, trim, out)
        else:
            extra = BUILDERS[spec["base"]](job, trim, out, **options)
        job.copy_support_files(trim, out)
        model_file = extra.pop("model_file")
        # One truth about the input: the three files a client reads say what the export did.
        deploy.write_input_files(out, job.label_names, job.max_length,
                                 None if job.static else "q8" if spec["precision"] == "int8" else "fp32")
        names = [p.relative_to(out).as_posix() for p in convert.model_files(out, model_file)]
        # The artifact's size is its graph's: what the runtime it is for loads.
        size = sum(f["size_bytes"] for f in file_records(out, names).values())
        if job.static and spec["precision"] == "fp32" and job.model2vec_form(trim):   # beside the ONNX graph
            extra.update(job.write_model2vec(trim, out))
            names += list(layout.MODEL2VEC_FILES)
        files = file_records(out, names)
        # The tokenizer and config a runtime reads beside the model are hashed too (checked by
        # a resumed export, the bundle and the bench before they trust the folder).
        support = file_records(out, [*TOKENIZER_FILES, layout.CONFIG_FILE])
        draft = {"schema_version": SCHEMA_VERSION, "run": job.folder.parent.parent.name, "model": job.method,
                 "variant": variant, "base_model": job.recipe.teacher.model,
                 "format": spec["format"], "precision": spec["precision"], "quantization": spec["quantization"],
                 "trimmed_vocab": trim, "model_file": model_file, "label_names": job.label_names,
                 "max_length": job.max_length}
        result = check_artifact(job, spec, out, draft)
        result.update(check_speed(job, spec, out, draft))
        if spec["repaired"]:
            result.update(repaired_record(job, spec, out, draft, repair))
        elif spec["precision"] == "int8" and job.valset is not None and not job.static:
            result.update(check_sensitivity(job, spec, out, draft, extra))
        elif spec["precision"] == "int8" and job.valset is not None:   # no blocks to rank: its evidence alone
            result.update(check_evidence(job, spec, out, draft))
        warnings = extra.pop("warnings", None) or []
        for w in warnings:
            log(f"WARNING {job.method}/{variant}: {w}")
        calibrated = spec["quantization"] in ("static", "nncf")
        fp32_size = job.fp32_onnx_size()
        manifest = {
            **draft,
            "calibration_size": len(job.calibration(trim)) if calibrated else None,
            "calibration_split": "train" if calibrated else None,
            "opset": convert.onnx_opset(job.onnx(trim)),
            "contrib_ops": convert.contrib_ops(out / model_file) if spec["format"] == "onnx" else [],
            "size_bytes": size,
            "sha256": files[model_file]["sha256"],
            "files": files,
            "support_files": support,
            "size_ratio_vs_fp32": round(size / fp32_size, 4) if fp32_size else None,
            "fp32_onnx_size_bytes": fp32_size,
            "params": job.params(trim),
            "source_checkpoint": str(job.folder),
            "tool_versions": tool_versions(),
            **result,
            "fusions": extra.pop("fusions", None),
            "trim": job.trimmed()[1] if trim else None,
            **extra,
            "warnings": warnings,
            "export_config": to_dict(job.cfg),
            "build_s": round(time.perf_counter() - started, 2),
            "provenance": provenance(),
        }
        deploy.write_card(out, manifest)    # re-rendered with the bench's rows after a bench
        atomic_write_json(out / MANIFEST, manifest)   # last: its presence marks the folder complete
        (out / MANIFEST).chmod(0o644)                 # temp files are private; a deployable folder is not
        out.chmod(0o755)
    return manifest


# --- the whole run --------------------------------------------------------------------------

def export_run(run_dir: str | Path, cfg: ExportConfig, log=print, recipe: Recipe | None = None,
               progress: bool = True) -> list[dict]:
    """Export every selected model x variant of a run; return the summary rows of that selection.

    ``recipe`` (default: the run's stored recipe.yaml) gives the data the checks evaluate on.
    """
    from tqdm.auto import tqdm

    from distill.data import load_dataset

    run_dir = Path(run_dir)
    recipe = recipe or load_run_recipe(run_dir)
    results = layout.run_results_dir(recipe, run_dir)
    models = discover_models(run_dir, cfg.models)
    variants = cfg.selected_variants()
    for v in variants:
        variant_spec(v)
    log(f"export config (resolved) for {run_dir}:\n" + dump(cfg).rstrip())
    log(f"models: {', '.join(models)}; variants: {', '.join(variants)}")
    data = load_dataset(recipe.data)
    evalset = checks.make_eval_set(data.test.texts, data.test.labels, cfg.parity_samples, cfg.eval_samples,
                                   recipe.data.seed)
    valset = (checks.make_eval_set(data.validation.texts, data.validation.labels, 0, cfg.sensitivity_samples,
                                   recipe.data.seed) if cfg.sensitivity_samples else None)
    pool, pool_source = evidence_pool(recipe, data, cfg) if valset is not None else ([], None)
    threads = cfg.threads or os.cpu_count() or 1
    rows: list[dict] = []
    repairs: list[str] = []
    remove_stale_temporaries(run_dir)
    workspace = make_workspace(run_dir, "export")
    try:
        with tqdm(total=len(models) * len(variants), desc="export", unit="artifact", dynamic_ncols=True,
                  disable=not progress) as bar:
            for method in models:
                job = ModelJob(run_dir, method, recipe, data, evalset, cfg, workspace, threads, valset, pool,
                               pool_source)
                for variant in variants:
                    bar.set_postfix_str(f"{method}/{variant}")
                    if job.static and variant not in STATIC_BUILDERS:
                        bar.write(f"{method}/{variant}: not built (a static student exports as "
                                  f"{' and '.join(STATIC_BUILDERS)} only)")
                        bar.update(1)
                        continue
                    final = layout.artifact_dir(run_dir, method, variant)
                    manifest, problem = (None, None) if cfg.force else inspect_artifact(final, verify_sha256=True)
                    # A static student's INT8 graph is never ranked block by block (no transformer blocks).
                    if (manifest is not None and manifest["precision"] == "int8" and not job.static
                            and not ranked_with(manifest, cfg)):
                        manifest, problem = None, ("ranked with other sensitivity_samples / sensitivity_scope / "
                                                   "max_f1_drop than the config's")
                    if manifest is not None:
                        bar.write(f"{method}/{variant}: kept (files match their sha256 in manifest.json; "
                                  "--force rebuilds)")
                    else:
                        if problem and final.exists():
                            bar.write(f"{method}/{variant}: {problem}; exporting again")
                        manifest = build_artifact(job, variant, final, bar.write)
                    rows.append(summary_row(manifest, final))
                    if manifest.get("repair"):
                        rows += repair_sibling(job, manifest, bar)
                        repairs.append(sensitivity.outcome_text(f"{method}/{variant}", manifest["repair"],
                                                                f"{method}/{manifest['repair']['fp32_answer']}"))
                    bar.update(1)
                del job
                gc.collect()
                shutil.rmtree(workspace / method, ignore_errors=True)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    all_rows = collect_rows(run_dir)
    write_results(recipe, run_dir, cfg, all_rows, results)
    log(format_table(rows))
    slower = [r["artifact"] for r in rows if (r.get("speed_vs_fp32") or {}).get("slower")]
    if slower:
        log(f"SLOWER than their FP32 source (side by side, export/speed.py): {', '.join(slower)}")
    flagged = [r["artifact"] for r in rows if r["flagged"]]
    if flagged:
        log(f"FLAGGED (macro-F1 more than {cfg.f1_guard_points:g} point(s) below the FP32 source): "
            f"{', '.join(flagged)}")
    if repairs:
        log(f"INT8 budget ({cfg.max_f1_drop:g} pts of validation macro-F1 below the FP32 source, "
            f"{valset.test_size if valset else 0} validation texts, at most {cfg.sensitivity_samples} used, "
            f"[paired bootstrap 95% interval]; {len(pool)} pool texts ({pool_source})):\n  " + "\n  ".join(repairs))
    log(f"wrote {results / 'export.json'} and export.md")
    return rows


def evidence_pool(recipe: Recipe, data, cfg: ExportConfig) -> tuple[list[str], str | None]:
    """Up to ``cfg.pool_samples`` unlabelled in-domain texts for the INT8 evidence, and where they come from:
    the run's own pool (``data.unlabeled``, the texts the teacher labels for the students, never a validation
    or test text), else the training texts (no labels are read: only agreement with FP32)."""
    from dataclasses import replace

    import numpy as np

    from distill.unlabeled import load_unlabeled

    if not cfg.pool_samples:
        return [], None
    if recipe.data.unlabeled is not None:
        texts, info = load_unlabeled(replace(recipe.data, max_unlabeled=cfg.pool_samples), data)
        if texts:
            return texts, f"the run's unlabelled pool ({info['origin']})"
    train = list(data.train.texts)
    keep = np.sort(np.random.default_rng(recipe.data.seed).choice(len(train), min(cfg.pool_samples, len(train)),
                                                                 replace=False))
    return [train[i] for i in keep], "the training texts (the run has no unlabelled pool)"


def repair_sibling(job: ModelJob, manifest: dict, bar) -> list[dict]:
    """Build (or keep) the ``-repaired`` sibling a plain INT8 artifact's repair asks for, or remove
    one left from a run whose budget asked for another; its summary row, if any."""
    repair, variant = manifest["repair"], manifest["variant"]
    final = layout.artifact_dir(job.folder.parent.parent, job.method, variant + REPAIRED_SUFFIX)
    if repair["outcome"] != "repaired":
        if final.exists():
            shutil.rmtree(final)
            bar.write(f"{job.method}/{variant}{REPAIRED_SUFFIX}: removed (the current budget needs no repair of "
                      f"{variant}: {repair['outcome']})")
        return []
    kept = None if job.cfg.force else valid_manifest(final, verify_sha256=True)
    if kept is not None and (kept.get("repair") or {}).get("excluded") == repair["excluded"]:
        bar.write(f"{job.method}/{variant}{REPAIRED_SUFFIX}: kept (same blocks in FP32; --force rebuilds)")
    else:
        kept = build_artifact(job, variant + REPAIRED_SUFFIX, final, bar.write, repair=repair)
    return [summary_row(kept, final)]


def collect_rows(run_dir: Path) -> list[dict]:
    """Rows for every finished artifact of the run (not just this invocation's selection)."""
    from export.config import ARTIFACT_VARIANTS

    rows = []
    for method in METHODS:
        for variant in ARTIFACT_VARIANTS:
            folder = layout.artifact_dir(run_dir, method, variant)
            manifest = valid_manifest(folder)
            if manifest:
                rows.append(summary_row(manifest, folder))
    return rows


__all__ = ["export_run", "discover_models", "valid_manifest", "inspect_artifact", "build_artifact", "BUILDERS"]
