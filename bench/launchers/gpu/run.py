"""Benchmark a GPU pack (bench/bundles/gpu_pack.py) on a CUDA machine; writes bench.json, same schema.

    edgedistill gpu-bench --bundle <bundle> --out $OUT/bench.json               (on the GPU box)
    edgedistill gpu-bench --pack runs/<run>/gpu_pack --out $OUT/bench.json      (a bare pack)
    edgedistill gpu-bench --pack ... --out /tmp/bench.json --smoke               (CPU, seconds)

PyTorch eager at FP32 / FP16 / BF16, batch 1 (natural length and 16 / 64 / 128 tokens) and a
throughput batch (default 256); at batch 1 also replayed as CUDA graphs (batch 1 is bound by
kernel launches, which a graph replays in one go), optionally ``torch.compile`` (``--compile``;
slow to compile, fixed lengths and the bucketed pass). Throughput also as a full pass over the
test split in length-bucketed batches (``seq_len: bucketed``, ``bench.scenarios.throughput``): texts sorted by
length, batches of up to the throughput batch padded to a multiple of ``--bucket-multiple``
tokens, texts per second over the pass. Accuracy on the carried test split. Timing by
pytest-benchmark (``bench.scenarios.latency``), each call ending with the logits copied to the host
(which waits for the GPU), as the CPU runtimes return them.

Each model x precision runs in a child process of its own (peak RSS per artifact, a crashed
CUDA graph capture cannot take other measurements down); the parent keeps a deadline
(``--deadline-s``) so the whole script ends inside one 10-minute device call and always writes
its file, with what did not fit listed under the machine's ``failed``.

The timed cases come from ``bench.scenarios.latency.build_cases`` and the rows from
``bench.schema.rows_from_timings``, as in the CPU bench. Needs torch, transformers (4.x or 5.x),
safetensors, numpy, pytest-benchmark, psutil; imports from this repository only
``bench.schema``/``derive``/``timing``/``memory``/``bundle`` and
``edgedistill.provenance``/``metrics``/``io``, none of which import transformers or scikit-learn.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

PRECISIONS = ("fp32", "fp16", "bf16")
SEQ_LENS = ("natural", "16", "64", "128")
BUCKETED = "bucketed"   # the seq_len of a full pass over the test split in length-bucketed batches
SCRIPT = "bench/launchers/gpu/run.py"   # what its machine blocks name as their bench_config.script


def settings_for(args) -> dict:
    if args.smoke:
        return {"device": "cpu", "precisions": ["fp32"], "seq_lens": ["natural", "16"], "batch_size": 4,
                "throughput_batches": 2, "natural_texts": 8, "max_time": 0.02, "min_rounds": 3,
                "throughput_min_rounds": 3, "warmup_iterations": 2, "graphs": False, "compile": [],
                "eval_batch_size": 64, "bucket_multiple": args.bucket_multiple, "bucketed": not args.no_bucketed}
    return {"device": "cuda", "precisions": args.precisions, "seq_lens": list(SEQ_LENS), "batch_size": args.batch_size,
            "throughput_batches": 4, "natural_texts": None, "max_time": args.max_time, "min_rounds": args.min_rounds,
            "throughput_min_rounds": 20, "warmup_iterations": 20, "graphs": not args.no_graphs,
            "compile": args.compile, "eval_batch_size": 256, "bucket_multiple": args.bucket_multiple,
            "bucketed": not args.no_bucketed}


# --- child: one model at one precision -----------------------------------------------------

def load_model(folder: Path, info: dict, dtype, device: str):
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    try:
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    except (TypeError, ValueError, ImportError):
        model = AutoModelForSequenceClassification.from_config(config)
    weights = folder / "model.safetensors"
    if info["weights"]:
        missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
        params = {n for n, _ in model.named_parameters()}
        if unexpected or params & set(missing):
            raise RuntimeError(f"{weights} does not fit the model: missing {sorted(params & set(missing))[:5]}, "
                               f"unexpected {unexpected[:5]}")
    return model.to(device=device, dtype=dtype).eval()


def make_batch(seqs: list[list[int]], pad_id: int, input_names: list[str], device: str,
               pad_to: int | None = None) -> dict:
    import torch

    n = max(max(len(s) for s in seqs), pad_to or 0)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        out["token_type_ids"] = torch.zeros_like(ids)
    return {k: v.to(device) for k, v in out.items() if k in input_names}


def case_batches(inputs: dict, case, s: dict, device: str) -> list[dict]:
    names, pad = inputs["input_names"], inputs["pad_id"]
    order, ids = inputs["order"], inputs["test_ids"]
    if case.seq_len != "natural":
        return [make_batch([inputs["fixed_ids"][case.seq_len]] * case.batch_size, pad, names, device)]
    if case.batch_size == 1:
        k = s["natural_texts"] or inputs["natural_texts"]
        return [make_batch([ids[i]], pad, names, device) for i in order[:k]]
    pool = list(itertools.islice(itertools.cycle(order), case.batch_size * s["throughput_batches"]))
    return [make_batch([ids[i] for i in pool[j:j + case.batch_size]], pad, names, device)
            for j in range(0, len(pool), case.batch_size)]


def pass_buckets(inputs: dict, info: dict, s: dict) -> list:
    """The bucketed pass over the carried test split (``bench.scenarios.throughput``), ties in the seeded text order."""
    from bench.scenarios.throughput import bucket_batches

    return bucket_batches([len(ids) for ids in inputs["test_ids"]], s["batch_size"], s["bucket_multiple"],
                          order=inputs["order"], max_length=info.get("max_length"))


def pass_batches(inputs: dict, buckets: list, device: str) -> list[dict]:
    ids, pad, names = inputs["test_ids"], inputs["pad_id"], inputs["input_names"]
    return [make_batch([ids[i] for i in b.indices], pad, names, device, pad_to=b.length) for b in buckets]


def accuracy(model, inputs: dict, label_names: list[str], s: dict, device: str) -> dict:
    import numpy as np
    import torch

    from edgedistill.metrics import classification_metrics, softmax

    ids, bs, parts = inputs["test_ids"], s["eval_batch_size"], []
    with torch.inference_mode():
        for i in range(0, len(ids), bs):
            batch = make_batch(ids[i:i + bs], inputs["pad_id"], inputs["input_names"], device)
            parts.append(model(**batch).logits.float().cpu().numpy())
    return classification_metrics(inputs["labels"], softmax(np.concatenate(parts).astype(np.float64)), label_names)


class GraphRunner:
    """Batch-1 forwards replayed from CUDA graphs, one captured graph per input length."""

    def __init__(self, model, batches: list[dict]):
        import torch

        self.torch, self.graphs = torch, {}
        self.pool = torch.cuda.graph_pool_handle()
        for b in batches:
            shape = tuple(b["input_ids"].shape)
            if shape in self.graphs:
                continue
            # Batch 1 has no padding, so the mask carries nothing; without it no mask code (which can
            # synchronise on the host and break a capture) runs inside the graph.
            static = {k: v.clone() for k, v in b.items() if k != "attention_mask"}
            try:
                self.graphs[shape] = self._capture(model, static)
            except RuntimeError:
                # Some transformers versions check the mask on the host inside SDPA attention;
                # eager attention has no such check. Same maths, so the rows stay comparable.
                if not hasattr(model, "set_attn_implementation") or getattr(model.config, "_attn_implementation",
                                                                             None) == "eager":
                    raise
                model.set_attn_implementation("eager")
                self.graphs[shape] = self._capture(model, static)

    def _capture(self, model, static: dict):
        torch = self.torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                model(**static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self.pool):
            out = model(**static).logits
        return graph, static, out

    def __call__(self, batch: dict):
        graph, static, out = self.graphs[tuple(batch["input_ids"].shape)]
        for k, v in static.items():
            v.copy_(batch[k])
        graph.replay()
        return out.float().cpu()   # logits on the host, as the runtimes return them (waits for the GPU)


def child(args) -> int:
    """Measure one model at one precision; write its rows (as dicts) to --child-out."""
    import torch

    from bench.scenarios.latency import Case, TimingSettings, build_cases, run_cases_partial
    from bench.scenarios.memory import peak_rss_mb
    from edgedistill.integrity import resolve_inside

    pack = Path(args.pack)
    info, inputs = json.loads((pack / "pack.json").read_text()), json.loads((pack / "inputs.json").read_text())
    s = json.loads(args.settings)
    model_name, precision = args.child.split(":")
    m = info["models"][model_name]
    device = s["device"]
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    result = {"model": model_name, "precision": precision, "ok": False, "failed": [], "notes": []}
    try:
        if device == "cuda":
            torch.zeros(1, device=device)   # CUDA context start-up is not the model's load time
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model = load_model(resolve_inside(pack, f"models/{model_name}", "GPU pack model"), m, dtype, device)
        if device == "cuda":
            torch.cuda.synchronize()
        result["load_s"] = time.perf_counter() - t0
        result["metrics"] = accuracy(model, inputs, info["label_names"], s, device) if m["weights"] else None

        # Every timed call ends with the logits on the host, as the runtimes return them; the copy
        # waits for the GPU, so no kernel is left running outside the timer.
        buckets = pass_buckets(inputs, info, s)

        def scored_pass(fn):
            # One call scores the whole split; the logits come to the host once, at the end, so the
            # host queues the next batch's kernels while the GPU runs the current one.
            batches = pass_batches(inputs, buckets, device)

            def call():
                with torch.inference_mode():
                    return torch.cat([fn(**b).logits for b in batches]).float().cpu()
            return call

        def eager(case):
            if case.seq_len == BUCKETED:
                return scored_pass(model)
            batches = case_batches(inputs, case, s, device)
            cycle = itertools.cycle(batches)

            def call():
                with torch.inference_mode():
                    return model(**next(cycle)).logits.float().cpu()
            return call

        def graphed(case):
            batches = case_batches(inputs, case, s, device)
            runner, cycle = GraphRunner(model, batches), itertools.cycle(batches)
            return lambda: runner(next(cycle))

        compiled = {}

        def compiled_call(case):
            if "model" not in compiled:
                # Static shapes, one graph per shape: the fixed lengths and the bucketed pass's few
                # shapes. Past dynamo's recompile limit a model silently runs eager, so raise it.
                limit = len(s["seq_lens"]) + len({(len(b.indices), b.length) for b in buckets}) + 8
                for name in ("recompile_limit", "cache_size_limit"):
                    if hasattr(torch._dynamo.config, name):
                        setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), limit))
                compiled["model"] = torch.compile(model, dynamic=False)
            if case.seq_len == BUCKETED:
                call = scored_pass(compiled["model"])
                call()   # compile every shape of the pass outside the timed region
                return call
            batches = case_batches(inputs, case, s, device)
            fn, cycle = compiled["model"], itertools.cycle(batches)

            def call():
                with torch.inference_mode():
                    return fn(**next(cycle)).logits.float().cpu()
            call()   # compile outside the timed region
            return call

        settings = TimingSettings(max_time=s["max_time"], warmup_iterations=s["warmup_iterations"])
        base = build_cases(s["seq_lens"], s["batch_size"], ["natural"], s["min_rounds"], s["throughput_min_rounds"])
        if s["bucketed"]:
            base.append(Case("throughput", s["batch_size"], BUCKETED, texts=len(inputs["test_ids"]),
                             min_rounds=s["throughput_min_rounds"]))
        work = Path(args.child_out).parent
        timings, fails = run_cases_partial(base, eager, settings, work / "eager")
        # Graph and compile cases after the eager ones: a failed capture cannot cost eager numbers.
        if s["graphs"] and device == "cuda":
            attn = getattr(model.config, "_attn_implementation", None)
            g = build_cases(s["seq_lens"], 1, [], s["min_rounds"], 0, options="cuda-graphs")
            more, f2 = run_cases_partial(g, graphed, settings, work / "graphs")
            timings.update(more)
            fails.update(f2)
            if getattr(model.config, "_attn_implementation", None) != attn:
                result["notes"].append(f"{model_name} {precision}: CUDA graphs captured with eager attention "
                                       f"({attn} could not be captured)")
                model.set_attn_implementation(attn)
        if model_name in s["compile"] and precision == "fp16":
            c = build_cases([n for n in s["seq_lens"] if n != "natural"], 1, [], s["min_rounds"], 0, options="compile")
            if s["bucketed"]:
                c.append(Case("throughput", s["batch_size"], BUCKETED, "compile", texts=len(inputs["test_ids"]),
                              min_rounds=s["throughput_min_rounds"]))
            more, f3 = run_cases_partial(c, compiled_call, settings, work / "compile")
            timings.update(more)
            fails.update(f3)
        result["timings"] = {k: {kk: vv for kk, vv in v.items() if kk != "data_s"} for k, v in timings.items()}
        result["failed"] = [{"job": f"{model_name}/pytorch [{device} {precision}] {cid}", "error": why[-400:]}
                            for cid, why in fails.items()]
        result["threads"] = torch.get_num_threads()
        result["peak_rss_mb"] = peak_rss_mb()
        result["ok"] = True
    except Exception as exc:  # reported to the parent, which writes it into the result file
        traceback.print_exc()
        result["error"] = f"{type(exc).__name__}: {exc}"
    Path(args.child_out).write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


# --- parent: plan, deadline, rows, file ------------------------------------------------------

def rows_for(result: dict, info: dict, hw: dict) -> list:
    from bench.schema import rows_from_timings

    m = info["models"][result["model"]]
    identity = dict(machine_id=hw["machine_id"], machine_label=hw["label"], run=info["run"], model=result["model"],
                    artifact=f"{result['model']}/pytorch", variant="pytorch", format="pytorch",
                    precision=result["precision"], quantization="none", trimmed_vocab=False, runtime="pytorch",
                    device=result["device"], threads=result["threads"], options="")
    footprint = dict(size_mb=m["size_mb"], params=m["params"], load_s=result["load_s"],
                     peak_rss_mb=result["peak_rss_mb"])
    return rows_from_timings(identity, result.get("metrics"), footprint, result["timings"], result["measured_at"])[0]


def parent(args) -> int:
    from bench.reporting.derive import add_derived
    from bench.schema import document, machine_block, new_document
    from edgedistill.io import atomic_write_json
    from edgedistill.provenance import hardware, provenance

    start = time.time()
    pack = Path(args.pack)
    info = json.loads((pack / "pack.json").read_text())
    s = settings_for(args)
    if s["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("bench.launchers.gpu.run: torch sees no CUDA GPU; use --smoke for a CPU check", file=sys.stderr)
            return 2
    models = [m for m in info["order"] if not args.models or m in args.models]
    # The teacher's FP32 first: every speed-up and retained F1 is relative to it.
    jobs = [(m, p) for m in models for p in s["precisions"]]
    jobs.sort(key=lambda j: (j != ("teacher", "fp32"),))
    hw = hardware()
    rows, failed, notes = [], [], []
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parents[3]), os.environ.get("PYTHONPATH")) if p))
    scratch = tempfile.TemporaryDirectory(prefix="gpu-bench-")
    for model, precision in jobs:
        left = args.deadline_s - (time.time() - start)
        if left < 20:
            failed.append({"job": f"{model}/pytorch [{s['device']} {precision}]", "error": "skipped: deadline"})
            continue
        work = Path(scratch.name) / f"{model}-{precision}"
        work.mkdir()
        out, log = work / "result.json", work / "child.log"
        cmd = [sys.executable, "-m", "bench.launchers.gpu.run", "--pack", str(pack), "--child", f"{model}:{precision}",
               "--child-out", str(out), "--settings", json.dumps(s)]
        name = f"{model}/pytorch [{s['device']} {precision}]"
        print(f"[{time.time() - start:6.1f}s] {name} ...", flush=True)
        try:
            with open(log, "w") as fh:
                subprocess.run(cmd, env=env, timeout=left, check=False, stdout=fh, stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            failed.append({"job": name, "error": "killed at the deadline"})
            continue
        result = json.loads(out.read_text()) if out.is_file() else {"ok": False, "error": "child died without a result"}
        if not result["ok"]:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
            print(tail, file=sys.stderr)
            failed.append({"job": name, "error": result.get("error")})
            continue
        result.update(device=s["device"], measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        rows += rows_for(result, info, hw)
        failed += result["failed"]
        notes += result["notes"]
    scratch.cleanup()
    add_derived(rows, {k: v["onnx_fp32_mb"] for k, v in info["models"].items() if v.get("onnx_fp32_mb")})
    no_weights = [k for k, v in info["models"].items() if not v["weights"]]
    transport = ("Weights travelled as FP16 with the vocabulary cut to the test texts' tokens "
                 "(bench/bundles/gpu_pack.py); FP32 rows run those weights upcast.")
    if no_weights:
        transport += f" Timed with random weights, no accuracy (did not fit the pack): {', '.join(no_weights)}."
    bucketed = {}
    if s["bucketed"]:
        from bench.scenarios.throughput import describe

        inputs = json.loads((pack / "inputs.json").read_text())
        bucketed = {"bucketed": {**describe(pass_buckets(inputs, info, s), [len(i) for i in inputs["test_ids"]]),
                                 "batch_size": s["batch_size"], "multiple": s["bucket_multiple"]}}
    block = machine_block(hw, provenance(["edgedistill", "gpu-bench"] + (args.argv or [])),
                          {"script": SCRIPT, **s, "smoke": args.smoke},
                          {"failed": failed, "notes": notes, "transport": transport, "test_size": info["test_size"],
                           "pack": {k: info[k] for k in ("source_commit", "max_mb", "total_mb")}, **bucketed,
                           **({"bundle": args.bundle_info} if getattr(args, "bundle_info", None) else {})})
    doc = new_document(info["run"])
    doc["machines"][hw["machine_id"]] = block
    atomic_write_json(args.out, document(doc, rows))
    print(f"[{time.time() - start:6.1f}s] {len(rows)} rows, {len(failed)} failed/skipped -> {args.out}")
    for f in failed:
        print(f"  {f['job']}: {f['error']}")
    return 0 if rows else 1


def add_arguments(parser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bundle", help="a bench bundle written with `edgedistill bundle --gpu` (verified first)")
    where.add_argument("--pack", help="the folder written by bench/bundles/gpu_pack.py")
    parser.add_argument("--out", help="bench.json to write")
    parser.add_argument("--smoke", action="store_true", help="CPU, FP32, a few rounds: checks the script, not numbers")
    parser.add_argument("--models", type=lambda v: v.split(","), help="comma-separated subset of the pack")
    parser.add_argument("--precisions", type=lambda v: v.split(","), default=list(PRECISIONS))
    parser.add_argument("--batch-size", type=int, default=256, help="throughput batch")
    parser.add_argument("--max-time", type=float, default=1.0, help="pytest-benchmark seconds per case")
    parser.add_argument("--min-rounds", type=int, default=100)
    parser.add_argument("--no-graphs", action="store_true", help="skip the CUDA-graph replays at batch 1")
    parser.add_argument("--compile", type=lambda v: v.split(","), default=[],
                        help="models to also run through torch.compile (FP16, fixed lengths and the bucketed pass; "
                             "minutes each)")
    parser.add_argument("--bucket-multiple", type=int, default=8,
                        help="bucketed throughput: pad each batch to a multiple of this many tokens "
                             "(1: to its own longest text)")
    parser.add_argument("--no-bucketed", action="store_true", help="skip the bucketed full-pass throughput")
    parser.add_argument("--deadline-s", type=float, default=480.0, help="stop starting new work after this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)


def main(args) -> int:
    """``edgedistill gpu-bench``; the per-model children re-enter through ``module_main``."""
    args.argv = getattr(args, "argv", None) or sys.argv[1:]
    if args.child:
        return child(args)
    if args.bucket_multiple < 1:
        print(f"gpu-bench: --bucket-multiple {args.bucket_multiple}: give a token count >= 1 (1 pads each batch "
              "to its own longest text)", file=sys.stderr)
        return 2
    if not args.out:
        print("gpu-bench: --out is required (the bench.json to write)", file=sys.stderr)
        return 2
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        print("edgedistill gpu-bench: this command needs the full install (`make install`): the GPU bench runs "
              "PyTorch, which the slim install leaves out. Nothing was written.", file=sys.stderr)
        return 2
    from bench.bundles.spec import BUNDLE_FILE, GPU_FOLDER, PACK_FILE, BundleError, verify_bundle, verify_pack
    from edgedistill.owned import OutputError, check_result_file

    # Verified here, where a bundle's GPU pack is: one path (bench.bundles.spec.verify_folder) for both.
    try:
        if args.bundle:
            info = verify_bundle(args.bundle)
            if not info.get("gpu"):
                raise BundleError(f"bundle {args.bundle} carries no GPU pack; write it with `edgedistill bundle --gpu`")
            inputs = [Path(args.bundle) / rel for rel in [*info["files"], BUNDLE_FILE]]
            args.pack = str(Path(args.bundle) / GPU_FOLDER)
            args.bundle_info = {k: info.get(k) for k in ("created_at", "arch", "test_size", "total_mb")} | {
                "git_commit": (info.get("provenance") or {}).get("git_commit")}
        else:
            pack = verify_pack(args.pack)
            inputs = [Path(args.pack) / rel for rel in [*pack["files"], PACK_FILE]]
        check_result_file(args.out, what="bench result file", inputs=inputs, owns=_is_bench_file,
                          example="bench.json outside the pack")
    except (BundleError, OutputError) as exc:
        print(f"edgedistill gpu-bench: {exc}", file=sys.stderr)
        return 2
    return parent(args)


def _is_bench_file(path: Path) -> bool:
    """A bench.json this script wrote (every machine block from it): what ``--out`` may replace; a
    file of the CPU bench (results/<run>/bench.json) holds rows this script would drop."""
    from bench.schema import BenchFileError, read_document

    try:
        doc, _ = read_document(path)
    except BenchFileError:
        return False
    return all((b.get("bench_config") or {}).get("script") == SCRIPT for b in doc["machines"].values())


def module_main(argv: list[str] | None = None) -> int:
    """``edgedistill gpu-bench``: how the parent starts each (model, precision) child process."""
    parser = argparse.ArgumentParser(prog="edgedistill gpu-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    return main(args)


if __name__ == "__main__":
    sys.exit(module_main())
