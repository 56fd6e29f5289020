"""Bench rows, files, ratios, report, config and the pytest-benchmark driver (no models)."""
from __future__ import annotations

import json
import time

import pytest

from bench.config import BenchConfig, ConfigError, load_bench_config
from bench.launchers.process import merge_bench_file, write_outputs
from bench.plan import Artifact, available_devices, plan_jobs
from bench.reporting.derive import add_derived
from bench.reporting.report import render_report
from bench.scenarios.latency import Case, TimingSettings, run_cases
from bench.schema import (
    KEY_COLUMNS,
    BenchFileError,
    BenchRow,
    document,
    load_or_new,
    machine_block,
    new_document,
    read_document,
    replace_machine,
    rows_from_csv,
    rows_to_csv,
    validate_document,
)

LABELS = ["negative", "neutral", "positive"]


def row(machine="m1", model="teacher", variant="pytorch", runtime="pytorch", precision="fp32", seq_len="natural",
        scenario="latency", batch=1, p50=10.0, f1=0.8, size=90.0, threads=2, options=""):
    fmt = "pytorch" if variant == "pytorch" else variant.split("-")[0]
    return BenchRow(
        machine_id=machine, machine_label=f"cpu {machine}", run="tiny", model=model, artifact=f"{model}/{variant}",
        variant=variant, format=fmt, precision=precision, quantization="none", trimmed_vocab=False, runtime=runtime,
        device="cpu", threads=threads, options=options, scenario=scenario, batch_size=batch, seq_len=seq_len,
        accuracy=0.9, macro_f1=f1, roc_auc=0.95, pr_auc=None,
        per_class={lb: {"f1": 0.5 + i / 10, "precision": 0.6, "recall": 0.7} for i, lb in enumerate(LABELS)},
        size_mb=size, params=1000, load_s=0.5, peak_rss_mb=300.0, latency_mean_ms=p50 * 1.1, latency_p50_ms=p50,
        latency_p90_ms=p50 * 1.3, latency_p99_ms=p50 * 2, latency_min_ms=p50 * 0.9, latency_stddev_ms=0.1,
        rounds=200, throughput_per_s=batch / (p50 * 1.1e-3), measured_at="2026-01-01T00:00:00+0000")


def machine_rows(machine="m1"):
    return [row(machine), row(machine, variant="onnx-fp32", runtime="onnxruntime", size=88.0, p50=8.0),
            row(machine, variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", size=23.0, p50=4.0,
                f1=0.796),
            row(machine, model="odd", p50=5.0, f1=0.78, size=60.0),
            row(machine, scenario="throughput", batch=32, p50=100.0),
            row(machine, variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", size=23.0,
                scenario="throughput", batch=32, p50=40.0, f1=0.796)]


def block(machine="m1"):
    return machine_block({"machine_id": machine, "label": f"cpu {machine}", "cpu_model": "x", "isa_flags": []},
                         {"git_commit": "abc"}, BenchConfig().__dict__, {"repeats": {}})


def test_row_json_and_csv_round_trip():
    rows = machine_rows()
    add_derived(rows)
    via_json = [BenchRow.from_dict(d) for d in json.loads(json.dumps([r.to_dict() for r in rows]))]
    via_csv = rows_from_csv(rows_to_csv(rows))
    assert via_json == rows
    assert via_csv == rows
    flat = rows[0].to_dict()
    assert list(flat)[:3] == ["machine_id", "machine_label", "run"]
    assert flat["f1_neutral"] == pytest.approx(0.6) and "per_class" not in flat
    assert "f1_retained_pct" in flat and flat["seq_len"] == "natural"


def test_rows_without_accuracy_round_trip_and_render():
    timing_only = row("gpu", f1=None)
    timing_only.per_class, timing_only.accuracy = {}, None
    rows = [row("gpu"), timing_only]
    assert rows_from_csv(rows_to_csv(rows)) == rows
    doc, rows = replace_machine(new_document("tiny"), [], "gpu", block("gpu"), rows)
    assert "| - | - | - | - |" in render_report(document(doc, rows), rows)


def test_derived_ratios():
    rows = add_derived(machine_rows())
    by = {(r.artifact, r.scenario): r for r in rows}
    q = by[("teacher/onnx-int8-dynamic", "latency")]
    assert q.speedup_vs_teacher == pytest.approx(10.0 / 4.0)
    assert q.size_ratio_vs_fp32 == pytest.approx(23.0 / 88.0)
    assert q.f1_retained_pct == pytest.approx(99.5)
    assert by[("teacher/onnx-int8-dynamic", "throughput")].speedup_vs_teacher == pytest.approx(100 / 40)
    assert by[("teacher/pytorch", "latency")].speedup_vs_teacher == pytest.approx(1.0)
    assert by[("odd/pytorch", "latency")].size_ratio_vs_fp32 is None   # no odd/onnx-fp32 measured
    other = add_derived([row("m2", variant="onnx-fp32", runtime="onnxruntime", p50=3.0)])[0]
    assert other.speedup_vs_teacher is None      # the teacher of another machine is no reference


def test_replace_machine_keeps_other_machines(tmp_path):
    doc, rows = replace_machine(new_document("tiny"), [], "m1", block("m1"), machine_rows("m1"))
    doc, rows = replace_machine(doc, rows, "m2", block("m2"), machine_rows("m2"))
    write_outputs(doc, rows, tmp_path)
    doc, rows = read_document(tmp_path / "bench.json")
    fresh = [row("m1", p50=20.0)]
    doc, rows = replace_machine(doc, rows, "m1", block("m1"), fresh)
    write_outputs(doc, rows, tmp_path)
    doc, rows = read_document(tmp_path / "bench.json")
    assert sorted(doc["machines"]) == ["m1", "m2"]
    assert [r.latency_p50_ms for r in rows if r.machine_id == "m1"] == [20.0]
    assert len([r for r in rows if r.machine_id == "m2"]) == len(machine_rows())
    csv_rows = rows_from_csv((tmp_path / "bench.csv").read_text())
    assert sorted(r.key() for r in csv_rows) == sorted(r.key() for r in rows)


def test_a_partial_bench_keeps_what_the_kept_rows_were_measured_with():
    first = block("m1")
    odd, teacher = row("m1", model="odd", p50=5.0), row("m1")
    first.update(paired=[{"candidate": odd.key_text(), "reference": teacher.key_text(), "median": 2.0}],
                 peak_gflops={"2": 90.0}, runtimes={"odd/pytorch [cpu x2]": {"a": 1}, "static/pytorch [bf16]": {}},
                 failed=[{"job": "static/pytorch [bf16]", "error": "dtype"}, {"job": "tiny/pytorch", "error": "x"}])
    doc, rows = replace_machine(new_document("tiny"), [], "m1", first, [teacher, odd])
    again = block("m1")
    again.update(paired=[], peak_gflops={"1": 40.0}, runtimes={"static/pytorch [bf16]": {"b": 2}}, failed=[])
    static = row("m1", model="static", precision="bf16", p50=0.1)
    doc, rows = replace_machine(doc, rows, "m1", again, [static], keep=lambda r: r.model != "static",
                                ran={"static/pytorch [bf16]"})
    now = doc["machines"]["m1"]
    assert [p["candidate"] for p in now["paired"]] == [odd.key_text()]       # the kept row's timing stays
    assert now["peak_gflops"] == {"2": 90.0, "1": 40.0}
    assert now["failed"] == [{"job": "tiny/pytorch", "error": "x"}]            # the job run again succeeded
    assert now["runtimes"] == {"odd/pytorch [cpu x2]": {"a": 1}, "static/pytorch [bf16]": {"b": 2}}
    assert len(rows) == 3 and len(now["added_to"]) == 1
    # a full bench (nothing kept) carries nothing over
    doc, rows = replace_machine(doc, rows, "m1", block("m1"), [teacher])
    assert not doc["machines"]["m1"].get("paired") and not doc["machines"]["m1"].get("failed")


def test_merge_replaces_that_machine_only(tmp_path):
    results, other = tmp_path / "results", tmp_path / "gpu.json"
    doc, rows = replace_machine(new_document("tiny"), [], "m1", block("m1"), machine_rows("m1"))
    doc, rows = replace_machine(doc, rows, "gpu", block("gpu"), [row("gpu", p50=1.0)])
    write_outputs(doc, rows, results)
    gpu_rows = [row("gpu", p50=0.5), row("gpu", p50=0.5, precision="fp16")]
    gdoc, grows = replace_machine(new_document("tiny"), [], "gpu", block("gpu"), gpu_rows)
    other.write_text(json.dumps(document(gdoc, grows)))
    assert merge_bench_file(other, results) == ["gpu"]
    doc, rows = read_document(results / "bench.json")
    assert sorted(r.latency_p50_ms for r in rows if r.machine_id == "gpu") == [0.5, 0.5]
    assert len([r for r in rows if r.machine_id == "m1"]) == len(machine_rows())
    bad = tmp_path / "other-run.json"
    bad.write_text(json.dumps({**document(gdoc, grows), "run": "another"}))
    with pytest.raises(BenchFileError, match="run 'another'"):
        merge_bench_file(bad, results)


@pytest.mark.parametrize("content, match", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"schema_version": 1, "run": "x", "provenance": {}, "models": {}}), "is not a bench result file"),
    (json.dumps({"schema_version": 7, "run": "x", "machines": {}, "rows": []}), "schema_version 7"),
    (json.dumps({"schema_version": 1, "run": "x", "machines": {}, "rows": [{"model": "teacher"}]}), "rows\\[0\\]"),
])
def test_bad_file_gives_clear_error(tmp_path, content, match):
    path = tmp_path / "bench.json"
    path.write_text(content)
    with pytest.raises(BenchFileError, match=match) as err:
        load_or_new(path, "x")
    assert str(path) in str(err.value) and "--force-new" in str(err.value)
    doc, rows = load_or_new(path, "x", force_new=True)
    assert rows == [] and not path.exists()
    assert len(list(tmp_path.glob("bench.json.corrupt-*"))) == 1


def test_report_has_table_and_best_per_goal():
    doc, rows = replace_machine(new_document("tiny"), [], "m1", block("m1"), machine_rows())
    doc["machines"]["m1"]["repeats"] = {"|".join(str(v) for v in machine_rows()[0].key()): [10.0, 10.5]}
    add_derived(rows)
    text = render_report(document(doc, rows), rows)
    assert "| model | format | precision | runtime | size MB | macro-F1 | F1 negative" in text
    assert "p50 spread %" in text and "| 5.0 |" in text
    assert "Fastest within 1% of the teacher** (keeping >= 99%" in text and "`teacher/onnx-int8-dynamic`" in text
    assert "2.50x the teacher" in text


def test_fastest_goal_follows_the_paired_ratio_and_the_report_re_renders(tmp_path):
    from bench.launchers.process import write_outputs
    from bench.reporting.report import goal_winners, main

    rows = machine_rows() + [row("m1", model="odd", variant="onnx-int8-dynamic", runtime="onnxruntime",
                                 precision="int8", size=20.0, p50=3.9, f1=0.796)]
    add_derived(rows)
    fastest = goal_winners(rows)["fastest_1pct"]
    assert (fastest.model, fastest.latency_p50_ms) == ("odd", 3.9)         # no pairs: the lowest p50
    # Timed side by side, the teacher's INT8 export is the faster one: the separate p50s were noise.
    for r in rows:
        if r.variant == "onnx-int8-dynamic" and r.scenario == "latency":
            r.paired_speedup_vs_teacher = 2.6 if r.model == "teacher" else 2.4
    fastest = goal_winners(rows)["fastest_1pct"]
    assert (fastest.model, fastest.variant) == ("teacher", "onnx-int8-dynamic")

    doc, rows = replace_machine(new_document("tiny"), [], "m1", block("m1"), rows)
    write_outputs(doc, rows, tmp_path)
    (tmp_path / "report.md").unlink()
    assert main([str(tmp_path / "bench.json"), "--out", str(tmp_path / "again.md")]) == 0
    assert "Fastest within 1% of the teacher" in (tmp_path / "again.md").read_text()
    (tmp_path / "bad.json").write_text("{not json")
    assert main([str(tmp_path / "bad.json")]) == 2


def test_config_from_recipe_section_and_overrides():
    cfg = load_bench_config({"threads": ["all", 1], "batch_size": 16}, {"repeat": 2})
    assert cfg.threads == ["all", 1] and cfg.batch_size == 16 and cfg.repeat == 2
    quick = load_bench_config({"quick": True, "max_test": 10})
    assert quick.min_rounds == 5 and quick.max_test == 10 and quick.include_bf16 is False
    with pytest.raises(ConfigError) as err:
        load_bench_config({"threads": [0], "seq_lens": ["long"], "nope": 1})
    msg = str(err.value)
    assert "3 problem(s)" in msg and "bench.nope: unknown key" in msg and "threads" in msg and "'long'" in msg


def test_plan_covers_every_runtime_and_keeps_the_reference():
    def art(model, variant, fmt, precision="fp32"):
        return Artifact(model, variant, fmt, precision, "none", False, f"/x/{model}/{variant}", 1000, 10)
    arts = [art("teacher", "pytorch", "pytorch"), art("odd", "pytorch", "pytorch"),
            art("odd", "onnx-int8-dynamic", "onnx", "int8"), art("odd", "openvino-fp16", "openvino", "fp16")]
    hw = {"physical_cores": 4, "isa_flags": ["avx512_bf16"]}
    devices = {"pytorch": ["cpu"], "onnxruntime": ["cpu"], "openvino": ["cpu"]}
    jobs = plan_jobs(arts, load_bench_config({"threads": ["all", 1]}), devices, hw)
    labels = {(j.artifact.name, j.runtime, j.precision, j.threads) for j in jobs}
    assert ("odd/onnx-int8-dynamic", "onnxruntime", None, 4) in labels
    assert ("odd/openvino-fp16", "openvino", "bf16", 1) in labels
    assert ("teacher/pytorch", "pytorch", "bf16", 4) in labels
    assert len(jobs) == 2 * (2 + 2 + 1 + 2)
    only = plan_jobs(arts, load_bench_config({"models": ["odd"], "runtimes": ["onnxruntime"], "include_bf16": False}),
                     devices, hw)
    assert [(j.artifact.name, j.runtime, j.precision) for j in only] == [
        ("teacher/pytorch", "pytorch", "fp32"), ("odd/onnx-int8-dynamic", "onnxruntime", None)]
    with pytest.raises(ConfigError, match="not found in this run"):
        plan_jobs(arts, load_bench_config({"models": ["lora"]}), devices, hw)


def test_numpy_serves_only_the_artifacts_that_carry_a_static_model2vec_form(tmp_path):
    def art(model, variant, precision="fp32"):
        folder = tmp_path / model / variant
        folder.mkdir(parents=True)
        return Artifact(model, variant, "onnx", precision, "none", False, str(folder), 1000, 10)
    arts = [art("teacher", "onnx-fp32"), art("static", "onnx-fp32"), art("static", "onnx-int8-dynamic", "int8")]
    for name in ("model.safetensors", "head.safetensors"):
        (tmp_path / "static" / "onnx-fp32" / name).write_bytes(b"")
    devices = available_devices(["numpy", "onnxruntime"])
    assert devices["numpy"] == ["cpu"]
    jobs = plan_jobs(arts, load_bench_config({"threads": [1], "reference": False}), devices, {"physical_cores": 2})
    assert sorted((j.artifact.name, j.runtime) for j in jobs) == [
        ("static/onnx-fp32", "numpy"), ("static/onnx-fp32", "onnxruntime"),
        ("static/onnx-int8-dynamic", "onnxruntime"), ("teacher/onnx-fp32", "onnxruntime")]
    only = plan_jobs(arts, load_bench_config({"threads": [1], "reference": False, "runtimes": ["numpy"]}), devices,
                     {"physical_cores": 2})
    assert [(j.artifact.name, j.runtime, j.precision) for j in only] == [("static/onnx-fp32", "numpy", None)]


def test_pytest_benchmark_really_times(tmp_path):
    calls = []

    def make_target(case):
        def target():
            calls.append(case.seq_len)
            time.sleep(0.0005)
        return target

    cases = [Case("latency", 1, "natural", min_rounds=7), Case("throughput", 8, "16", min_rounds=3)]
    results = run_cases(cases, make_target, TimingSettings(max_time=0.02, warmup_iterations=2), tmp_path)
    lat = results[cases[0].id]
    assert lat["rounds"] >= 7 and lat["iterations"] == 1 and len(lat["data_s"]) == lat["rounds"]
    assert 0.5 <= lat["latency_min_ms"] <= lat["latency_p50_ms"] <= lat["latency_p90_ms"] <= lat["latency_p99_ms"]
    tp = results[cases[1].id]
    assert tp["throughput_per_s"] == pytest.approx(8 / (tp["latency_mean_ms"] / 1000))
    assert calls.count("natural") > lat["rounds"]       # calibration and warm-up ran too
    assert (tmp_path / "pytest-benchmark.json").is_file()


def test_document_validation_matches_schema():
    doc, rows = replace_machine(new_document("tiny"), [], "m1", block("m1"), machine_rows())
    out = json.loads(json.dumps(document(doc, rows)))
    assert set(out) == {"schema_version", "run", "machines", "rows"}
    assert set(out["machines"]["m1"]) >= {"hardware", "provenance", "bench_config", "measured_at"}
    assert len(validate_document(out)) == len(rows)
    assert all(set(KEY_COLUMNS) <= set(r) for r in out["rows"])


def test_a_rerun_keeps_the_replaced_runs_p50s_and_reports_how_far_they_agree(tmp_path, capsys):
    from edgedistill_cli.commands import main

    compare_main = lambda argv: main(["compare", *argv])
    from bench.reporting.report import run_to_run

    first = {**block("m1"), "measured_at": "2026-01-01T10:00:00+0000"}
    doc, rows = replace_machine(new_document("tiny"), [], "m1", first, machine_rows("m1"))
    doc, rows = replace_machine(doc, rows, "m2", block("m2"), machine_rows("m2"))
    assert "previous_run" not in doc["machines"]["m1"]                  # nothing to compare with yet
    write_outputs(doc, rows, tmp_path / "old")
    again = machine_rows("m1")
    again[0].latency_p50_ms = 13.0                                       # teacher: 10 -> 13 ms, a 30% spread
    second = {**block("m1"), "measured_at": "2026-01-02T10:00:00+0000"}
    doc, rows = replace_machine(doc, rows, "m1", second, again)
    prev = doc["machines"]["m1"]["previous_run"]
    assert prev["measured_at"] == first["measured_at"] and prev["git_commit"] == "abc"
    assert prev["p50"] == {r.key_text(): r.latency_p50_ms for r in machine_rows("m1")}
    assert "previous_run" not in doc["machines"]["m2"]                  # another machine's block is untouched
    spreads, origin = run_to_run(doc["machines"]["m1"], [r for r in rows if r.machine_id == "m1"])
    assert sorted(spreads)[-1] == pytest.approx(30.0) and sum(s <= 10 for s in spreads) == len(again) - 1
    assert origin.startswith("commit abc, 2026-01-01") and "differed" not in origin
    # merging the same run again does not make it its own predecessor
    redo, _ = replace_machine(doc, rows, "m1", second, again)
    assert redo["machines"]["m1"]["previous_run"] == prev
    write_outputs(doc, rows, tmp_path / "new")
    assert "Against the previous bench run on this machine" in (tmp_path / "new" / "report.md").read_text()

    out = tmp_path / "repeat.md"
    assert compare_main([str(tmp_path / "old" / "bench.json"), str(tmp_path / "new" / "bench.json"),
                         "--machine", "m1", "--out", str(out)]) == 0
    text = out.read_text()
    assert f"{len(again) - 1} of {len(again)} (median spread 0.0%, worst 30%)" in text
    assert "| teacher/pytorch | pytorch | fp32 | 2 | latency | natural | 10.000 | 13.000 | 30.0 |" in text
    assert compare_main([str(tmp_path / "old" / "bench.json"), str(tmp_path / "new" / "bench.json"),
                         "--machine", "m9"]) == 2
    assert "machine 'm9' is not in both files" in capsys.readouterr().err


def test_a_second_file_from_the_same_machine_adds_its_rows_with_add(tmp_path):
    from bench.launchers.process import merge_bench_file

    def write(name, rows, failed):
        doc = new_document("tiny")
        doc["machines"]["gpu1"] = {**block("gpu1"), "failed": failed}
        (tmp_path / name).write_text(json.dumps(document(doc, rows)))
        return tmp_path / name

    torch_rows = [row("gpu1"), row("gpu1", model="odd", p50=5.0)]
    ort_rows = [row("gpu1", variant="onnx-fp32", runtime="onnxruntime", p50=2.0)]
    first, second = write("a.json", torch_rows, [{"job": "lora", "error": "deadline"}]), write("b.json", ort_rows, [])
    results = tmp_path / "results"
    merge_bench_file(first, results)
    merge_bench_file(second, results, add=True)
    doc, rows = read_document(results / "bench.json")
    assert sorted(r.artifact for r in rows) == ["odd/pytorch", "teacher/onnx-fp32", "teacher/pytorch"]
    assert doc["machines"]["gpu1"]["failed"] == [{"job": "lora", "error": "deadline"}]
    assert len(doc["machines"]["gpu1"]["added_to"]) == 1
    merge_bench_file(second, results)                        # without --add the file replaces the machine
    assert [r.artifact for r in read_document(results / "bench.json")[1]] == ["teacher/onnx-fp32"]


def test_the_report_never_writes_over_its_input_or_a_json(tmp_path, capsys):
    from bench.reporting.report import main

    doc, rows = replace_machine(new_document("tiny"), [], "m1", block("m1"), machine_rows())
    write_outputs(doc, rows, tmp_path)
    data = (tmp_path / "bench.json").read_text()
    for out in ("bench.json", "other.json", "./bench.json"):
        assert main([str(tmp_path / "bench.json"), "--out", str(tmp_path / out)]) == 2
        assert "refused" in capsys.readouterr().err
    assert (tmp_path / "bench.json").read_text() == data and not (tmp_path / "other.json").exists()


def test_errors_about_a_file_that_is_only_read_do_not_offer_force_new(tmp_path, capsys):
    from bench.reporting.report import main

    bad = tmp_path / "gpu.json"
    bad.write_text(json.dumps({"schema_version": 1, "run": "x", "models": {}}))
    with pytest.raises(BenchFileError) as err:
        merge_bench_file(bad, tmp_path / "results")
    assert "is not a bench result file" in str(err.value) and "--force-new" not in str(err.value)
    assert main([str(bad)]) == 2
    assert "--force-new" not in capsys.readouterr().err


def test_a_partial_bench_replaces_only_the_precisions_it_ran():
    from bench.launchers.process import outside_jobs
    from bench.plan import Artifact, Job

    teacher = Artifact("teacher", "pytorch", "pytorch", "fp32", "none", False, "x", 1, 1)
    keep = outside_jobs([Job(teacher, "pytorch", "cpu", "fp32", 2)], {"teacher/pytorch"})
    assert not keep(row("m1", precision="fp32"))                  # the reference job measured it again
    assert keep(row("m1", precision="bf16"))                      # the teacher's BF16 rows stay
    assert keep(row("m1", precision="fp32", threads=1))           # as do other thread counts
    int8 = Artifact("teacher", "onnx-int8-dynamic", "onnx", "int8", "dynamic", False, "y", 1, 1)
    keep = outside_jobs([Job(int8, "onnxruntime", "cpu", None, 2)])
    assert not keep(row("m1", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8"))
