"""Shapes as they arrive: varying natural lengths against one fixed input, OpenVINO and ONNX Runtime.

PYTHONPATH=$PWD THREADS=2 python results/hate-speech/speed-probes/openvino_shapes.py runs/<run>/artifacts/<model>
"""

import sys, itertools, openvino as ov, os
from bench.paired import time_paired
from bench.contention import Sampler
from edgedistill.runtime import OrtRuntime, OpenVinoRuntime

art = sys.argv[1]
threads = int(os.environ.get("THREADS", "2"))
texts = [
    l.strip().split(",", 6)[-1][:300]
    for l in open("/work/shared/data/hate_speech_offensive/labeled_data.csv", errors="ignore").readlines()[200:232]
]
for variant, ortv in (("openvino-int8", "onnx-int8-dynamic"), ("openvino-fp32", "onnx-fp32")):
    ovrt = OpenVinoRuntime.load(f"{art}/{variant}", threads=threads)
    ortrt = OrtRuntime.load(f"{art}/{ortv}", threads=threads)
    batches = [ovrt.encode([t]) for t in texts]
    fixed = batches[len(batches) // 2]
    cyc = itertools.cycle(batches)
    for name, a, b in (
        ("OV: varying shapes / one fixed shape", lambda: ovrt.forward(fixed), lambda: ovrt.forward(next(cyc))),
        ("ORT: varying shapes / one fixed shape", lambda: ortrt.forward(fixed), lambda: ortrt.forward(next(cyc))),
        ("fixed shape: OV speed-up over ORT", lambda: ortrt.forward(fixed), lambda: ovrt.forward(fixed)),
    ):
        s = Sampler()
        r = time_paired(a, b, blocks=20, calls=10)
        c = s.stop()
        print(
            f"{variant} threads {threads}: {name}: ratio {r.median:.2f} [{r.low:.2f}, {r.high:.2f}] ({r.a_p50_ms:.2f} / {r.b_p50_ms:.2f} ms) others {c['other_cpu_pct']}%"
        )
