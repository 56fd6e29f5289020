"""INT8 graph variants against a reference graph, paired ABBA in one process (bench/scenarios/paired.py).

    PYTHONPATH=$PWD python experiments/speed-probes/int8_variants.py CHECKPOINT WORKDIR VARIANTS
    env: THREADS (2), BLOCKS (20), CALLS (10), REF (fp32: the reference graph's folder in WORKDIR),
         PROFILE=1 (ORT profile: share of kernel time by operator)

A variant name is format_activation_ops_weights_source[_skipgelu]: qdq|qop, s8|u8, mm (MatMul) | mmg
(MatMul + Gather), pc (per-channel) | pt (per-tensor), plain|opt (the offline-fused graph); also
fp32, fp32opt, dyn_plain, dyn_opt (quantize_dynamic). Timing inputs: 32 hate-speech tweets at their
own length, cycled; the same inputs for both sides of every block. Prints one JSON line per variant
(speed-up over the reference with its bootstrap 95% interval, p50s, kernels ORT runs, contention).
"""

import collections
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgedistill.checkpoint import load_checkpoint
from edgedistill.contention import Sampler
from edgedistill.paired import time_paired
from edgedistill.runtime import TextEncoder
from export import convert

# The shared data beside the repository (../shared), wherever the checkout lives.
DATA = Path(__file__).resolve().parents[3] / "shared/data/hate_speech_offensive/labeled_data.csv"

ck = Path(sys.argv[1])
work = Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
variants = sys.argv[3].split(",")
threads = int(os.environ.get("THREADS", "2"))

fp32 = work / "fp32" / "model.onnx"
if not fp32.is_file():
    model, _ = load_checkpoint(ck)
    convert.export_onnx(model, fp32.parent)
names = tuple(i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input)
enc = TextEncoder(ck, 64, names)
texts = [
    line.strip()
    for line in open(DATA, errors="ignore").readlines()[1:400]
]
texts = [t.split(",", 6)[-1][:300] for t in texts]
feeds = [enc([t]) for t in texts[:100]]
timing_texts = [enc([t]) for t in texts[200:232]]
print("mean tokens", np.mean([f["input_ids"].shape[1] for f in timing_texts]))


def build(name):
    out = work / name / "model.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt, act, ops, pc, src = name.split("_")[:5]
    skip = name.endswith("_skipgelu")
    srcpath = fp32 if src == "plain" else work / "opt.onnx"
    if src == "opt" and not srcpath.is_file():
        import types

        cfg = types.SimpleNamespace(**json.loads((ck / "config.json").read_text()))
        convert.optimize_onnx(fp32, srcpath, cfg)
    pre = work / f"pre-{src}.onnx"
    if not pre.is_file():
        try:
            quant_pre_process(str(srcpath), str(pre), skip_symbolic_shape=(src == "plain"))
        except Exception as e:
            print("pre failed", e)
            shutil.copy(srcpath, pre)
    excluded = convert.gelu_fed_matmuls(pre) if skip else []
    optypes = {"mm": ["MatMul"], "mmg": ["MatMul", "Gather"], "all": None}[ops]
    kw = dict(op_types_to_quantize=optypes) if optypes else {}
    quantize_static(
        str(pre),
        str(out),
        convert._reader(feeds),
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        per_channel=(pc == "pc"),
        activation_type=QuantType.QUInt8 if act == "u8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"ActivationSymmetric": act == "s8", "WeightSymmetric": True, "MatMulConstBOnly": True},
        **kw,
    )
    return out


def session(path, optimized_out=None, profile=False):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.enable_mem_pattern = False
    o.log_severity_level = 3
    if optimized_out:
        o.optimized_model_filepath = str(optimized_out)
    if profile:
        o.enable_profiling = True
        o.profile_file_prefix = str(Path(path).parent / "prof")
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def call(s):
    import itertools

    cyc = itertools.cycle(timing_texts)
    inames = [i.name for i in s.get_inputs()]
    return lambda: s.run(None, {k: v for k, v in next(cyc).items() if k in inames})


ref = session(work / os.environ.get("REF", "fp32") / "model.onnx", work / "fp32" / "session-opt.onnx")
print("reference", os.environ.get("REF", "fp32"), "threads", threads)
for v in variants:
    if v.startswith("dyn_"):
        import types

        path = work / v / "model.onnx"
        path.parent.mkdir(exist_ok=True, parents=True)
        src = fp32
        if v == "dyn_opt":
            src = work / "fp32opt" / "model.onnx"
            if not src.is_file():
                src.parent.mkdir(exist_ok=True, parents=True)
                convert.optimize_onnx(fp32, src, types.SimpleNamespace(**json.loads((ck / "config.json").read_text())))
        if not path.is_file():
            convert.quantize_dynamic_onnx(src, path)
    elif v == "fp32opt":
        import types

        path = work / "fp32opt" / "model.onnx"
        path.parent.mkdir(exist_ok=True, parents=True)
        if not path.is_file():
            print(
                convert.optimize_onnx(fp32, path, types.SimpleNamespace(**json.loads((ck / "config.json").read_text())))
            )
    else:
        path = fp32 if v == "fp32" else build(v)
    s = session(path, path.parent / "session-opt.onnx")
    ops = collections.Counter(
        n.op_type for n in onnx.load(str(path.parent / "session-opt.onnx"), load_external_data=False).graph.node
    )
    # agreement vs fp32
    d = max(
        float(
            np.abs(
                s.run(None, {k: v2 for k, v2 in f.items() if k in [i.name for i in s.get_inputs()]})[0]
                - ref.run(None, f)[0]
            ).max()
        )
        for f in timing_texts[:16]
    )
    if os.environ.get("PROFILE"):
        ps = session(path, profile=True)
        f = call(ps)
        for _ in range(30):
            f()
        prof = json.load(open(ps.end_profiling()))
        agg = collections.Counter()
        for e in prof:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                agg[e["args"]["op_name"]] += e["dur"]
        tot = sum(agg.values())
        print(
            v,
            "profile (share of kernel time):",
            {k: round(100 * t / tot, 1) for k, t in agg.most_common(8)},
            flush=True,
        )
    smp = Sampler()
    r = time_paired(
        call(ref), call(s), blocks=int(os.environ.get("BLOCKS", 20)), calls=int(os.environ.get("CALLS", 10))
    )
    c = smp.stop()
    size = sum(p.stat().st_size for p in path.parent.glob("model.onnx*"))
    print(
        json.dumps(
            {
                "variant": v,
                "speedup_vs_fp32": round(r.median, 3),
                "ci": [round(r.low, 3), round(r.high, 3)],
                "fp32_ms": round(r.a_p50_ms, 3),
                "ms": round(r.b_p50_ms, 3),
                "max_dlogit": round(d, 4),
                "size_mb": round(size / 1e6, 1),
                "session_ops": dict(ops.most_common(12)),
                "other_cpu_pct": c["other_cpu_pct"],
                "steal_pct": c["steal_pct"],
                "load1": c["load1"],
            }
        ),
        flush=True,
    )
