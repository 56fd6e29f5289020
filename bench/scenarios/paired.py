"""The bench's paired job: the references and the headline candidates loaded in one worker.

``python -m bench.scenarios.paired JOB.json RESULT.json`` is what ``bench.launchers.process.run_paired`` starts; the
timing itself is ``edgedistill.paired.time_paired`` (ABBA blocks, bootstrap interval).
"""
from __future__ import annotations

import itertools
import json
import sys
import time
import traceback
from pathlib import Path

from edgedistill.goals import candidates, reference_f1
from edgedistill.paired import time_paired
from edgedistill.scenarios import TEXT_LATENCY, headline_scenario

# --- the bench's paired job ------------------------------------------------------------------

def measure_pairs(spec: dict) -> dict:
    """Load every runtime named in ``spec`` once, then time each (reference, candidate) pair."""
    from edgedistill.contention import Sampler
    from edgedistill.runtime import RUNTIMES

    inputs = json.loads(Path(spec["inputs"]).read_text())
    loaded: dict[str, object] = {}
    for name, entry in spec["models"].items():
        loaded[name] = RUNTIMES[entry["runtime"]].load(entry["folder"], device="cpu", threads=spec["threads"],
                                                       precision=entry.get("precision"))
        print(f"loaded {name}", flush=True)

    def target(name: str):
        # One call is what the rows being paired timed: text -> label (Runtime.predict) for text-latency rows.
        rt = loaded[name]
        if spec.get("scenario") == TEXT_LATENCY:
            predict, texts = rt.predict, itertools.cycle([[t] for t in inputs["natural_texts"]])
            return lambda: predict(next(texts))
        batches = [rt.encode([t]) for t in inputs["natural_texts"]]
        forward, cycle = rt.forward, itertools.cycle(batches)
        return lambda: forward(next(cycle))

    pairs = []
    for pair in spec["pairs"]:
        sampler = Sampler()
        result = time_paired(target(pair["reference"]), target(pair["candidate"]), blocks=spec["blocks"],
                             calls=spec["calls"], warmup=spec.get("warmup", 10))
        pairs.append({**pair, **result.to_dict(), "contention": sampler.stop()})
        print(f"{pair['candidate']} vs {pair['reference']}: {result.median:.2f}x "
              f"[{result.low:.2f}, {result.high:.2f}]", flush=True)
    return {"ok": True, "pairs": pairs, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    try:
        result = measure_pairs(json.loads(spec_path.read_text()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which writes the other rows regardless
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result_path.write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())


# --- choosing the pairs and writing them into rows (the bench's parent process) -----------------

REFERENCES = {"teacher_fp32": {"artifact": "teacher/pytorch", "runtime": "pytorch", "precision": "fp32", "options": ""},
              "teacher_int8": {"artifact": "teacher/onnx-int8-dynamic", "runtime": "onnxruntime", "precision": "int8",
                               "options": ""}}
COLUMNS = {"teacher_fp32": "paired_speedup_vs_teacher", "teacher_int8": "paired_speedup_vs_teacher_int8"}


def _is_headline(row, scenario: str) -> bool:
    return row.scenario == scenario and row.batch_size == 1 and row.seq_len == "natural" and row.device == "cpu"


def _matches(row, ref: dict) -> bool:
    return all(getattr(row, k) == v for k, v in ref.items())


def choose_pairs(rows, row_jobs: dict, top: int) -> dict[int, dict]:
    """Per thread count, the worker spec's ``models`` and ``pairs``: every goal's candidates among the
    batch-1, natural-length CPU rows of the headline scenario (``edgedistill.goals.candidates``: the ``top``
    fastest within 1% and within 3% of the teacher, the smallest within 1%, each model's fastest within 3%),
    each against every reference that was measured. ``row_jobs`` maps a row's key_text to its bench Job."""
    out: dict[int, dict] = {}
    if top <= 0:
        return out
    scenario = headline_scenario(rows)
    headline = [r for r in rows if _is_headline(r, scenario) and r.key_text() in row_jobs]
    for threads in sorted({r.threads for r in headline}):
        here = [r for r in headline if r.threads == threads]
        refs = {kind: next((r for r in here if _matches(r, ref)), None) for kind, ref in REFERENCES.items()}
        refs = {k: r for k, r in refs.items() if r is not None}
        ref_keys = {r.key_text() for r in refs.values()}
        chosen = candidates([r for r in here if r.key_text() not in ref_keys], reference_f1(here), top)
        pairs = [{"candidate": c.key_text(), "reference": ref.key_text(), "reference_kind": kind}
                 for c in chosen for kind, ref in refs.items()]
        if len(refs) == 2:   # the INT8 reference is itself a headline: its speed-up over the FP32 one
            pairs.append({"candidate": refs["teacher_int8"].key_text(), "reference": refs["teacher_fp32"].key_text(),
                          "reference_kind": "teacher_fp32"})
        if not pairs:
            continue
        models = {}
        for r in list(refs.values()) + chosen:
            job = row_jobs[r.key_text()]
            models[r.key_text()] = {"runtime": job.runtime, "folder": job.artifact.folder, "precision": job.precision}
        out[threads] = {"models": models, "pairs": pairs, "scenario": scenario}
    return out


def apply_pairs(rows, pairs: list[dict]) -> None:
    """Write each pair's median and interval into the candidate row's paired columns."""
    by_key = {r.key_text(): r for r in rows}
    for p in pairs:
        row, column = by_key.get(p["candidate"]), COLUMNS.get(p.get("reference_kind"))
        if row is None or column is None:
            continue
        setattr(row, column, p["median"])
        setattr(row, column + "_low", p["low"])
        setattr(row, column + "_high", p["high"])
