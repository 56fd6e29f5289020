"""The export's speed check: is an INT8 artifact faster than the FP32 graph it came from?

An INT8 graph can be slower than its FP32 source when the runtime does not fuse its quantized
operators into integer kernels (see ``convert.STATIC_ACTIVATION_TYPE``). The check loads both
in one process, on the same runtime and threads, and times them side by side in alternating
short blocks (``edgedistill.paired``, ABBA) on one fixed, short test text: a few hundred calls, a few
seconds. It does not replace the bench; it catches an artifact that should not ship.
"""
from __future__ import annotations

import gc
from pathlib import Path


def speed_text(texts: list[str], rows) -> str:
    """The fixed input: the parity sample's median-length text (``texts`` are sorted by length)."""
    rows = sorted(int(i) for i in rows)
    return texts[rows[len(rows) // 2]] if rows else texts[len(texts) // 2]


def side_by_side(runtime_cls, folder: Path, draft: dict, reference_model: Path, threads: int | None, text: str,
                 blocks: int, calls: int, candidate_model: Path | None = None) -> dict:
    """Median speed-up of the candidate (the artifact in ``folder``, or ``candidate_model``) over
    ``reference_model`` (reference time / candidate time per block), its bootstrap 95% interval,
    both p50s and the contention seen while timing."""
    from edgedistill.contention import Sampler, is_disturbed
    from edgedistill.paired import time_paired

    def load(model: Path | None, precision: str | None = None):
        # An absolute model_file replaces the folder in ``folder / model_file``: another graph is
        # served with the artifact's own tokenizer and runtime settings.
        meta = draft if model is None else {**draft, "model_file": str(Path(model).resolve())}
        return runtime_cls.open(folder, {**meta, "precision": precision} if precision else meta, threads=threads)

    candidate, reference = load(candidate_model), load(reference_model, "fp32" if draft.get("precision") == "int8"
                                                       and candidate_model is None else None)
    try:
        batch = candidate.encode([text])
        sampler = Sampler()
        result = time_paired(lambda: reference.forward(batch), lambda: candidate.forward(batch), blocks=blocks,
                             calls=calls)
        contention = sampler.stop()
    finally:
        candidate = reference = None   # free both sessions before the next artifact is built
        gc.collect()
    return {"speedup": round(result.median, 3), "low": round(result.low, 3), "high": round(result.high, 3),
            "candidate_p50_ms": round(result.b_p50_ms, 4), "reference_p50_ms": round(result.a_p50_ms, 4),
            "blocks": blocks, "calls": calls, "tokens": int(batch["input_ids"].shape[1]), "threads": threads,
            "contention": contention, "disturbed": is_disturbed(contention)}


def int8_vs_fp32(runtime_cls, folder: Path, draft: dict, fp32_model: Path, threads: int | None, text: str,
                 blocks: int, calls: int) -> dict:
    """``side_by_side`` of an INT8 artifact against its FP32 source graph; ``slower`` when the
    median says the INT8 graph lost."""
    out = side_by_side(runtime_cls, folder, draft, fp32_model, threads, text, blocks, calls)
    return {"reference": "the FP32 graph it was made from, same runtime and threads", **out,
            "slower": bool(out["speedup"] < 1.0)}


def cell(check: dict | None) -> str:
    """export.md's cell: "2.31x [2.10, 2.52]", with SLOWER when the INT8 graph lost."""
    if not check:
        return "-"
    text = f"{check['speedup']:.2f}x [{check['low']:.2f}, {check['high']:.2f}]"
    if check.get("disturbed"):
        text += " (busy)"
    return text + (" SLOWER" if check.get("slower") else "")
