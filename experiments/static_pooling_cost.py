"""What a static student's pooling and head width cost at text -> label, against the shipped mean pooling.

The static student's speed goal is relative (its text -> label p50 at batch 1 at least 10x the fastest
transformer student's), and the shipped student clears it with little room (the bench's text-latency rows). A
recipe that pools otherwise or widens the head must keep that room, so this probe times each pooling
(``edgedistill.recipe.STATIC_POOLINGS``) at the recipe's two head widths, and stacks of two and three shipped-form
students (``methods.static_ensemble``), against the shipped form (mean, head of 256), in one process, paired in
ABBA blocks (``edgedistill.paired``), at the bench's thread count:

- each student is built on the run's own distilled table (``distill.static.build_static_student``: its
  vocabulary, its tokenizer, its width), its zero-started weights (the convolution's map, the attention query)
  set off zero, and exported by the export stage's own ``export.convert.static_onnx``;
- a call is what a user's one text costs and what the bench's text-latency rows time: ``Runtime.predict`` of the
  project's ONNX Runtime backend (``edgedistill.runtime.OrtRuntime``: its text encoder, the graph, the label);
- the texts are the bench's text-latency texts of the run's data.

Accuracy is not this probe's business (``static_recipe.py``); the weights are untrained, and a dense graph costs
the same whatever its values.

    python experiments/static_pooling_cost.py runs/quickstart
        -> experiments/speed-probes/static-pooling-cost-quickstart.json, .md
    python experiments/static_pooling_cost.py runs/quickstart --forms stack
        -> experiments/speed-probes/static-stack-cost-quickstart.json, .md
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "speed-probes"
REFERENCE = ("mean", 256, 1)
HIDDEN = (256, 1024)
# Stacks of shipped-form students (``StaticClassifier.stack``: one graph, the members' tables side by side, a
# block-diagonal head), the form ``static_ensemble`` exports.
MEMBERS = (2, 3)


def committed_static_multiple(results: Path, threads: int) -> tuple[float, str] | None:
    """The committed bench's text -> label multiple of the static FP32 graph over the fastest transformer
    student (batch 1, ``threads`` threads), and the rows it was read from; None where the bench has no such rows."""
    path = results / "bench.csv"
    if not path.is_file():
        return None
    from edgedistill.methods import is_static, students

    transformers = {n for n in students() if not is_static(n)}
    rows = [r for r in csv.DictReader(path.open()) if r["scenario"] == "text-latency" and r["batch_size"] == "1"
            and r["device"] == "cpu" and r["latency_p50_ms"] and int(r["threads"]) == threads]
    static = [float(r["latency_p50_ms"]) for r in rows if r["model"] == "static" and r["variant"] == "onnx-fp32"]
    timed = [(float(r["latency_p50_ms"]), r["model"], r["variant"]) for r in rows if r["model"] in transformers]
    if not static or not timed:
        return None
    fastest = min(timed)
    return fastest[0] / static[0], f"{fastest[1]}/{fastest[2]} {fastest[0]:.3f} ms, static/onnx-fp32 " \
                                   f"{static[0]:.3f} ms, {threads} threads"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="a run folder whose teacher is trained (models/teacher)")
    p.add_argument("--blocks", type=int, default=40)
    # A block must outlast the wake-up that follows time_paired's settle pause: a 0.1 ms call's block of 20 calls
    # (2 ms) after 20 ms idle ran 17-19% slower than the same calls back to back, which pulls every ratio toward 1
    # (speed-probes/settle_wakeup.txt); 400 calls make a block of 40-120 ms.
    p.add_argument("--calls", type=int, default=400)
    p.add_argument("--forms", choices=("pooling", "stack"), default="pooling",
                   help="pooling: every pooling at both head widths; stack: stacks of MEMBERS shipped-form students "
                        "(each set written to its own record)")
    p.add_argument("--threads", type=int, default=2,
                   help="ONNX Runtime's threads (default 2: the bench's text-latency rows on a 2-core machine)")
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import torch

    from bench.config import load_bench_config
    from bench.inputs import bench_inputs
    from distill.data import load_dataset
    from distill.static import StaticClassifier, build_static_student
    from edgedistill import layout
    from edgedistill.contention import Sampler
    from edgedistill.io import atomic_write_json, atomic_write_text
    from edgedistill.paired import time_paired
    from edgedistill.provenance import footer, provenance
    from edgedistill.recipe import STATIC_POOLINGS, load_run_recipe
    from edgedistill.runtime import OrtRuntime
    from export.convert import ONNX_FILE, static_onnx

    recipe = load_run_recipe(args.run)
    teacher = layout.model_dir(args.run, "teacher")
    if not teacher.is_dir():
        print(f"{teacher} is missing: train the run's teacher first", file=sys.stderr)
        return 2
    data = load_dataset(recipe.data)
    texts = bench_inputs(data, load_bench_config(recipe.bench))["natural_texts"]
    static = recipe.methods["static"]
    torch.manual_seed(0)
    base, tokenizer = build_static_student(teacher, list(data.label_names), static.static_dims, 256, progress=False)
    table = base.embeddings.weight.detach().clone()

    labels = list(data.label_names)
    serving = {}
    with tempfile.TemporaryDirectory() as tmp:
        def student(pooling, hidden):
            model = StaticClassifier(table.shape[0], table.shape[1], labels, hidden,
                                     base.config.unk_token_id, pooling=pooling).eval()
            with torch.no_grad():
                model.embeddings.weight.copy_(table)
                if model.conv_out is not None:
                    torch.nn.init.normal_(model.conv_out.weight, std=0.05)
                if model.attention_query is not None:
                    torch.nn.init.normal_(model.attention_query, std=0.05)
            return model

        forms = ([(pooling, hidden, 1) for pooling, hidden in itertools.product(STATIC_POOLINGS, HIDDEN)]
                 if args.forms == "pooling" else [REFERENCE] + [(REFERENCE[0], REFERENCE[1], k) for k in MEMBERS])
        for pooling, hidden, members in forms:
            model = (student(pooling, hidden) if members == 1
                     else StaticClassifier.stack([student(pooling, hidden) for _ in range(members)]))
            folder = Path(tmp) / f"{pooling}-{hidden}-{members}"
            static_onnx(model, folder / ONNX_FILE)
            tokenizer.save_pretrained(folder)
            meta = {"format": "onnx", "precision": "fp32", "model_file": ONNX_FILE, "label_names": labels,
                    "max_length": recipe.data.max_length}
            serving[(pooling, hidden, members)] = OrtRuntime.open(folder, meta, threads=args.threads).predict

        def call(key):
            fn, cycle = serving[key], itertools.cycle(texts)
            return lambda: fn([next(cycle)])

        rows = []
        for key in serving:
            if key == REFERENCE:
                continue
            sampler = Sampler()
            r = time_paired(call(key), call(REFERENCE), blocks=args.blocks, calls=args.calls)
            # time_paired's ratio is its first side's time over its second's: the candidate's cost
            rows.append({"pooling": key[0], "hidden": key[1], "members": key[2], "cost_vs_mean_256": r.median,
                         "low": r.low, "high": r.high, "p50_ms": r.a_p50_ms, "mean_256_p50_ms": r.b_p50_ms,
                         "contention": sampler.stop()})
            print(f"{key[0]}, head {key[1]}, {key[2]} member(s): {r.a_p50_ms:.4f} ms, "
                  f"{r.median:.2f}x the shipped form's [{r.low:.2f}, {r.high:.2f}]", flush=True)

    committed = committed_static_multiple(recipe.results_path, args.threads)
    doc = {"run": recipe.run.name, "texts": len(texts), "threads": args.threads, "blocks": args.blocks,
           "calls": args.calls,
           "reference": {"pooling": REFERENCE[0], "hidden": REFERENCE[1], "members": REFERENCE[2]}, "rows": rows,
           "committed_static_multiple": None if committed is None else committed[0],
           "committed_from": None if committed is None else committed[1],
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "provenance": provenance()}
    OUT.mkdir(exist_ok=True)
    stem = f"static-{args.forms}-cost-{recipe.run.name}"
    atomic_write_json(OUT / f"{stem}.json", doc)
    lines = [f"# What a static student's pooling, head and stacking cost at text -> label ({recipe.run.name})", "",
             f"{len(texts)} texts (the bench's text-latency texts), batch 1, {args.threads} ONNX Runtime thread(s), "
             "one process; each "
             f"candidate against the shipped form (mean pooling, head of 256) in ABBA blocks ({args.blocks} x "
             f"{args.calls} calls per side). A call: `Runtime.predict` on the project's ONNX Runtime backend (text "
             "encoder, graph, label), as the bench's text-latency rows. Cost = the candidate's time / the shipped "
             "form's, median over blocks [bootstrap 95%].", ""]
    if committed is not None:
        lines += [f"The committed bench ({recipe.results_path}/bench.csv) has the static FP32 graph at "
                  f"{committed[0]:.1f}x the fastest transformer student ({committed[1]}); a form that costs c times "
                  f"the shipped one keeps about {committed[0]:.1f} / c of it (the goal: 10x).", ""]
    lines += ["| pooling | head | members | p50 ms | shipped form's p50 ms | cost vs shipped [95%] | keeps (of the "
              "committed multiple) | others' CPU % |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        keeps = "-" if committed is None else f"{committed[0] / r['cost_vs_mean_256']:.1f}x"
        lines.append(f"| {r['pooling']} | {r['hidden']} | {r['members']} | {r['p50_ms']:.4f} | "
                     f"{r['mean_256_p50_ms']:.4f} | "
                     f"{r['cost_vs_mean_256']:.2f}x [{r['low']:.2f}, {r['high']:.2f}] | {keeps} | "
                     f"{(r['contention'] or {}).get('other_cpu_pct', float('nan')):.1f} |")
    lines += ["", footer(doc["provenance"], ["python", "experiments/static_pooling_cost.py", *(argv or sys.argv[1:])],
                         doc["measured_at"])]
    atomic_write_text(OUT / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"wrote {OUT / (stem + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
