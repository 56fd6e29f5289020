"""One bench job in a process of its own: load, accuracy, timing, peak memory.

    python -m bench.launchers.worker JOB.json RESULT.json

A fresh process per artifact x runtime x device x precision x threads, because the peak
resident memory only ever grows within a process, and so that one runtime's libraries and
thread pools never share a process with another's. The process holds what serving the artifact
needs and no more: ONNX Runtime and OpenVINO jobs never import torch, and the accuracy metrics
(scikit-learn) are computed by the parent from the returned class probabilities, so the peak
memory is that of a process serving the artifact (plus the pytest-benchmark harness).

What one timed call is (``edgedistill.scenarios``):

- text-latency: what a user gets, ``Runtime.predict([text])`` (the artifact's tokenizer, forward,
  softmax and argmax) for one test text at its own length, cycling through the same texts as
  latency/natural; the tokenizer alone is timed on the same texts (the row's ``tokenize_ms``);
- text-throughput: ``Runtime.predict(batch)`` on the throughput batches;
- latency, natural: forward only, batch 1, a fixed list of test texts at their own lengths (truncated to the
  model's max_length), one text per call, cycling through the list;
- latency, 16 / 64 / 128: batch 1, real test text cut to exactly that many tokens;
- throughput: ``batch_size`` test texts per call (padded to the batch's longest, or to a fixed
  length), cycling through a few distinct batches.
"""
from __future__ import annotations

import itertools
import json
import sys
import time
import traceback
from pathlib import Path

from bench.config import BenchConfig
from bench.plan import Job
from bench.scenarios import latency
from bench.scenarios.latency import Case, run_cases, timing_settings
from bench.scenarios.memory import peak_rss_mb
from edgedistill.contention import CaseMarks
from edgedistill.scenarios import TEXT_SCENARIOS, TEXT_THROUGHPUT, TOKENIZE


def build_cases(cfg: BenchConfig) -> list[Case]:
    return latency.build_cases(cfg.seq_lens, cfg.batch_size, cfg.throughput_seq_lens, cfg.min_rounds,
                              cfg.throughput_min_rounds, cfg.repeat, text=True)


def text_target(rt, inputs: dict, case: Case):
    """The zero-argument call of a text scenario, exactly as ``Runtime.predict`` serves it."""
    if case.scenario == TEXT_THROUGHPUT:
        batches, predict = itertools.cycle(inputs["throughput_batches"]), rt.predict

        def served():
            batch = next(batches)
            return predict(batch, batch_size=len(batch))    # one request, one forward: as a server batches
        return served
    texts = itertools.cycle([[t] for t in inputs["natural_texts"]])
    call = rt.encode if case.scenario == TOKENIZE else rt.predict
    return lambda: call(next(texts))


def case_batches(rt, inputs: dict, case: Case) -> list[dict]:
    """The pre-tokenized batches one case cycles through."""
    if case.seq_len == "natural":
        if case.batch_size == 1:
            return [rt.encode([t]) for t in inputs["natural_texts"]]
        return [rt.encode(b) for b in inputs["throughput_batches"]]
    n = int(case.seq_len)
    batch = rt.encode([inputs["long_text"]] * case.batch_size, pad_to=n)
    if batch["input_ids"].shape != (case.batch_size, n) or not batch["attention_mask"].all():
        raise ValueError(f"could not build {n} real tokens from the test texts (got shape "
                         f"{batch['input_ids'].shape}, {int(batch['attention_mask'].sum())} real tokens)")
    return [batch]


def import_runtime_libraries(job: Job) -> None:
    """Import the runtime's libraries before the clock starts: load_s is the artifact's load
    (reading weights, building the session or compiling the graph), not Python imports."""
    if job.runtime == "pytorch":
        import transformers

        from edgedistill.checkpoint import load_checkpoint  # noqa: F401 - the import is the point
        archs = json.loads((Path(job.artifact.folder) / "config.json").read_text()).get("architectures") or []
        for arch in archs:
            getattr(transformers, arch, None)   # transformers imports model classes lazily
    elif job.runtime == "onnxruntime":
        import onnxruntime  # noqa: F401
    elif job.runtime == "openvino":
        import openvino  # noqa: F401
    elif job.runtime == "numpy":
        import safetensors.numpy  # noqa: F401


def measure(job: Job, cfg: BenchConfig, inputs: dict, workdir: Path) -> dict:
    from edgedistill.runtime import RUNTIMES

    out: dict = {"job": job.to_dict(), "ok": False}
    import_runtime_libraries(job)
    t0 = time.perf_counter()
    rt = RUNTIMES[job.runtime].load(job.artifact.folder, device=job.device, threads=job.threads,
                                    precision=job.precision)
    out["load_s"] = time.perf_counter() - t0
    out["describe"] = {k: v for k, v in rt.describe().items() if k not in ("label_names", "folder")}
    if list(rt.label_names) != list(inputs["label_names"]):
        raise ValueError(f"{job.artifact.name} predicts labels {rt.label_names}, the test split has "
                         f"{inputs['label_names']}: it was trained on other data")
    print(f"loaded {job.label} in {out['load_s']:.2f}s", flush=True)

    pred = rt.predict(inputs["test_texts"], batch_size=cfg.eval_batch_size)
    out["probs"] = pred.probs.tolist()      # metrics: computed by the parent (see the module doc)
    print(f"predicted {len(inputs['test_texts'])} test texts", flush=True)

    marks, shapes = CaseMarks(), {}   # contention while each case ran; the input shapes (for FLOPs)

    def make_target(case: Case):
        marks.mark(case.id)
        if case.scenario in (*TEXT_SCENARIOS, TOKENIZE):
            texts = inputs["throughput_batches"] if case.scenario == TEXT_THROUGHPUT else \
                [[t] for t in inputs["natural_texts"]]
            shapes[case.id] = None if case.scenario == TOKENIZE else \
                [list(rt.encode(b)["input_ids"].shape) for b in texts]
            return text_target(rt, inputs, case)
        batches = case_batches(rt, inputs, case)
        shapes[case.id] = [list(b["input_ids"].shape) for b in batches]
        forward, cycle = rt.forward, itertools.cycle(batches)
        return lambda: forward(next(cycle))

    timings = run_cases(build_cases(cfg), make_target, timing_settings(cfg), workdir / "pytest")
    contention = marks.finish()
    out["timings"] = {cid: {**{k: v for k, v in r.items() if k != "data_s"}, "contention": contention.get(cid),
                            "shapes": shapes.get(cid)} for cid, r in timings.items()}
    out["peak_rss_mb"] = peak_rss_mb()
    out["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out["ok"] = True
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    job, cfg = Job.from_dict(spec["job"]), BenchConfig(**spec["config"])
    inputs = json.loads(Path(spec["inputs"]).read_text())
    try:
        result = measure(job, cfg, inputs, spec_path.parent)
    except Exception as exc:  # any failure is reported to the parent, which carries on with other jobs
        traceback.print_exc()
        result = {"job": job.to_dict(), "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result_path.write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
