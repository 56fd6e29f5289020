"""Why the pooling-cost probe's 20-call blocks ran a 0.1 ms call 17-19% slow: the settle pause, not the neighbour.

    PYTHONPATH=$PWD python experiments/speed-probes/settle_wakeup.py runs/quickstart \
        > experiments/speed-probes/settle_wakeup.txt

Builds the shipped static form (mean pooling, head of 256) twice and the convolution with the head of 1,024 on the
run's distilled table (as ``experiments/static_pooling_cost.py``), then, three rounds, each case in a fresh
process (``--case``): the shipped form alone, back to back and in 20-call blocks after ``time_paired``'s settle
pause; a twin pair (two sessions of the same graph) in 20-call blocks with and without the pause and in 400-call
blocks; the convolution alone and against the shipped form in 20- and 400-call blocks. Every call is
``OrtRuntime.predict`` on one of the bench's text-latency texts, 2 threads. Prints one JSON line per case.
"""
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMS = {"mean-256": ("mean", 256), "twin": ("mean", 256), "conv-1024": ("conv", 1024)}
CASES = ["alone:mean-256", "blocks:mean-256", "pair:twin:20:0.02", "pair:twin:20:0", "pair:twin:400:0.02",
         "alone:conv-1024", "pair:conv-1024:20:0.02", "pair:conv-1024:400:0.02"]


INPUTS = "inputs.json"    # the texts and the artifacts' metadata, written once by build, read by every case


def build(run: Path, folder: Path) -> None:
    import torch

    from bench.config import load_bench_config
    from bench.inputs import bench_inputs
    from distill.data import load_dataset
    from distill.static import StaticClassifier, build_static_student
    from edgedistill import layout
    from edgedistill.recipe import load_run_recipe
    from export.convert import ONNX_FILE, static_onnx

    recipe = load_run_recipe(run)
    data = load_dataset(recipe.data)
    labels = list(data.label_names)
    meta = {"format": "onnx", "precision": "fp32", "model_file": ONNX_FILE, "label_names": labels,
            "max_length": recipe.data.max_length}
    texts = bench_inputs(data, load_bench_config(recipe.bench))["natural_texts"]
    (folder / INPUTS).write_text(json.dumps({"texts": texts, "meta": meta}))
    torch.manual_seed(0)
    base, tokenizer = build_static_student(layout.model_dir(run, "teacher"), labels,
                                           recipe.methods["static"].static_dims, 256, progress=False)
    for name, (pooling, hidden) in FORMS.items():
        model = StaticClassifier(base.embeddings.weight.shape[0], base.embeddings.weight.shape[1], labels, hidden,
                                 base.config.unk_token_id, pooling=pooling).eval()
        with torch.no_grad():
            model.embeddings.weight.copy_(base.embeddings.weight)
            if model.conv_out is not None:
                torch.nn.init.normal_(model.conv_out.weight, std=0.05)
        static_onnx(model, folder / name / ONNX_FILE)
        tokenizer.save_pretrained(folder / name)


def case(folder: Path, spec: str) -> dict:
    from edgedistill.paired import time_paired
    from edgedistill.runtime import OrtRuntime

    inputs = json.loads((folder / INPUTS).read_text())
    texts, meta = inputs["texts"], inputs["meta"]

    def call(name):
        predict, cycle = OrtRuntime.open(folder / name, meta, threads=2).predict, itertools.cycle(texts)
        return lambda: predict([next(cycle)])

    def p50_ms(fn, n):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    kind, name, *rest = spec.split(":")
    if kind == "alone":
        fn = call(name)
        p50_ms(fn, 500)
        return {"case": spec, "p50_ms": round(statistics.median(p50_ms(fn, 400) for _ in range(10)), 4)}
    if kind == "blocks":      # the paired timing's rhythm on one session: 20 ms idle, then 20 calls
        fn = call(name)
        p50_ms(fn, 500)
        blocks = []
        for _ in range(80):
            time.sleep(0.02)
            blocks.append(p50_ms(fn, 20))
        return {"case": spec, "p50_ms": round(statistics.median(blocks), 4)}
    calls, settle = int(rest[0]), float(rest[1])
    r = time_paired(call(name), call("mean-256"), blocks=40, calls=calls, settle_s=settle)
    return {"case": spec, "ratio": [round(r.median, 3), round(r.low, 3), round(r.high, 3)],
            "other_p50_ms": round(r.a_p50_ms, 4), "shipped_p50_ms": round(r.b_p50_ms, 4)}


def main() -> int:
    run = Path(sys.argv[1])
    if len(sys.argv) == 4:
        print(json.dumps(case(Path(sys.argv[2]), sys.argv[3])), flush=True)
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory() as tmp:
        build(run, Path(tmp))
        for rnd in range(3):
            for spec in CASES:
                out = subprocess.run([sys.executable, __file__, str(run), tmp, spec], capture_output=True, text=True,
                                     check=True).stdout.strip().splitlines()[-1]
                print(f"round {rnd + 1} {out}", flush=True)
    from edgedistill.provenance import footer, provenance
    print(footer(provenance(), ["python", "experiments/speed-probes/settle_wakeup.py", str(run)],
                 time.strftime("%Y-%m-%dT%H:%M:%S%z")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
