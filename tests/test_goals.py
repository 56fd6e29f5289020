"""Every qualifying row competes for every goal: the within-3% goal is not decided by which rows were paired,
an INT8 artifact slower than its FP32 source never wins a speed goal, and the report, the dashboard and the
README generator name the same winners from the same rows."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd

from bench.schema import BenchRow, document

TEACHER_F1 = 0.7341


def row(artifact: str, runtime: str, precision: str, p50: float, retained: float, size: float = 20.0,
        paired: float | None = None, scenario: str = "text-latency", **extra) -> BenchRow:
    model, variant = artifact.split("/")
    fmt = "pytorch" if variant == "pytorch" else variant.split("-")[0]
    f1 = TEACHER_F1 * retained / 100
    return BenchRow(machine_id="m", machine_label="Box x2", run="r", model=model, artifact=artifact, variant=variant,
                    format=fmt, precision=precision, quantization="dynamic" if precision == "int8" else "none",
                    trimmed_vocab=False, runtime=runtime, device="cpu", threads=2, options="", scenario=scenario,
                    batch_size=1, seq_len="natural", macro_f1=f1, f1_retained_pct=retained, size_mb=size,
                    latency_p50_ms=p50, speedup_vs_teacher=15.15 / p50, paired_speedup_vs_teacher=paired,
                    paired_speedup_vs_teacher_low=paired and paired * 0.95,
                    paired_speedup_vs_teacher_high=paired and paired * 1.05, **extra)


def quickstart_like() -> list[BenchRow]:
    """The committed quickstart's shape: only the teacher's INT8 keeps 99% and was paired; the hybrid keeps
    97.8% at less than half its latency and was never paired."""
    return [row("teacher/pytorch", "pytorch", "fp32", 15.15, 100.0, 90.9),
            row("teacher/onnx-int8-dynamic", "onnxruntime", "int8", 2.62, 100.5, 23.0, paired=5.8),
            row("odd/onnx-fp32", "onnxruntime", "fp32", 1.96, 98.3, 69.6),
            row("odd/openvino-int8", "openvino", "int8", 2.43, 97.7, 17.6),
            row("hybrid/onnx-int8-dynamic", "onnxruntime", "int8", 1.00, 97.8, 17.6),
            row("even/onnx-int8-dynamic", "onnxruntime", "int8", 1.52, 96.9, 17.6)]


def test_a_row_the_bench_did_not_pair_is_not_dropped():
    from edgedistill import goals

    winners = goals.goal_winners(quickstart_like(), TEACHER_F1)
    assert winners["fastest_3pct"].artifact == "hybrid/onnx-int8-dynamic"      # 1.00 ms, 97.8%: not 2.62 ms
    assert winners["fastest_1pct"].artifact == "teacher/onnx-int8-dynamic"
    assert winners["accurate"].artifact == "teacher/onnx-int8-dynamic"


def test_the_paired_job_covers_every_goals_candidates():
    from bench.scenarios.paired import choose_pairs

    rows = quickstart_like()
    job = SimpleNamespace(runtime="onnxruntime", precision=None, artifact=SimpleNamespace(folder="f"))
    spec = choose_pairs(rows, {r.key_text(): job for r in rows}, top=1)[2]
    paired = {p["candidate"].split("|")[1] for p in spec["pairs"]}
    # within 1%: the teacher's INT8 is a reference, so no candidate; within 3%: the hybrid; each model's
    # fastest within 3%: odd's FP32 graph and the hybrid; even keeps 96.9%: no goal, no pair.
    assert paired == {"hybrid/onnx-int8-dynamic", "odd/onnx-fp32", "teacher/onnx-int8-dynamic"}
    assert spec["scenario"] == "text-latency"
    assert choose_pairs(rows, {r.key_text(): job for r in rows}, top=0) == {}


def test_paired_winner_loses_to_a_faster_row_it_never_met():
    from edgedistill import goals

    rows = quickstart_like()[1:5]                               # even (96.9%) left out
    rows[1].paired_speedup_vs_teacher = 7.7                     # odd FP32 paired; the hybrid (faster p50) not
    assert goals.fastest(rows).artifact == "hybrid/onnx-int8-dynamic"
    rows[3].paired_speedup_vs_teacher = 14.9                    # once paired, the paired measure decides
    rows[1].paired_speedup_vs_teacher = 16.0
    assert goals.fastest(rows).artifact == "odd/onnx-fp32"


def test_a_size_only_int8_artifact_never_wins_a_speed_goal():
    from edgedistill import goals

    rows = quickstart_like() + [row("static/onnx-fp32", "onnxruntime", "fp32", 0.060, 99.4, 30.5),
                                row("static/onnx-int8-dynamic", "onnxruntime", "int8", 0.058, 99.3, 7.6,
                                    size_only=True)]
    winners = goals.goal_winners(rows, TEACHER_F1)
    assert winners["fastest_1pct"].artifact == winners["fastest_3pct"].artifact == "static/onnx-fp32"
    assert winners["smallest"].artifact == "static/onnx-int8-dynamic"          # it still ships for its size


def test_report_dashboard_and_readme_name_the_same_winner(tmp_path):
    from test_dashboard import RUN, write_results

    from bench.reporting.report import best_per_goal, goal_winners
    from dashboard import pareto
    from tools.readme_results import build

    rows = quickstart_like() + [row(r.artifact, r.runtime, r.precision, r.latency_p50_ms / 1.1, r.f1_retained_pct,
                                    r.size_mb, scenario="latency") for r in quickstart_like()]
    assert goal_winners(rows)["fastest_3pct"].artifact == "hybrid/onnx-int8-dynamic"
    text = best_per_goal(rows)
    assert "**Fastest within 3% of the teacher** (keeping >= 97% of teacher macro-F1): `hybrid/onnx-int8-dynamic`" \
           in text and "(text -> label)" in text
    frame = pd.DataFrame([r.to_dict() for r in rows if r.scenario == "text-latency"])
    assert pareto.best_per_goal(frame, TEACHER_F1)["fastest_3pct"]["artifact"] == "hybrid/onnx-int8-dynamic"

    root = write_results(tmp_path / "results")
    for r in rows:
        r.run, r.machine_id = RUN, "cpubox"
    doc = json.loads((root / RUN / "bench.json").read_text())
    block = next(iter(doc["machines"].values()))
    doc = document({"run": RUN, "machines": {"cpubox": {**block, "hardware": {**block["hardware"], "gpus": []}}}},
                   rows)
    (root / RUN / "bench.json").write_text(json.dumps(doc))
    assert "`hybrid/onnx-int8-dynamic` on onnxruntime" in build(RUN, root).split("Fastest within 3%")[1][:200]
