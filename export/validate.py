"""An artifact's checks: a valid manifest and matching files (what a resumed export keeps), parity
and macro-F1 against PyTorch (export/checks.py), and the paired speed against its FP32 source.
"""
from __future__ import annotations

import gc
from pathlib import Path

from export import checks, convert, speed
from export.builders import RUNTIME_FOR_FORMAT
from export.model_job import ModelJob


def check_speed(job: ModelJob, spec: dict, folder: Path, draft: dict) -> dict:
    """What ONNX Runtime runs (fused and integer kernels, per artifact) and, for INT8, the
    side-by-side speed against the FP32 graph it came from (export/speed.py)."""
    out = {}
    if spec["format"] == "onnx":
        out["runtime_fusions"] = convert.runtime_fusions(folder / draft["model_file"])
    if spec["precision"] == "int8" and job.cfg.speed_check_blocks:
        out["speed_vs_fp32"] = speed.int8_vs_fp32(
            RUNTIME_FOR_FORMAT[spec["format"]], folder, draft, job.onnx(spec["trimmed_vocab"]), job.threads,
            speed.speed_text(job.evalset.texts, job.evalset.parity_idx), job.cfg.speed_check_blocks,
            job.cfg.speed_check_calls)
    return out


def check_artifact(job: ModelJob, spec: dict, folder: Path, draft: dict) -> dict:
    """Parity with PyTorch on the parity sample and macro-F1 on the eval texts; FP32 must match."""
    trim, ev, cfg = spec["trimmed_vocab"], job.evalset, job.cfg
    rt = RUNTIME_FOR_FORMAT[spec["format"]].open(folder, draft, threads=job.threads)
    try:
        logits = rt.logits(ev.texts, cfg.batch_size)
        runtime_info = {k: v for k, v in rt.describe().items()
                        if k in ("runtime", "providers", "inference_precision", "threads")}
    finally:
        del rt
        gc.collect()
    reference = job.reference(trim)
    result = checks.parity(logits, reference, ev.parity_idx)
    ref_name = "pytorch-fp32 (trimmed vocabulary)" if trim else "pytorch-fp32"
    result["reference"] = ref_name
    if spec["precision"] == "fp32":
        checks.require_fp32_parity(f"{job.method}/{spec['variant']}", result, cfg.fp32_tolerance, ref_name)
    scores = checks.scores(logits, ev.labels, job.label_names)
    f1, f1_source = scores["macro_f1"], job.source_f1()
    out = {"parity": result, "check_runtime": runtime_info, "macro_f1": f1, "macro_f1_source": f1_source,
           "per_class_f1": {name: c["f1"] for name, c in scores["per_class"].items()},
           "macro_f1_delta": f1 - f1_source, "eval_samples": len(ev.texts), "eval_split": "test",
           "flagged": checks.is_flagged(f1, f1_source, cfg.f1_guard_points)}
    if trim:
        out["agreement_vs_source_pct"] = checks.parity(logits, job.reference(False), ev.parity_idx)["agreement_pct"]
    return out

