"""Paired teacher PyTorch FP32 vs tiny ONNX Runtime INT8 in one process, twice, for the spinning probe.

    SPIN=1|0 SETTLE=0.02|0 PYTHONPATH=$PWD python experiments/speed-probes/paired_spinning.py

SPIN: ONNX Runtime's session.intra_op.allow_spinning; SETTLE: the untimed pause before each block
(bench/scenarios/paired.py's settle_s). Reads runs/hate-speech (not committed: train it with configs/hate-speech.yaml).
"""
import itertools
import os
from pathlib import Path

import onnxruntime as ort
import pandas as pd

from edgedistill.paired import time_paired
from edgedistill.runtime import RUNTIMES

SPIN, SETTLE = os.environ.get("SPIN", "1"), float(os.environ.get("SETTLE", "0.02"))
run = Path("runs/hate-speech")
base_options = ort.SessionOptions


class Options(base_options):
    def __init__(self):
        super().__init__()
        self.add_session_config_entry("session.intra_op.allow_spinning", SPIN)


ort.SessionOptions = Options
texts = pd.read_csv("../shared/data/hate_speech_offensive/labeled_data.csv")["tweet"].sample(64, random_state=0)
for attempt in (1, 2):
    pt = RUNTIMES["pytorch"].load(str(run / "models/teacher"), device="cpu", threads=2, precision="fp32")
    tiny = RUNTIMES["onnxruntime"].load(str(run / "artifacts/tiny/onnx-int8-dynamic"), device="cpu", threads=2)
    dyn = RUNTIMES["onnxruntime"].load(str(run / "artifacts/teacher/onnx-int8-dynamic"), device="cpu", threads=2)

    def target(rt):
        cycle, forward = itertools.cycle([rt.encode([t]) for t in texts]), rt.forward
        return lambda: forward(next(cycle))

    r1 = time_paired(target(pt), target(tiny), blocks=60, calls=10, settle_s=SETTLE)
    r2 = time_paired(target(dyn), target(tiny), blocks=60, calls=10, settle_s=SETTLE)
    print(f"spin={SPIN} settle={SETTLE} #{attempt}: tiny vs teacher PyTorch {r1.median:.2f}x [{r1.low:.2f}, "
          f"{r1.high:.2f}] (teacher {r1.a_p50_ms:.2f} ms, tiny {r1.b_p50_ms:.3f} ms); vs teacher ORT INT8 "
          f"{r2.median:.2f}x [{r2.low:.2f}, {r2.high:.2f}]", flush=True)
