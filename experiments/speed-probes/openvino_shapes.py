"""Shapes as they arrive: varying natural lengths against one fixed input, OpenVINO and ONNX Runtime.

PYTHONPATH=$PWD THREADS=2 python experiments/speed-probes/openvino_shapes.py runs/<run>/artifacts/<model>
"""

import itertools
import os
import sys
from pathlib import Path

from edgedistill.contention import Sampler
from edgedistill.paired import time_paired
from edgedistill.runtime import OpenVinoRuntime, OrtRuntime

# The shared data beside the repository (../shared), wherever the checkout lives.
DATA = Path(__file__).resolve().parents[3] / "shared/data/hate_speech_offensive/labeled_data.csv"

art = sys.argv[1]
threads = int(os.environ.get("THREADS", "2"))
texts = [
    line.strip().split(",", 6)[-1][:300]
    for line in open(DATA, errors="ignore").readlines()[200:232]
]
for variant, ortv in (("openvino-int8", "onnx-int8-dynamic"), ("openvino-fp32", "onnx-fp32")):
    ovrt = OpenVinoRuntime.load(f"{art}/{variant}", threads=threads)
    ortrt = OrtRuntime.load(f"{art}/{ortv}", threads=threads)
    batches = [ovrt.encode([t]) for t in texts]
    fixed = batches[len(batches) // 2]
    cyc = itertools.cycle(batches)
    # Default arguments bind this iteration's runtimes and inputs into each callable.
    for name, a, b in (
        ("OV: varying shapes / one fixed shape", lambda r=ovrt, x=fixed: r.forward(x),
         lambda r=ovrt, c=cyc: r.forward(next(c))),
        ("ORT: varying shapes / one fixed shape", lambda r=ortrt, x=fixed: r.forward(x),
         lambda r=ortrt, c=cyc: r.forward(next(c))),
        ("fixed shape: OV speed-up over ORT", lambda r=ortrt, x=fixed: r.forward(x),
         lambda r=ovrt, x=fixed: r.forward(x)),
    ):
        s = Sampler()
        r = time_paired(a, b, blocks=20, calls=10)
        c = s.stop()
        print(
            f"{variant} threads {threads}: {name}: ratio {r.median:.2f} [{r.low:.2f}, {r.high:.2f}]"
            f" ({r.a_p50_ms:.2f} / {r.b_p50_ms:.2f} ms) others {c['other_cpu_pct']}%"
        )
