"""INT8 sensitivity and repair glue: which blocks an INT8 variant may keep in FP32, ranking them on
validation (export/sensitivity.py) and the record of a repaired sibling.
"""
from __future__ import annotations

import gc
import itertools
import shutil
import time
from pathlib import Path

from edgedistill import layout
from export import blocks, checks, sensitivity, speed
from export.builders import BUILDERS, RUNTIME_FOR_FORMAT
from export.config import REPAIRED_SUFFIX, TRIM_SUFFIX, ExportConfig
from export.model_job import ModelJob

# --- INT8 sensitivity and repair (export/sensitivity.py) --------------------------------------

def quantize_options(spec: dict, built: dict) -> dict:
    """What quantizing a variant again must hold fixed: the graph a dynamic artifact came from."""
    return {"source": built["quantized_from"]} if spec["base"] == "onnx-int8-dynamic" else {}


def fp32_answer(spec: dict) -> str:
    """The FP32 variant that answers when no repair of an INT8 one meets the budget."""
    return f"{spec['format']}-fp32" + (TRIM_SUFFIX if spec["trimmed_vocab"] else "")


def candidate_blocks(job: ModelJob, spec: dict, options: dict, kept_fp32) -> tuple[list[str], list[str]]:
    """(blocks the INT8 variant quantizes, blocks it already keeps in FP32), in forward order."""
    trim = spec["trimmed_vocab"]
    if spec["format"] == "openvino":
        import openvino as ov

        mapping = blocks.openvino_blocks(ov.convert_model(str(job.onnx(trim))))
    else:
        src = job.optimized(trim)[0] if options.get("source") == "optimized" else job.onnx(trim)
        mapping = blocks.onnx_blocks(src)
    kept = set(kept_fp32 or ())
    names = blocks.forward_order(mapping)
    already = [b for b in names if set(mapping[b]) <= kept]
    return [b for b in names if b not in already], already


def evaluator(job: ModelJob, spec: dict, folder: Path, draft: dict):
    """``evaluate(model_file) -> Score``: a graph served with the artifact's tokenizer and settings, scored
    against the PyTorch FP32 checkpoint on the capped VALIDATION texts and the run's pool (export/sensitivity.py)."""
    cfg, trim, valset = job.cfg, spec["trimmed_vocab"], job.valset
    reference, pool_reference = job.val_reference(trim), job.pool_reference(trim)
    runtime = RUNTIME_FOR_FORMAT[spec["format"]]

    def evaluate(model: Path) -> dict:
        rt = runtime.open(folder, {**draft, "model_file": str(Path(model).resolve())}, threads=job.threads)
        try:
            logits = rt.logits(valset.texts, cfg.batch_size)
            pool = rt.logits(job.pool, cfg.batch_size) if job.pool else None
        finally:
            del rt
            gc.collect()
        return sensitivity.score_logits(logits, reference, valset.labels, job.label_names, pool, pool_reference)
    return evaluate


def check_evidence(job: ModelJob, spec: dict, folder: Path, draft: dict) -> dict:
    """An INT8 artifact that is not ranked block by block (the static student's): its evidence alone."""
    trim = spec["trimmed_vocab"]
    plain = evaluator(job, spec, folder, draft)(folder / draft["model_file"])
    source_f1 = checks.macro_f1(job.val_reference(trim), job.valset.labels, job.label_names)
    return {"evidence": {**sensitivity.score_row(plain, source_f1, plain), "split": "validation",
                         "pool": job.pool_source, "max_f1_drop": job.cfg.max_f1_drop,
                         "verdict": sensitivity.verdict(plain, source_f1, job.cfg.max_f1_drop)}}


def check_sensitivity(job: ModelJob, spec: dict, folder: Path, draft: dict, built: dict) -> dict:
    """The block ranking of a plain INT8 artifact and the repair its budget asks for, both on the capped
    VALIDATION texts and the run's pool against the PyTorch FP32 checkpoint it came from."""
    cfg, trim, valset = job.cfg, spec["trimmed_vocab"], job.valset
    options = quantize_options(spec, built)
    reference = job.val_reference(trim)
    scratch = job.work / "sensitivity" / spec["variant"]
    tries = itertools.count()
    evaluate = evaluator(job, spec, folder, draft)

    def score(excluded: list[str]) -> dict:
        attempt = scratch / f"try-{next(tries)}"
        attempt.mkdir(parents=True)
        try:
            BUILDERS[spec["base"]](job, trim, attempt, exclude_blocks=excluded, **options)
            return evaluate(attempt / draft["model_file"])
        finally:
            shutil.rmtree(attempt, ignore_errors=True)

    started = time.perf_counter()
    source_f1 = checks.macro_f1(reference, valset.labels, job.label_names)
    plain = evaluate(folder / draft["model_file"])
    candidates, already = candidate_blocks(job, spec, options, built.get("fp32_nodes"))
    if cfg.sensitivity_scope == "over_budget" and sensitivity.within_budget(plain, source_f1, cfg.max_f1_drop):
        candidates = []          # nothing to repair: its evidence is recorded, its blocks not tried
    ranking = sensitivity.rank_blocks(candidates, score, source_f1, plain)
    repair = sensitivity.greedy_repair(ranking, score, source_f1, plain, cfg.max_f1_drop)
    quantizations = next(tries)
    reference_name = "pytorch-fp32 (trimmed vocabulary)" if trim else "pytorch-fp32"
    return {
        "evidence": {**repair["plain"], "split": "validation", "pool": job.pool_source,
                     "max_f1_drop": cfg.max_f1_drop, "verdict": repair["verdict"]},
        "sensitivity": {"split": "validation", "n": len(valset.texts), "samples_cap": cfg.sensitivity_samples,
                        "scope": cfg.sensitivity_scope, "pool": job.pool_source, "pool_cap": cfg.pool_samples,
                        "validation_size": valset.test_size, "reference": reference_name,
                        "source_macro_f1": round(source_f1, 6), "plain": repair["plain"],
                        "blocks": sensitivity.strip(ranking), "already_fp32": already,
                        "quantizations": quantizations, "seconds": round(time.perf_counter() - started, 2)},
        "repair": {**repair, **({"quantized_from": options["source"]} if options else {}),
                   "repaired_variant": spec["variant"] + REPAIRED_SUFFIX if repair["outcome"] == "repaired" else None,
                   "fp32_answer": fp32_answer(spec) if repair["outcome"] == "fp32" else None},
    }


def repaired_record(job: ModelJob, spec: dict, folder: Path, draft: dict, repair: dict) -> dict:
    """What a ``-repaired`` artifact keeps in FP32, its validation scores from the repair search and
    its speed side by side with the plain INT8 artifact (its speed against FP32 is ``speed_vs_fp32``)."""
    plain_variant = spec["variant"].removesuffix(REPAIRED_SUFFIX)
    plain_folder = layout.artifact_dir(job.folder.parent.parent, job.method, plain_variant)
    out = {"repair": {"of": f"{job.method}/{plain_variant}", "excluded": list(repair["excluded"]),
                      "max_f1_drop": repair["max_f1_drop"], "split": "validation",
                      "source_macro_f1": repair["source_macro_f1"], "plain": repair["plain"],
                      "validation": repair["validation"], "steps": len(repair["steps"])}}
    if job.cfg.speed_check_blocks:
        out["speed_vs_int8"] = speed.side_by_side(
            RUNTIME_FOR_FORMAT[spec["format"]], folder, draft, plain_folder / draft["model_file"], job.threads,
            speed.speed_text(job.evalset.texts, job.evalset.parity_idx), job.cfg.speed_check_blocks,
            job.cfg.speed_check_calls)
    return out


def ranked_with(manifest: dict, cfg: ExportConfig) -> bool:
    """Whether a kept plain INT8 artifact was ranked and repaired with the current settings."""
    repair = manifest.get("repair") or {}
    if not cfg.sensitivity_samples:
        return True
    sens = manifest.get("sensitivity") or {}
    return (repair.get("max_f1_drop") == cfg.max_f1_drop and sens.get("samples_cap") == cfg.sensitivity_samples
            and sens.get("scope") == cfg.sensitivity_scope and sens.get("pool_cap") == cfg.pool_samples
            and repair.get("verdict_rule") == sensitivity.VERDICT_RULE)
