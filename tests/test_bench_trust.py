"""Numbers to trust on a shared machine: paired ABBA timing, its bootstrap interval, contention."""
from __future__ import annotations

import numpy as np
import pytest

from edgedistill.contention import Sampler, is_disturbed, read_cpu_times, summarize
from edgedistill.paired import abba_order, bootstrap_interval, time_paired


def test_abba_order_alternates_which_side_goes_first():
    assert abba_order(4) == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
    flat = "".join(x for block in abba_order(6) for x in block)
    assert flat == "ABBAABBAABBA".lower()


def test_bootstrap_interval_covers_a_known_ratio():
    rng = np.random.default_rng(1)
    ratios = 3.0 * np.exp(rng.normal(0.0, 0.05, size=200))          # median ratio 3, 5% noise
    low, high = bootstrap_interval(ratios)
    assert low < 3.0 < high and high - low < 0.1
    wide = bootstrap_interval(3.0 * np.exp(rng.normal(0.0, 0.5, size=10)))
    assert wide[1] - wide[0] > high - low                             # fewer, noisier blocks: wider
    with pytest.raises(ValueError):
        bootstrap_interval([])


class FakeClock:
    """A clock that the timed calls advance; ``load`` multiplies every duration (a busy machine)."""

    def __init__(self):
        self.now, self.load, self.calls = 0.0, 1.0, []

    def __call__(self):
        return self.now

    def work(self, name, seconds):
        def call():
            self.calls.append(name)
            self.now += seconds * self.load
            self.load *= 1.01             # the machine slows down steadily while we time
        return call


def test_paired_timing_cancels_a_drifting_machine_and_runs_abba():
    clock = FakeClock()
    ref, cand = clock.work("ref", 0.003), clock.work("cand", 0.001)
    result = time_paired(ref, cand, blocks=8, calls=3, warmup=0, clock=clock)
    # Separately, the drift would inflate whichever side ran later; per block the ratio stays ~3.
    assert result.median == pytest.approx(3.0, rel=0.05) and result.low <= result.median <= result.high
    assert len(result.ratios) == 8 and result.calls == 3
    firsts = [clock.calls[i] for i in range(0, len(clock.calls), 3)]
    assert firsts[:4] == ["ref", "cand", "cand", "ref"]               # A B | B A | ...
    with pytest.raises(ValueError):
        time_paired(ref, cand, blocks=1)


def test_each_block_waits_untimed_for_the_other_side_to_settle():
    clock, slept = FakeClock(), []

    def sleep(seconds):
        slept.append((seconds, len(clock.calls)))
        clock.now += seconds                     # the pause passes on the clock but is never timed

    ref, cand = clock.work("ref", 0.003), clock.work("cand", 0.001)
    result = time_paired(ref, cand, blocks=4, calls=2, warmup=0, clock=clock, settle_s=0.5, sleep=sleep)
    assert [n for _, n in slept] == list(range(0, 16, 2))            # before every block, none inside one
    assert {s for s, _ in slept} == {0.5}
    assert result.a_p50_ms < 4 and result.median == pytest.approx(3.0, rel=0.05)
    slept.clear()
    time_paired(ref, cand, blocks=2, calls=1, warmup=0, clock=clock, settle_s=0, sleep=sleep)
    assert slept == []


STAT = "cpu  {user} 0 {system} {idle} 0 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n"


def test_contention_reader_on_a_fake_proc_stat(tmp_path):
    path = tmp_path / "stat"
    path.write_text(STAT.format(user=1000, system=200, idle=5000, steal=10))
    before = read_cpu_times(path)
    assert before["user"] == 1000 and before["steal"] == 10 and before["idle"] == 5000
    # 10 s on 2 cores = 2000 jiffies at 100 Hz: 1400 busy (user + system), 50 steal, 550 idle.
    path.write_text(STAT.format(user=2200, system=400, idle=5550, steal=60))
    after = read_cpu_times(path)
    out = summarize(before, after, own_s=4.0, wall_s=10.0, cores=2, load1=3.5)
    assert out["steal_pct"] == pytest.approx(2.5)
    assert out["own_cpu_pct"] == pytest.approx(20.0)                # 4 s of 20 core-seconds
    assert out["other_cpu_pct"] == pytest.approx(50.0)              # 14 s busy - 4 s ours = 10 of 20
    assert is_disturbed(out) is True
    quiet = summarize(before, after, own_s=13.5, wall_s=10.0, cores=2)
    assert quiet["other_cpu_pct"] == pytest.approx(2.5) and is_disturbed(quiet) is False
    assert is_disturbed({**quiet, "steal_pct": 9.0}) is True          # the hypervisor took the cores
    assert read_cpu_times(tmp_path / "missing") is None
    assert is_disturbed(summarize(None, after, 1.0, 1.0, 2)) is None  # not measured: not flagged


def test_sampler_measures_this_process(tmp_path):
    import time

    sampler = Sampler()
    start = time.process_time()
    while time.process_time() - start < 0.3:     # CPU work of our own, well above the 10 ms tick
        sum(i * i for i in range(10_000))
    out = sampler.stop()
    assert out["wall_s"] > 0 and out["cores"] >= 1
    if read_cpu_times() is not None:
        assert 0 <= out["other_cpu_pct"] <= 100 and out["own_cpu_pct"] > 0


def test_forward_flops_from_the_config():
    from bench.scenarios.roofline import forward_flops, mean_gflop, row_columns

    cfg = {"num_hidden_layers": 2, "hidden_size": 8, "intermediate_size": 32, "id2label": {"0": "a", "1": "b"}}
    # per layer: 2*T*(4*64 + 2*8*32) + 4*T^2*8; head: pooler 2*64 + classifier 2*8*2
    t = 10
    expected = 2 * (2 * t * (256 + 512) + 4 * t * t * 8) + 128 + 32
    assert forward_flops(cfg, 1, t) == expected
    assert forward_flops(cfg, 4, t) > 3.9 * forward_flops(cfg, 1, t)
    assert mean_gflop(cfg, [[1, 10], [1, 20]]) == pytest.approx((forward_flops(cfg, 1, 10) + forward_flops(cfg, 1, 20))
                                                                / 2e9)
    assert forward_flops({"hidden_size": 8}, 1, 10) is None
    cols = row_columns(2.0, 10.0, 400.0)       # 2 GFLOP in 10 ms = 200 GFLOP/s; floor 5 ms = 50% of peak
    assert cols["achieved_gflops"] == pytest.approx(200.0) and cols["floor_ms"] == pytest.approx(5.0)
    assert cols["pct_of_peak"] == pytest.approx(50.0)


def test_version_1_bench_files_still_read(tmp_path):
    import json

    from bench.schema import BenchRow, read_document

    row = BenchRow(machine_id="m", machine_label="m", run="r", model="teacher", artifact="teacher/pytorch",
                   variant="pytorch", format="pytorch", precision="fp32", quantization="none", trimmed_vocab=False,
                   runtime="pytorch", device="cpu", threads=1, options="", scenario="latency", batch_size=1,
                   seq_len="natural", latency_p50_ms=1.0).to_dict()
    old = {k: v for k, v in row.items() if k not in ("other_cpu_pct", "disturbed", "gflop_per_call")}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"schema_version": 1, "run": "r", "machines": {"m": {"hardware": {}}}, "rows": [old]}))
    _, rows = read_document(path)
    assert rows[0].latency_p50_ms == 1.0 and rows[0].disturbed is None


def test_choose_pairs_takes_the_fastest_good_artifacts_against_each_reference():
    from types import SimpleNamespace

    from bench.scenarios.paired import apply_pairs, choose_pairs
    from bench.schema import BenchRow

    def row(artifact, runtime, precision, p50, retained):
        model, variant = artifact.split("/")
        return BenchRow(machine_id="m", machine_label="m", run="r", model=model, artifact=artifact, variant=variant,
                        format="onnx", precision=precision, quantization="none", trimmed_vocab=False, runtime=runtime,
                        device="cpu", threads=2, options="", scenario="latency", batch_size=1, seq_len="natural",
                        latency_p50_ms=p50, f1_retained_pct=retained)

    rows = [row("teacher/pytorch", "pytorch", "fp32", 8.0, 100.0),
            row("teacher/onnx-int8-dynamic", "onnxruntime", "int8", 3.0, 99.5),
            row("tiny/onnx-int8-dynamic", "onnxruntime", "int8", 1.0, 99.2),
            row("tiny/onnx-fp32", "onnxruntime", "fp32", 1.2, 100.0),
            row("odd/onnx-int8-dynamic", "onnxruntime", "int8", 0.9, 95.0)]   # too inaccurate
    job = SimpleNamespace(runtime="onnxruntime", precision=None, artifact=SimpleNamespace(folder="f"))
    spec = choose_pairs(rows, {r.key_text(): job for r in rows}, top=1)[2]
    assert [(p["candidate"].split("|")[1], p["reference_kind"]) for p in spec["pairs"]] == [
        ("tiny/onnx-int8-dynamic", "teacher_fp32"), ("tiny/onnx-int8-dynamic", "teacher_int8"),
        ("teacher/onnx-int8-dynamic", "teacher_fp32")]
    assert len(spec["models"]) == 3
    apply_pairs(rows, [{**spec["pairs"][0], "median": 9.0, "low": 8.0, "high": 10.0},
                       {**spec["pairs"][1], "median": 3.1, "low": 2.9, "high": 3.3}])
    assert rows[2].paired_speedup_vs_teacher == 9.0 and rows[2].paired_speedup_vs_teacher_int8_high == 3.3


def test_case_marks_split_the_pass_and_fall_back_for_short_cases():
    import time

    from edgedistill.contention import CaseMarks

    marks = CaseMarks()
    marks.mark("short")                         # far below one clock tick: /proc/stat cannot see it
    marks.mark("long")
    start = time.process_time()
    while time.process_time() - start < 0.3:
        sum(i * i for i in range(10_000))
    out = marks.finish()
    assert set(out) == {"short", "long"}
    if out["long"]["other_cpu_pct"] is not None:
        assert out["long"].get("scope") is None and out["long"]["wall_s"] >= 0.3
        assert out["short"]["scope"] == "all cases" or out["short"]["other_cpu_pct"] is not None


def test_a_rerun_shows_the_previous_paired_ratio():
    from bench.reporting.trust import paired_table
    from bench.schema import BenchRow, previous_run

    row = BenchRow(machine_id="m", machine_label="m", run="r", model="tiny", artifact="tiny/onnx-int8-dynamic",
                   variant="onnx-int8-dynamic", format="onnx", precision="int8", quantization="dynamic",
                   trimmed_vocab=False, runtime="onnxruntime", device="cpu", threads=2, options="",
                   scenario="latency", batch_size=1, seq_len="natural", latency_p50_ms=1.0,
                   paired_speedup_vs_teacher=8.0, paired_speedup_vs_teacher_low=7.5,
                   paired_speedup_vs_teacher_high=8.5)
    before = previous_run({"measured_at": "t0"}, [row], "m")
    assert before["paired"][row.key_text() + "|paired_speedup_vs_teacher"] == [8.0, 7.5, 8.5]
    row.paired_speedup_vs_teacher = 8.8
    table = paired_table([row], {"previous_run": before, "paired": []}, 2)
    assert "8.80x [7.50, 8.50]; previous run 8.00x (10% apart)" in table


def test_compare_puts_both_runs_paired_ratios_side_by_side():
    from bench.reporting.compare import paired_agreement
    from bench.schema import BenchRow, previous_run

    def row(ratio):
        return BenchRow(machine_id="m", machine_label="m", run="r", model="tiny", artifact="tiny/onnx-int8-dynamic",
                        variant="onnx-int8-dynamic", format="onnx", precision="int8", quantization="dynamic",
                        trimmed_vocab=False, runtime="onnxruntime", device="cpu", threads=2, options="",
                        scenario="latency", batch_size=1, seq_len="natural", latency_p50_ms=1.0,
                        paired_speedup_vs_teacher_int8=ratio, paired_speedup_vs_teacher_int8_low=ratio - 0.2,
                        paired_speedup_vs_teacher_int8_high=ratio + 0.2)

    block = {"previous_run": previous_run({"measured_at": "t0"}, [row(3.0)], "m")}
    text = "\n".join(paired_agreement(block, [row(3.6)]))
    assert "agreeing within 10%: 0 of 1" in text
    assert "| 3.00x [2.80, 3.20] | 3.60x [3.40, 3.80] | 20.0 |" in text
    assert paired_agreement({}, [row(3.6)]) == []


def test_best_artifact_line_carries_its_paired_ratios():
    from bench.reporting.trust import paired_text
    from bench.schema import BenchRow

    row = BenchRow(machine_id="m", machine_label="m", run="r", model="tiny", artifact="tiny/onnx-int8-dynamic",
                   variant="onnx-int8-dynamic", format="onnx", precision="int8", quantization="dynamic",
                   trimmed_vocab=False, runtime="onnxruntime", device="cpu", threads=2, options="",
                   scenario="latency", batch_size=1, seq_len="natural", paired_speedup_vs_teacher=9.1,
                   paired_speedup_vs_teacher_low=8.7, paired_speedup_vs_teacher_high=9.6, disturbed=False)
    assert paired_text(row) == " Paired: 9.10x [8.70, 9.60] the teacher PyTorch FP32."
    row.paired_speedup_vs_teacher = None
    assert paired_text(row) == ""
