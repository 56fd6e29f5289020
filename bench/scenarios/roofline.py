"""Distance to the limit: FLOPs per forward, the achieved rate, and this machine's measured peak.

- ``forward_flops(config, batch, length)``: the multiply-adds of one forward, counted from the
  model config (embedding lookups excluded): per layer ``2 * b * T * (4 H^2 + 2 H I)`` for the
  Q, K, V, output and FFN projections plus ``4 * b * T^2 * H`` for attention's QK^T and PV, then
  the pooler and the classifier. Counted at the padded length: padding is computed too.
- ``measure_peak(threads)``: an FP32 and an INT8 matrix product of a representative size (the
  FFN projection of a MiniLM at 128 tokens: 128 x 384 x 1536) run through ONNX Runtime, as the
  artifacts run (the INT8 one is ``quantize_dynamic``'s graph, like the dynamic INT8 artifacts).
  The peak is the best block median: the rate this machine reaches when nothing interferes.

A row's ``floor_ms`` = its FLOPs / the peak of its precision (INT8 rows: the INT8 peak; all
others: the FP32 one); ``pct_of_peak`` = floor / p50 x 100. At batch 1 and tens of tokens a
forward is a chain of small products plus many small operators, so the gap to the floor says how
much of the time is overhead rather than arithmetic.

    python -m bench.scenarios.roofline OUT.json THREADS      # the bench runs this in a process of its own
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

PEAK_SHAPE = (128, 384, 1536)   # M x K x N


def dims(config: dict) -> dict | None:
    """Layers, hidden, intermediate and labels from a transformers config.json (BERT family and
    DistilBERT names); None when the config lacks them."""
    layers = config.get("num_hidden_layers", config.get("n_layers"))
    hidden = config.get("hidden_size", config.get("dim"))
    inter = config.get("intermediate_size", config.get("hidden_dim"))
    labels = len(config.get("id2label") or {}) or config.get("num_labels") or 2
    if not (layers and hidden and inter):
        return None
    return {"layers": int(layers), "hidden": int(hidden), "intermediate": int(inter), "labels": int(labels),
            "pooler": config.get("model_type") not in ("distilbert",)}


def forward_flops(config: dict, batch: int, length: int) -> float | None:
    d = dims(config)
    if d is None:
        return None
    b, t, h, i, n = batch, length, d["hidden"], d["intermediate"], d["layers"]
    per_layer = 2 * b * t * (4 * h * h + 2 * h * i) + 4 * b * t * t * h
    head = 2 * b * h * h * (1 if d["pooler"] else 0) + 2 * b * h * d["labels"]
    return float(n * per_layer + head)


def mean_gflop(config: dict, shapes: list[list[int]] | None) -> float | None:
    """Mean GFLOP per call over the batches a case cycles through ([batch, length] each)."""
    if not shapes:
        return None
    flops = [forward_flops(config, int(b), int(t)) for b, t in shapes]
    if any(f is None for f in flops):
        return None
    return sum(flops) / len(flops) / 1e9


def artifact_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def row_columns(gflop: float | None, p50_ms: float | None, peak_gflops: float | None) -> dict:
    """The bench row's roofline columns."""
    out = {"gflop_per_call": None if gflop is None else round(gflop, 6), "achieved_gflops": None,
           "floor_ms": None, "pct_of_peak": None}
    if gflop and p50_ms:
        out["achieved_gflops"] = round(gflop / (p50_ms / 1000), 3)
    if gflop and peak_gflops:
        out["floor_ms"] = round(1000 * gflop / peak_gflops, 5)
        if p50_ms:
            out["pct_of_peak"] = round(100 * out["floor_ms"] / p50_ms, 2)
    return out


def peak_for(peaks: dict | None, threads: int, precision: str) -> float | None:
    entry = (peaks or {}).get(str(threads)) or {}
    return entry.get("int8" if precision == "int8" else "fp32")


def apply_peaks(rows, peaks: dict | None) -> None:
    """Fill floor_ms and pct_of_peak of CPU rows from the machine's measured peaks."""
    for r in rows:
        peak = peak_for(peaks, r.threads, r.precision) if r.device == "cpu" else None
        if peak and r.gflop_per_call:
            cols = row_columns(r.gflop_per_call, r.latency_p50_ms, peak)
            r.floor_ms, r.pct_of_peak = cols["floor_ms"], cols["pct_of_peak"]


# --- the peak ----------------------------------------------------------------------------------

def _matmul_model(path: Path, m: int, k: int, n: int, seed: int = 0) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = (np.random.default_rng(seed).standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "peak",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _best_rate(path: Path, threads: int, flops: float, x, blocks: int, calls: int) -> float:
    import statistics

    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(calls):
        session.run(None, {"x": x})
    medians = []
    for _ in range(blocks):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            session.run(None, {"x": x})
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
    return flops / min(medians) / 1e9


def measure_peak(threads: int, shape: tuple[int, int, int] = PEAK_SHAPE, blocks: int = 10, calls: int = 20) -> dict:
    """GFLOP/s of an FP32 and a dynamic-INT8 MatMul of ``shape`` in ONNX Runtime on ``threads``."""
    import numpy as np
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.convert import quiet

    m, k, n = shape
    x = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
    flops = 2.0 * m * k * n
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        _matmul_model(fp32, m, k, n)
        with quiet():
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        return {"fp32": round(_best_rate(fp32, threads, flops, x, blocks, calls), 2),
                "int8": round(_best_rate(int8, threads, flops, x, blocks, calls), 2),
                "shape": list(shape), "runtime": "onnxruntime", "threads": threads}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    Path(argv[0]).write_text(json.dumps(measure_peak(int(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
