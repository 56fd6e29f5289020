"""The variant builders: each writes one variant's model file(s) into a folder from a model's
shared graphs and returns the manifest fields it adds. ``BUILDERS`` maps every transformer
variant's base to its builder, ``STATIC_BUILDERS`` the static student's (export/config.py is
the variants table).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from edgedistill import layout
from edgedistill.runtime import (
    OpenVinoRuntime,
    OrtRuntime,
)
from export import checks, convert, speed
from export.errors import ExportError
from export.model_job import ModelJob

# --- variant builders: write the model file(s) into ``out``, return extra manifest fields -----
# Each writes where the clients look (edgedistill/layout.py: onnx/model.onnx, onnx/model_quantized.onnx,
# openvino_model.xml) and returns that path as "model_file".

def target(out: Path, model_file: str) -> Path:
    """``out / model_file`` with its folder made."""
    path = out / model_file
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def build_onnx_fp32(job: ModelJob, trim: bool, out: Path) -> dict:
    folder = target(out, layout.ONNX_FP32_FILE).parent
    for f in convert.model_files(job.onnx(trim).parent, convert.ONNX_FILE):
        shutil.copy2(f, folder / f.name)
    return {"model_file": layout.ONNX_FP32_FILE}


def build_onnx_opt(job: ModelJob, trim: bool, out: Path) -> dict:
    path, fusions = job.optimized(trim)
    shutil.copy2(path, target(out, layout.ONNX_FP32_FILE))
    missing = [k for k in convert.FUSION_KINDS if not fusions.get(k)]
    warnings = []
    if missing:
        warnings.append(f"no {'/'.join(missing)} fusion applied by the ONNX Runtime transformer optimizer "
                        f"(fused: {fusions['ops'] or 'nothing'}); this graph is not faster than onnx-fp32")
    return {"model_file": layout.ONNX_FP32_FILE, "fusions": fusions, "warnings": warnings}


def build_onnx_dynamic(job: ModelJob, trim: bool, out: Path, exclude_blocks=(), source: str | None = None) -> dict:
    """Dynamic INT8 from the fused graph or the plain one; 'auto' builds both and keeps the better.

    ``source`` forces one graph and ``exclude_blocks`` keeps blocks in FP32 (the sensitivity
    ranking and a repaired artifact quantize the graph the plain artifact was made from)."""
    if source is not None:
        src = job.optimized(trim)[0] if source == "optimized" else job.onnx(trim)
        nodes = convert.quantize_dynamic_onnx(src, target(out, layout.ONNX_INT8_FILE),
                                              per_channel=job.cfg.dynamic_per_channel, exclude_blocks=exclude_blocks)
        return {"model_file": layout.ONNX_INT8_FILE, "quantized_from": source,
                "per_channel": job.cfg.dynamic_per_channel,
                "fusions": job.optimized(trim)[1] if source == "optimized" else None, "fp32_nodes": nodes}
    cfg, warnings = job.cfg, []
    sources = ["optimized", "plain"] if cfg.dynamic_source == "auto" else [cfg.dynamic_source]
    candidates: dict[str, Path] = {}
    fusions = None
    for source in sources:
        folder = job.work / f"dynamic-{source}{'-trim' if trim else ''}"
        folder.mkdir(exist_ok=True)
        try:
            if source == "optimized":
                src, fusions = job.optimized(trim)
            else:
                src = job.onnx(trim)
            convert.quantize_dynamic_onnx(src, folder / convert.ONNX_FILE, per_channel=cfg.dynamic_per_channel)
            candidates[source] = folder
        except Exception as exc:  # noqa: BLE001 - one failed candidate is reported, the other may do
            if len(sources) == 1:
                raise ExportError(f"dynamic INT8 quantization of the {source} graph failed: {exc}") from exc
            warnings.append(f"dynamic INT8 from the {source} graph failed ({exc}); used the other graph")
    if not candidates:
        raise ExportError(f"dynamic INT8 quantization failed for both graphs: {warnings}")
    scores = {}
    if len(candidates) > 1:
        for source, folder in candidates.items():
            job.copy_support_files(trim, folder)
            scores[source] = _quick_score(job, trim, folder)
        if cfg.speed_check_blocks:
            draft = {"format": "onnx", "precision": "int8", "model_file": convert.ONNX_FILE,
                     "label_names": job.label_names, "max_length": job.max_length}
            scores["optimized"]["vs_plain"] = speed.side_by_side(
                OrtRuntime, candidates["optimized"], draft, candidates["plain"] / convert.ONNX_FILE, job.threads,
                speed.speed_text(job.evalset.texts, job.evalset.parity_idx), cfg.speed_check_blocks,
                cfg.speed_check_calls)
        chosen = pick_dynamic(scores)
    else:
        chosen = next(iter(candidates))
    shutil.copy2(candidates[chosen] / convert.ONNX_FILE, target(out, layout.ONNX_INT8_FILE))
    return {"model_file": layout.ONNX_INT8_FILE, "quantized_from": chosen, "dynamic_candidates": scores or None,
            "per_channel": cfg.dynamic_per_channel,
            "fusions": fusions if chosen == "optimized" else None, "warnings": warnings}


def pick_dynamic(scores: dict[str, dict]) -> str:
    """The more accurate candidate on the parity sample; at equal agreement the fused graph unless
    the plain one is measurably faster: side by side (``vs_plain``, the fused graph's speed-up
    over the plain one) the whole 95% interval lies below 1. Without a side-by-side timing, unless
    the plain one was clearly (>10%) faster on the parity sample."""
    opt, plain = scores.get("optimized"), scores.get("plain")
    if opt is None or plain is None:
        return "optimized" if plain is None else "plain"
    if opt["agreement_pct"] != plain["agreement_pct"]:
        return "optimized" if opt["agreement_pct"] > plain["agreement_pct"] else "plain"
    if opt.get("vs_plain"):
        return "plain" if opt["vs_plain"]["high"] < 1.0 else "optimized"
    return "plain" if plain["seconds"] < 0.9 * opt["seconds"] else "optimized"


def _quick_score(job: ModelJob, trim: bool, folder: Path) -> dict:
    """Agreement with PyTorch and best-of-two time on the parity sample (to pick a candidate)."""
    rt = OrtRuntime.open(folder, {"format": "onnx", "precision": "int8", "model_file": convert.ONNX_FILE,
                                  "label_names": job.label_names, "max_length": job.max_length},
                         threads=job.threads)
    texts = [job.evalset.texts[i] for i in job.evalset.parity_idx]
    ref = job.reference(trim)[job.evalset.parity_idx]
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        logits = rt.logits(texts, job.cfg.batch_size)
        times.append(time.perf_counter() - t0)
    result = checks.parity(logits, ref, np.arange(len(texts)))
    return {"agreement_pct": result["agreement_pct"], "max_abs_diff": result["max_abs_diff"],
            "seconds": round(min(times), 4)}


def build_onnx_static(job: ModelJob, trim: bool, out: Path, exclude_blocks=()) -> dict:
    kept_fp32 = convert.quantize_static_onnx(job.onnx(trim), target(out, layout.ONNX_INT8_FILE),
                                             job.calibration(trim),
                                             per_channel=job.cfg.static_per_channel,
                                             skip_gelu_matmuls=job.cfg.static_skip_gelu_matmuls,
                                             exclude_blocks=exclude_blocks)
    return {"model_file": layout.ONNX_INT8_FILE, "per_channel": job.cfg.static_per_channel,
            "calibration_method": "minmax",
            "quant_format": "qdq", "activation_type": convert.STATIC_ACTIVATION_TYPE,
            "weight_type": convert.STATIC_WEIGHT_TYPE, "fp32_nodes": kept_fp32}


def build_openvino(fp16: bool):
    def build(job: ModelJob, trim: bool, out: Path) -> dict:
        convert.to_openvino(job.onnx(trim), target(out, layout.OPENVINO_FILE), fp16=fp16)
        return {"model_file": layout.OPENVINO_FILE, "weights": "fp16-compressed" if fp16 else "fp32"}
    return build


def build_openvino_int8(job: ModelJob, trim: bool, out: Path, exclude_blocks=()) -> dict:
    nodes = convert.quantize_nncf(job.onnx(trim), target(out, layout.OPENVINO_FILE), job.calibration(trim),
                                  exclude_blocks=exclude_blocks)
    return {"model_file": layout.OPENVINO_FILE, **({"fp32_nodes": nodes} if nodes else {})}


BUILDERS = {
    "onnx-fp32": build_onnx_fp32,
    "onnx-fp32-opt": build_onnx_opt,
    "onnx-int8-dynamic": build_onnx_dynamic,
    "onnx-int8-static": build_onnx_static,
    "openvino-fp32": build_openvino(fp16=False),
    "openvino-fp16": build_openvino(fp16=True),
    "openvino-int8": build_openvino_int8,
}
RUNTIME_FOR_FORMAT = {"onnx": OrtRuntime, "openvino": OpenVinoRuntime}


def build_static_int8(job: ModelJob, trim: bool, out: Path) -> dict:
    """Dynamic INT8 of a static student: the table (Gather) and the head's MatMuls in int8, a quarter of
    the FP32 size; the lookup itself is no faster, so the bench says whether it pays at run time."""
    from edgedistill import graphs

    graphs.quantize_int8(job.onnx(trim), target(out, layout.ONNX_INT8_FILE))
    return {"model_file": layout.ONNX_INT8_FILE, "quantized_from": "plain", "quantized_ops": ["Gather", "MatMul"]}


STATIC_BUILDERS = {"onnx-fp32": build_onnx_fp32, "onnx-int8-dynamic": build_static_int8}
