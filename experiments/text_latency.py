"""The static tier's text -> label speed against model2vec's own pipeline, on the same texts in one process.

A user who wants a static model for short texts would otherwise reach for model2vec: train a
``StaticModelForClassification`` on the same labels and serve it with ``StaticModelPipeline.predict``.
This script times what each serves for one text (the bench's text-latency texts, at batch 1):

- ``static/onnx-fp32`` and ``static/onnx-int8-dynamic``: the run's static student, ``Runtime.predict``
  (its tokenizer, the ONNX graph on ONNX Runtime, the argmax) -- the bench's text-latency call;
- ``model2vec/onnx-fp32``: the run's model2vec baseline as exported, through the same ``Runtime.predict``;
- ``model2vec library``: that baseline trained again with model2vec's own classifier and the run's recipe
  (same seed, epochs, dims; its test macro-F1 is printed beside the run's to show it is the same model),
  served by ``StaticModelPipeline.predict([text])``, model2vec's own inference path.

Each candidate is timed against the static student's FP32 graph in ABBA blocks in one process
(``edgedistill.paired``): the ratio is the candidate's time / the static student's (> 1: the static
student is faster), median over blocks with a bootstrap 95% interval. One thread, as the bench's
single-thread rows. The run's artifacts must exist (``edgedistill run``).

    python experiments/text_latency.py runs/quickstart
        -> experiments/text-latency/quickstart.json, quickstart.md
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

OUT = Path(__file__).with_name("text-latency")
CANDIDATES = ("static/onnx-int8-dynamic", "model2vec/onnx-fp32", "model2vec library")
REFERENCE = "static/onnx-fp32"


def library_pipeline(recipe, data):
    """The run's model2vec baseline trained again by model2vec itself, as its users would, and its pipeline."""
    from distill.baselines import fit_model2vec

    return fit_model2vec(recipe, data).to_pipeline(), list(data.label_names)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a run folder with the static student and the model2vec baseline exported")
    p.add_argument("--blocks", type=int, default=60)
    p.add_argument("--calls", type=int, default=20)
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import numpy as np

    from bench.config import load_bench_config
    from bench.inputs import bench_inputs
    from distill.data import load_dataset
    from edgedistill import layout
    from edgedistill.contention import Sampler
    from edgedistill.io import atomic_write_json, atomic_write_text
    from edgedistill.metrics import classification_metrics
    from edgedistill.paired import time_paired
    from edgedistill.predictor import load_predictor
    from edgedistill.provenance import footer, provenance
    from edgedistill.recipe import load_run_recipe

    recipe = load_run_recipe(args.run)
    data = load_dataset(recipe.data)
    inputs = bench_inputs(data, load_bench_config(recipe.bench))
    texts = inputs["natural_texts"]
    serving = {}
    for name in (REFERENCE, "static/onnx-int8-dynamic", "model2vec/onnx-fp32"):
        model, variant = name.split("/")
        folder = layout.artifact_dir(args.run, model, variant)
        if not folder.is_dir():
            print(f"{folder} is missing: export the run first (edgedistill run {args.run}/recipe.yaml)",
                  file=sys.stderr)
            return 2
        rt = load_predictor(folder, threads=1)
        serving[name] = rt.predict
    pipeline, names = library_pipeline(recipe, data)
    probs = pipeline.predict_proba(list(data.test.texts))
    order = [list(pipeline.classes_).index(n) for n in names]
    library_f1 = classification_metrics(np.asarray(data.test.labels), probs[:, order], names)["macro_f1"]
    serving["model2vec library"] = lambda batch: pipeline.predict(batch, use_multiprocessing=False)

    def call(name):
        fn, cycle = serving[name], itertools.cycle([[t] for t in texts])
        return lambda: fn(next(cycle))

    rows = []
    for name in CANDIDATES:
        sampler = Sampler()
        r = time_paired(call(name), call(REFERENCE), blocks=args.blocks, calls=args.calls)
        rows.append({"candidate": name, "reference": REFERENCE, "ratio": r.median, "low": r.low, "high": r.high,
                     "candidate_p50_ms": r.a_p50_ms, "reference_p50_ms": r.b_p50_ms,
                     "contention": sampler.stop()})
        print(f"{name}: {r.a_p50_ms:.4f} ms vs {REFERENCE} {r.b_p50_ms:.4f} ms: the static student is "
              f"{r.median:.2f}x [{r.low:.2f}, {r.high:.2f}] as fast", flush=True)
    metrics = recipe.results_path / "metrics.json"
    import json

    recorded = (json.loads(metrics.read_text()).get("baselines") or {}).get("model2vec", {}).get("test", {})
    doc = {"run": recipe.run.name, "texts": len(texts), "threads": 1, "blocks": args.blocks, "calls": args.calls,
           "library_test_macro_f1": library_f1, "run_model2vec_test_macro_f1": recorded.get("macro_f1"),
           "pairs": rows, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "provenance": provenance()}
    OUT.mkdir(exist_ok=True)
    atomic_write_json(OUT / f"{recipe.run.name}.json", doc)
    lines = [f"# Text -> label at batch 1: the static student against model2vec's own pipeline ({recipe.run.name})", "",
             f"{len(texts)} test texts (the bench's text-latency texts), one thread, one process; ABBA blocks "
             f"({args.blocks} x {args.calls} calls per side). Ratio = the candidate's p50 / the static student's "
             "FP32 graph's (> 1: the static student is faster), median over blocks [bootstrap 95% interval]. "
             f"The model2vec library pipeline scores test macro-F1 {library_f1:.4f} (the run's model2vec baseline: "
             f"{recorded.get('macro_f1', float('nan')):.4f}).", "",
             "| candidate | its p50 ms | static FP32 p50 ms | static student faster by [95%] | others' CPU % |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['candidate']} | {r['candidate_p50_ms']:.4f} | {r['reference_p50_ms']:.4f} | {r['ratio']:.2f}x "
              f"[{r['low']:.2f}, {r['high']:.2f}] | {(r['contention'] or {}).get('other_cpu_pct', float('nan')):.1f} |"
              for r in rows]
    lines += ["", footer(doc["provenance"], ["python", "experiments/text_latency.py", *(argv or sys.argv[1:])],
                         doc["measured_at"])]
    atomic_write_text(OUT / f"{recipe.run.name}.md", "\n".join(lines) + "\n")
    print(f"wrote {OUT / (recipe.run.name + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
