"""Is the separate-process latency of an ONNX Runtime artifact bimodal, and does pinning fix it?

Bench run 2 (results/hate-speech/bench.json) timed four of six INT8 artifacts ~50% slower than run 1
in both timing passes of their job, while the memory-bandwidth probe and the paired blocks (a fresh
process too) saw no change. A per-process state is the suspect: where the scheduler puts ONNX Runtime's
intra-op worker relative to the calling thread on a 2-vCPU machine.

Each round starts one fresh process per variant (order rotated), times batch-1 calls on the same
natural-length test texts and prints its p50:
  default  intra_op_num_threads=2, as the bench does
  pinned   the calling thread on CPU 0, the worker on CPU 1 (session.intra_op_thread_affinities)
  nospin   intra-op spinning off (session.intra_op.allow_spinning=0)

    python experiments/speed-probes/affinity_probe.py runs/hate-speech/artifacts/tiny/onnx-int8-dynamic
"""
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("default", "pinned", "nospin")


def child(folder: str, variant: str) -> None:
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    if variant == "pinned":
        os.sched_setaffinity(0, {0})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 2, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = False
    if variant == "pinned":
        opts.add_session_config_entry("session.intra_op_thread_affinities", "2")   # 1-based: logical CPU 1
    if variant == "nospin":
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"), sess_options=opts,
                                providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tok.enable_truncation(64)
    import csv
    with open("../shared/data/hate_speech_offensive/labeled_data.csv") as f:
        texts = [r["tweet"] for _, r in zip(range(200), csv.DictReader(f))]
    names = [i.name for i in sess.get_inputs()]
    feeds = []
    for t in texts:
        e = tok.encode(t)
        full = {"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": e.type_ids}
        feeds.append({k: np.asarray([full[k]], dtype=np.int64) for k in names})
    for f in feeds[:50]:
        sess.run(None, f)
    times = []
    for _ in range(3):
        for f in feeds:
            t0 = time.perf_counter()
            sess.run(None, f)
            times.append((time.perf_counter() - t0) * 1e3)
    print(json.dumps({"variant": variant, "p50_ms": statistics.median(times)}))


def main() -> None:
    folder, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8
    got = {v: [] for v in VARIANTS}
    for i in range(rounds):
        order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
        for v in order:
            out = subprocess.run([sys.executable, __file__, "--child", folder, v], capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
            got[v].append(json.loads(out)["p50_ms"])
            time.sleep(0.5)
    for v, xs in got.items():
        print(f"{v:8s} p50 per process (ms): {' '.join(f'{x:.3f}' for x in xs)}  "
              f"min {min(xs):.3f} max {max(xs):.3f} spread {100 * (max(xs) / min(xs) - 1):.0f}%")


if __name__ == "__main__":
    if sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
