"""OpenVINO INT8 from two FP32 ONNX graphs of one checkpoint: optimum-onnx's and torch.onnx.export's.

    # 1. the optimum-onnx graph, in an environment with transformers 4.57 + optimum-onnx 0.1:
    python -c "from transformers import AutoModelForSequenceClassification as M; \
      from optimum.exporters.onnx import onnx_export_from_model as e; \
      e(M.from_pretrained('runs/quickstart/models/teacher', use_safetensors=True), 'OUT/optimum', \
        task='text-classification', do_validation=False)"
    # 2. here (the project's environment): the TorchScript graph, NNCF INT8 of both, paired timing
    python experiments/exporter-comparison/openvino_int8.py --checkpoint runs/quickstart/models/teacher \
        --optimum OUT/optimum/model.onnx --out experiments/exporter-comparison/openvino-int8.json

Both graphs go through the export stage's own converters (convert.to_openvino, convert.quantize_nncf,
same calibration texts); each INT8 IR is timed against its FP32 IR and the two INT8 IRs against each
other, in ABBA blocks in one process (bench.scenarios.paired), batch 1 at natural length.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgedistill.checkpoint import load_checkpoint  # noqa: E402
from edgedistill.contention import Sampler  # noqa: E402
from edgedistill.io import atomic_write_json  # noqa: E402
from edgedistill.paired import time_paired  # noqa: E402
from edgedistill.provenance import provenance  # noqa: E402
from edgedistill.runtime import TextEncoder  # noqa: E402
from export import convert  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared/data/hate_speech_offensive/labeled_data.csv"


def tweets(start: int, n: int) -> list[str]:
    import csv

    with open(DATA, newline="", encoding="utf-8") as f:
        return [r["tweet"] for r in csv.DictReader(f)][start:start + n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--optimum", type=Path, required=True, help="model.onnx written by optimum-onnx")
    ap.add_argument("--work", type=Path, default=Path("/tmp/openvino-int8"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import openvino as ov

    model, _ = load_checkpoint(args.checkpoint)
    graphs = {"optimum-onnx": args.optimum,
              "torchscript": convert.export_onnx(model, args.work / "torchscript", exporter="torchscript")}
    encoder = TextEncoder(args.checkpoint, 64, ("input_ids", "attention_mask", "token_type_ids"))
    calib = convert.calibration_feeds(encoder, tweets(1000, 128))
    feeds = [encoder([t]) for t in tweets(0, 64)]
    core = ov.Core()
    compiled = {}
    for name, onnx_path in graphs.items():
        fp32, int8 = args.work / name / "fp32.xml", args.work / name / "int8.xml"
        convert.to_openvino(onnx_path, fp32)
        convert.quantize_nncf(onnx_path, int8, calib)
        for kind, xml in (("fp32", fp32), ("int8", int8)):
            compiled[(name, kind)] = core.compile_model(str(xml), "CPU", {
                "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": args.threads})

    def caller(key):
        c, state = compiled[key], {"i": 0}
        names = [p.get_any_name() for p in c.inputs]

        def call():
            f = feeds[state["i"] % len(feeds)]
            state["i"] += 1
            return c({k: f[k] for k in names})
        return call

    pairs = {
        "optimum-onnx: INT8 x FP32": (("optimum-onnx", "fp32"), ("optimum-onnx", "int8")),
        "torchscript: INT8 x FP32": (("torchscript", "fp32"), ("torchscript", "int8")),
        "INT8: torchscript x optimum-onnx": (("optimum-onnx", "int8"), ("torchscript", "int8")),
        "FP32: torchscript x optimum-onnx": (("optimum-onnx", "fp32"), ("torchscript", "fp32")),
    }
    report = {}
    for label, (ref, cand) in pairs.items():
        sampler = Sampler()
        r = time_paired(caller(ref), caller(cand), blocks=30, calls=10)
        report[label] = {"speedup": round(r.median, 3), "low": round(r.low, 3), "high": round(r.high, 3),
                         "reference_p50_ms": round(r.a_p50_ms, 3), "candidate_p50_ms": round(r.b_p50_ms, 3),
                         "contention": sampler.stop()}
        print(label, report[label], flush=True)
    ops = {}
    for name in graphs:
        model_ir = core.read_model(str(args.work / name / "int8.xml"))
        kinds = [op.get_type_name() for op in model_ir.get_ops()]
        ops[name] = {k: kinds.count(k) for k in ("FakeQuantize", "MatMul", "Convert", "Multiply")}
    report["int8_ir_ops"] = ops
    print(ops)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"report": report, "threads": args.threads, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
