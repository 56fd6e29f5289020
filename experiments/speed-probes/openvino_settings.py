"""OpenVINO compile settings against the runtime's own (LATENCY hint), and OpenVINO against ONNX Runtime.

PYTHONPATH=$PWD THREADS=2 python experiments/speed-probes/openvino_settings.py runs/<run>/artifacts/<model>
"""

import itertools
import os
import sys
from pathlib import Path

import openvino as ov

from edgedistill.contention import Sampler
from edgedistill.paired import time_paired
from edgedistill.runtime import OpenVinoRuntime, OrtRuntime

# The shared data beside the repository (../shared), wherever the checkout lives.
DATA = Path(__file__).resolve().parents[3] / "shared/data/hate_speech_offensive/labeled_data.csv"

art = sys.argv[1]
threads = int(os.environ.get("THREADS", "2"))
core = ov.Core()
ovrt = OpenVinoRuntime.load(f"{art}/openvino-fp32", threads=threads)
props = {
    k: str(ovrt.compiled.get_property(k))
    for k in (
        "PERFORMANCE_HINT",
        "NUM_STREAMS",
        "INFERENCE_NUM_THREADS",
        "INFERENCE_PRECISION_HINT",
        "ENABLE_CPU_PINNING",
        "ENABLE_HYPER_THREADING",
        "SCHEDULING_CORE_TYPE",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE",
    )
}
print("compiled properties (current runtime):", props)
texts = [
    line.strip().split(",", 6)[-1][:300]
    for line in open(DATA, errors="ignore").readlines()[200:232]
]
batches = [ovrt.encode([t]) for t in texts]


def call(rt):
    c = itertools.cycle(batches)
    return lambda: rt.forward(next(c))


def ov_with(cfg, model="openvino-fp32"):
    m = core.read_model(f"{art}/{model}/openvino_model.xml")
    comp = core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, **cfg})
    req = comp.create_infer_request()
    names = [p.get_any_name() for p in comp.inputs]
    c = itertools.cycle(batches)

    def f():
        b = next(c)
        req.infer({k: b[k] for k in names})
        return req.get_output_tensor(0).data

    return f, {
        k: str(comp.get_property(k))
        for k in ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "ENABLE_CPU_PINNING")
    }


ort_rt = OrtRuntime.load(f"{art}/onnx-fp32", threads=threads)
base, _ = ov_with({"PERFORMANCE_HINT": "LATENCY"})
for name, cfg in [
    ("no hint (defaults)", {}),
    ("LATENCY, no pinning", {"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}),
    ("THROUGHPUT", {"PERFORMANCE_HINT": "THROUGHPUT"}),
]:
    f, p = ov_with(cfg)
    s = Sampler()
    r = time_paired(base, f, blocks=20, calls=10)
    c = s.stop()
    print(
        f"OV[{name}] {p}: speed-up over OV[LATENCY] {r.median:.2f} [{r.low:.2f}, {r.high:.2f}]"
        f" ({r.a_p50_ms:.2f} vs {r.b_p50_ms:.2f} ms), others {c['other_cpu_pct']}%"
    )
nopin, _ = ov_with({"PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False})
s = Sampler()
r = time_paired(call(ort_rt), nopin, blocks=20, calls=10)
c = s.stop()
print(
    f"OV fp32 [LATENCY, no pinning] vs ORT fp32: speed-up {r.median:.2f} [{r.low:.2f}, {r.high:.2f}]"
    f" (ORT {r.a_p50_ms:.2f} ms, OV {r.b_p50_ms:.2f} ms) others {c['other_cpu_pct']}%"
)
s = Sampler()
r = time_paired(call(ort_rt), base, blocks=20, calls=10)
c = s.stop()
print(
    f"OV fp32 [LATENCY] vs ORT fp32: speed-up {r.median:.2f} [{r.low:.2f}, {r.high:.2f}]"
    f" (ORT {r.a_p50_ms:.2f} ms, OV {r.b_p50_ms:.2f} ms) others {c['other_cpu_pct']}%"
)
f8, _ = ov_with({"PERFORMANCE_HINT": "LATENCY"}, "openvino-int8")
o8 = OrtRuntime.load(f"{art}/onnx-int8-dynamic", threads=threads)
s = Sampler()
r = time_paired(call(o8), f8, blocks=20, calls=10)
c = s.stop()
print(
    f"OV int8 vs ORT int8-dynamic: speed-up {r.median:.2f} [{r.low:.2f}, {r.high:.2f}]"
    f" (ORT {r.a_p50_ms:.2f} ms, OV {r.b_p50_ms:.2f} ms) others {c['other_cpu_pct']}%"
)
