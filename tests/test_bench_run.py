"""The bench on a tiny run folder: every backend agrees, a quick run writes schema-valid
results, a re-run replaces only this machine's rows, the CLI contract holds."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import LABELS, make_tiny_model, make_tokenizer, tiny_texts

RUN = "tiny"


def make_tiny_run(root: Path, methods=("teacher", "odd"), exports=()) -> Path:
    """runs/<run>/ with checkpoints (+ edgedistill.json), recipe.yaml on a small CSV, and the
    requested export variants of the teacher, made by the export stage itself."""
    run = root / "runs" / RUN
    texts, labels = tiny_texts(150)
    csv = root / "tiny.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(csv, index=False)
    recipe = {"run": {"name": RUN, "runs_dir": str(root / "runs"), "results_dir": str(root / "results")},
              "data": {"source": "file", "path": str(csv), "text_column": "text", "label_column": "label",
                       "labels": LABELS, "max_length": 32},
              "bench": {"quick": True, "threads": [1]}}
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    tok = make_tokenizer(root / "vocab")
    for i, method in enumerate(methods):
        model = make_tiny_model("bert", num_layers=2 if method == "teacher" else 1, vocab_size=len(tok), seed=i)
        folder = run / "models" / method
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        n = sum(p.numel() for p in model.parameters())
        (folder / "edgedistill.json").write_text(json.dumps({
            "schema_version": 1, "method": method, "label_names": LABELS, "teacher_source": "tiny",
            "layers": None, "lora": None, "params_total": n, "params_trainable": n, "recipe": recipe,
            "provenance": {}}))
    if exports:
        from export.config import load_export_config
        from export.pipeline import export_run

        export_run(run, load_export_config({"models": ["teacher"], "variants": list(exports), "parity_samples": 8}),
                   log=lambda *a: None)
    return run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return make_tiny_run(tmp_path_factory.mktemp("bench"), exports=("onnx-fp32", "openvino-fp32"))


def test_every_backend_agrees_with_pytorch(tiny_run):
    from edgedistill.runtime import RUNTIMES

    texts = tiny_texts(12, seed=3)[0]
    folders = {"pytorch": tiny_run / "models" / "teacher",
               "onnxruntime": tiny_run / "artifacts" / "teacher" / "onnx-fp32",
               "openvino": tiny_run / "artifacts" / "teacher" / "openvino-fp32"}
    logits = {}
    for name, folder in folders.items():
        rt = RUNTIMES[name].load(folder, threads=1, precision="fp32" if name != "onnxruntime" else None)
        logits[name] = rt.forward(rt.encode(texts))
        fixed = rt.encode(texts[:2], pad_to=16)
        assert fixed["input_ids"].shape == (2, 16)
        assert rt.describe()["runtime"] == name
    for name in ("onnxruntime", "openvino"):
        np.testing.assert_allclose(logits[name], logits["pytorch"], atol=1e-4)


def test_quick_bench_writes_schema_valid_results(tiny_run, tmp_path):
    from bench.launchers.process import run_bench
    from bench.schema import read_document, rows_from_csv
    from edgedistill.provenance import hardware

    results = tmp_path / "results"
    outcome = run_bench(tiny_run, results_dir=results, progress=False)
    assert outcome.failures == []
    doc, rows = read_document(results / "bench.json")
    mid = hardware()["machine_id"]
    assert list(doc["machines"]) == [mid] and doc["run"] == RUN
    assert set(doc["machines"][mid]) >= {"hardware", "provenance", "bench_config", "measured_at"}
    assert doc["machines"][mid]["bench_config"]["quick"] is True
    combos = {(r.artifact, r.runtime) for r in rows}
    assert combos == {("teacher/pytorch", "pytorch"), ("odd/pytorch", "pytorch"),
                      ("teacher/onnx-fp32", "onnxruntime"), ("teacher/openvino-fp32", "openvino")}
    # text -> label at batch 1 and batched, 2 forward latency lengths + 1 forward throughput per artifact x runtime
    assert len(rows) == 4 * 5
    for r in rows:
        assert r.latency_p50_ms > 0 and r.rounds >= (5 if r.scenario == "latency" else 3)
        assert r.latency_min_ms <= r.latency_p50_ms <= r.latency_p90_ms <= r.latency_p99_ms
        assert r.peak_rss_mb > 10 and r.load_s > 0 and r.size_mb > 0 and r.params > 0
        assert set(r.per_class) == set(LABELS) and 0 <= r.macro_f1 <= 1
        assert r.threads == 1 and r.speedup_vs_teacher is not None and r.f1_retained_pct is not None
    by = {(r.artifact, r.scenario, r.seq_len): r for r in rows}
    ref = by[("teacher/pytorch", "latency", "natural")]
    assert ref.speedup_vs_teacher == pytest.approx(1.0) and ref.f1_retained_pct == pytest.approx(100.0)
    # the same model through three runtimes: same predictions on the test split
    assert by[("teacher/onnx-fp32", "latency", "natural")].macro_f1 == pytest.approx(ref.macro_f1)
    assert by[("teacher/openvino-fp32", "latency", "natural")].macro_f1 == pytest.approx(ref.macro_f1)
    assert by[("teacher/openvino-fp32", "latency", "16")].options == "infer=fp32,hint=latency,streams=1"
    assert by[("teacher/onnx-fp32", "latency", "16")].size_ratio_vs_fp32 == pytest.approx(1.0)
    assert by[("teacher/pytorch", "throughput", "natural")].batch_size == 4
    # each worker reports its own peak: an ONNX Runtime worker never imports torch
    assert by[("teacher/onnx-fp32", "latency", "16")].peak_rss_mb < 0.75 * ref.peak_rss_mb
    assert rows_from_csv((results / "bench.csv").read_text()) == rows
    # the machine's own bandwidth, probed before and after the job that measured each row
    probes = doc["machines"][mid]["bandwidth_gbs"]
    assert set(probes) == {r.key_text() for r in rows}
    assert all(len(p) == 2 and min(p) > 0.1 for p in probes.values())
    report = (results / "report.md").read_text()
    assert "Best artifact per goal" in report and "teacher/onnx-fp32" in report
    # trust: contention per row, the machine's peak and each row's FLOPs, paired headline ratios
    block = doc["machines"][mid]
    assert doc["schema_version"] == 3
    assert all(r.other_cpu_pct is not None and r.disturbed in (True, False) for r in rows)
    assert block["peak_gflops"]["1"]["fp32"] > 0 and block["peak_gflops"]["1"]["int8"] > 0
    assert all(r.gflop_per_call > 0 and r.floor_ms > 0 and r.pct_of_peak > 0 for r in rows)
    assert by[("teacher/pytorch", "latency", "16")].gflop_per_call < by[("teacher/pytorch", "throughput",
                                                                          "natural")].gflop_per_call
    pairs = block["paired"]
    assert pairs and all(p["reference_kind"] == "teacher_fp32" and p["blocks"] == 4 for p in pairs)
    cand = by[("teacher/onnx-fp32", "text-latency", "natural")]        # paired on what the user gets
    assert cand.paired_speedup_vs_teacher_low <= cand.paired_speedup_vs_teacher <= cand.paired_speedup_vs_teacher_high
    assert by[("teacher/onnx-fp32", "latency", "natural")].paired_speedup_vs_teacher is None
    # text -> label: the same texts as forward-only, with the tokenizer's own p50 beside it
    for r in rows:
        if r.scenario == "text-latency":
            assert 0 < r.tokenize_ms < r.latency_p50_ms
        else:
            assert r.tokenize_ms is None
    assert by[("teacher/onnx-fp32", "text-throughput", "natural")].batch_size == 4
    assert "text -> label" in report and "tokenizer %" in report
    assert "Paired headline ratios" in report and "Distance to the limit" in report and "Contention" in report


def test_rerun_through_cli_replaces_only_this_machines_rows(tiny_run, tmp_path, capsys):
    from test_bench_schema import block, row

    import edgedistill_cli.commands as edgedistill
    from bench.schema import document, read_document, replace_machine

    # A copy of the run with one broken export: its job fails, the others are still written.
    run = tmp_path / "runs" / RUN
    shutil.copytree(tiny_run, run)
    broken = run / "artifacts" / "teacher" / "onnx-broken"
    shutil.copytree(run / "artifacts" / "teacher" / "onnx-fp32", broken)
    (broken / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "variant": "onnx-broken"}))
    results = tmp_path / "results"
    results.mkdir()
    foreign = [row("other-box", p50=3.0), row("other-box", variant="onnx-fp32", runtime="onnxruntime")]
    from edgedistill.provenance import hardware

    mid = hardware()["machine_id"]
    stale = [row(mid, model="odd", variant="onnx-int8-static", runtime="onnxruntime", precision="int8")]
    doc, rows = replace_machine({"schema_version": 1, "run": RUN, "machines": {}, "rows": []}, [], "other-box",
                                block("other-box"), foreign)
    doc, rows = replace_machine(doc, rows, mid, block(mid), stale)
    (results / "bench.json").write_text(json.dumps(document(doc, rows)))

    # One ONNX Runtime job (no teacher reference): the cheapest re-run there is.
    rc = edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--variants",
                           "onnx-fp32,onnx-broken", "--runtimes", "onnxruntime", "--set", "bench.reference=false",
                           "--seq-lens", "natural", "--no-progress"])
    assert rc == 1                                   # some jobs failed; the rest were written
    captured = capsys.readouterr()
    assert "bench config" in captured.out and "threads:" in captured.out and "rows for machine" in captured.out
    assert "FAILED teacher/onnx-broken" in captured.err
    doc, rows = read_document(results / "bench.json")
    assert sorted(doc["machines"]) == sorted(["other-box", mid])
    kept = sorted((r.key(), r.latency_p50_ms, r.macro_f1) for r in rows if r.machine_id == "other-box")
    assert kept == sorted((r.key(), r.latency_p50_ms, r.macro_f1) for r in foreign)
    mine = [r for r in rows if r.machine_id == mid]
    assert {(r.artifact, r.scenario, r.seq_len) for r in mine} == {
        ("teacher/onnx-fp32", s, "natural") for s in ("text-latency", "latency", "text-throughput", "throughput")}
    assert all(r.speedup_vs_teacher is None for r in mine)   # no teacher PyTorch row on this machine now
    assert [f["job"] for f in doc["machines"][mid]["failed"]] == ["teacher/onnx-broken [onnxruntime/cpu x1]"]
    assert "1 job(s) failed" in (results / "report.md").read_text()


def test_cli_errors_are_one_paragraph_and_exit_2(tiny_run, tmp_path, capsys):
    import edgedistill_cli.commands as edgedistill

    results = tmp_path / "results"
    results.mkdir()
    (results / "bench.json").write_text(json.dumps({"schema_version": 1, "run": RUN, "models": {}}))
    assert edgedistill.main(["bench", "--run", str(tiny_run), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "is not a bench result file" in err and "--force-new" in err and str(results / "bench.json") in err
    assert edgedistill.main(["bench", "--run", str(tmp_path / "missing")]) == 2
    assert "recipe.yaml is missing" in capsys.readouterr().err
    assert edgedistill.main(["bench", "--run", str(tiny_run), "--models", "nope", "--results", str(tmp_path)]) == 2
    assert "not found in this run" in capsys.readouterr().err


def test_peak_memory_is_the_workers_own_not_its_parents():
    """ru_maxrss carries a parent's peak over fork + exec; the bench must not report that."""
    import subprocess
    import sys

    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])          # touch every page: 400 MB resident here
    code = "from bench.scenarios.memory import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=Path(__file__).resolve().parents[1]).stdout)
    from bench.scenarios.memory import peak_rss_mb

    assert 1 < child < 200 < 400 < peak_rss_mb()
    del ballast


def test_a_worker_answer_of_the_wrong_shape_is_one_failed_job():
    from bench.launchers.process import add_metrics

    inputs = {"test_labels": [0, 1, 2], "label_names": list(LABELS)}
    bad = add_metrics({"ok": True, "probs": [[1.0, 0.0, 0.0]] * 2}, inputs)       # 2 rows for 3 texts
    assert bad["ok"] is False and "shape (2, 3) for 3 test texts" in bad["error"]
    good = add_metrics({"ok": True, "probs": [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]}, inputs)
    assert good["ok"] and good["metrics"]["accuracy"] == 1.0


def test_bandwidth_probe_reads_a_plausible_rate():
    from bench.scenarios.probe import BandwidthProbe, change_pct

    assert 0.1 < BandwidthProbe(mb=16).gbs(0.02) < 10_000
    assert change_pct(10.0, 12.0) == pytest.approx(20.0) == change_pct(12.0, 10.0)


def test_the_bench_stage_is_skipped_only_for_rows_measured_after_their_artifacts(tiny_run, tmp_path):
    import os

    from bench.plan import discover
    from edgedistill.provenance import hardware
    from edgedistill_cli.orchestrate import bench_is_current

    artifacts, _ = discover(tiny_run)
    mid, results = hardware()["machine_id"], tmp_path / "results"
    results.mkdir()

    def bench_file(measured_at: str, machine: str = mid, skip: int = 0) -> None:
        # Rows as the bench writes them (the skip decision reads them through bench's own loader).
        rows = [{"artifact": a.name, "machine_id": machine, "machine_label": "", "run": RUN, "model": a.model,
                 "variant": a.variant, "format": a.format, "precision": a.precision, "quantization": a.quantization,
                 "trimmed_vocab": a.trimmed_vocab, "runtime": "onnxruntime",
                 "device": "cpu", "threads": 1, "options": "", "scenario": "latency", "batch_size": 1,
                 "seq_len": "natural", "measured_at": measured_at} for a in artifacts[skip:]]
        doc = {"schema_version": 1, "run": RUN, "machines": {machine: {"hardware": {}}}, "rows": rows}
        (results / "bench.json").write_text(json.dumps(doc))

    bench_file("2999-01-01T00:00:00+0000")
    assert bench_is_current(tiny_run, results)
    bench_file("2999-01-01T00:00:00+0000", skip=1)                     # one artifact never measured
    assert not bench_is_current(tiny_run, results)
    bench_file("2999-01-01T00:00:00+0000", machine="another-machine")   # another machine's rows do not count
    assert not bench_is_current(tiny_run, results)
    bench_file("2000-01-01T00:00:00+0000")                              # rows older than the artifacts
    assert not bench_is_current(tiny_run, results)
    (results / "bench.json").write_text('{"rows": []}')                  # not a bench file: measure again
    assert not bench_is_current(tiny_run, results)
    # a model exported again after its rows were measured makes them stale
    bench_file("2030-01-01T00:00:00+0000")
    later = sorted(Path(artifacts[-1].folder).iterdir())[0]
    stamp = later.stat().st_mtime
    os.utime(later, (stamp, 2000000000.0))                               # 2033, after the rows
    try:
        assert not bench_is_current(tiny_run, results)
    finally:
        os.utime(later, (stamp, stamp))


def test_a_corrupt_manifest_is_named_and_fails_only_where_selected(tiny_run, tmp_path, capsys):
    """A manifest.json that is not JSON (a disk error, a hand edit) is skipped with a warning that
    names the file; it counts as a failed artifact only when the filters select it."""
    import edgedistill_cli.commands as edgedistill
    from bench.plan import discover

    run = tmp_path / "runs" / RUN
    shutil.copytree(tiny_run, run)
    bad = run / "artifacts" / "teacher" / "openvino-fp32" / "manifest.json"
    bad.write_text('{"schema_version": 1, "model": ')
    (run / "models" / "odd" / "edgedistill.json").write_text("")
    found, notes = discover(run)
    assert {a.name for a in found} == {"teacher/pytorch", "teacher/onnx-fp32"}
    assert any(str(bad) in n and "not valid JSON" in n for n in notes)
    assert any(str(run / "models" / "odd" / "edgedistill.json") in n for n in notes)

    one_job = ["--runtimes", "onnxruntime", "--set", "bench.reference=false", "--seq-lens", "natural", "--no-progress"]
    results = tmp_path / "results"
    # filtered out: a warning, the bench goes on and succeeds
    assert edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--variants", "onnx-fp32",
                             *one_job]) == 0
    assert str(bad) in capsys.readouterr().out
    # selected (with another that works): one failed artifact, named with its file
    assert edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--variants",
                             "onnx-fp32,openvino-fp32", *one_job]) == 1
    assert f"FAILED teacher/openvino-fp32: {bad}" in capsys.readouterr().err
    failed = json.loads((results / "bench.json").read_text())["machines"]
    assert [f["job"] for m in failed.values() for f in m["failed"]] == ["teacher/openvino-fp32"]
    # selected alone: nothing to measure, and the error says why
    assert edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--variants", "openvino-fp32",
                             *one_job]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_run_exits_non_zero_naming_the_failed_bench_jobs(tiny_run, tmp_path, monkeypatch, capsys):
    import bench.launchers.process
    import edgedistill_cli.commands as edgedistill
    from bench.launchers.process import BenchOutcome

    recipe = yaml.safe_load((tiny_run / "recipe.yaml").read_text())
    recipe["run"].update(runs_dir=str(tiny_run.parent), results_dir=str(tmp_path / "results"))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    failures = [{"job": "teacher/onnx-fp32 [onnxruntime/cpu x1]", "error": "the worker process died", "log": ""}]
    monkeypatch.setattr(bench.launchers.process, "run_bench", lambda *a, **k: BenchOutcome(tmp_path, "m", [], failures))
    monkeypatch.setattr("distill.pipeline.write_results", lambda recipe: None)
    assert edgedistill.main(["run", str(path), "--stages", "bench", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1 bench job(s) failed" in err and "teacher/onnx-fp32 [onnxruntime/cpu x1]: the worker process died" in err


def test_a_filtered_bench_replaces_only_the_rows_it_measured(tiny_run, tmp_path, monkeypatch):
    """`--variants onnx-fp32 --runtimes onnxruntime` re-measures one artifact: the machine's rows of the
    other artifacts (and of other thread counts) stay as they were. The scratch folder a killed bench
    left in the temporary folder is removed, and this bench leaves none."""
    import socket
    import subprocess
    import sys
    import tempfile

    from test_bench_schema import block, row

    import edgedistill_cli.commands as edgedistill
    from bench.schema import document, read_document, replace_machine
    from edgedistill.provenance import hardware

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = scratch / f"edgedistill-bench-pid{dead.pid}@{socket.gethostname()}.k1ll3d"
    stale.mkdir()
    (stale / "inputs.json").write_text("{}")

    mid = hardware()["machine_id"]
    results = tmp_path / "results"
    results.mkdir()
    old = [row(mid, threads=1, p50=11.0), row(mid, model="odd", threads=1, p50=7.0),
           row(mid, variant="openvino-fp32", runtime="openvino", threads=1, p50=6.0),
           row(mid, variant="onnx-fp32", runtime="onnxruntime", threads=1, p50=99.0, seq_len="64"),
           row(mid, variant="onnx-fp32", runtime="onnxruntime", threads=4, p50=3.0)]
    doc, rows = replace_machine({"schema_version": 2, "run": RUN, "machines": {}, "rows": []}, [], mid,
                                block(mid), old)
    (results / "bench.json").write_text(json.dumps(document(doc, rows)))
    assert edgedistill.main(["bench", "--run", str(tiny_run), "--results", str(results), "--variants", "onnx-fp32",
                             "--runtimes", "onnxruntime", "--set", "bench.reference=false", "--seq-lens", "natural",
                             "--threads", "1", "--no-progress"]) == 0
    doc, rows = read_document(results / "bench.json")
    by = {(r.artifact, r.threads, r.seq_len, r.scenario): r.latency_p50_ms for r in rows}
    assert by[("teacher/pytorch", 1, "natural", "latency")] == 11.0
    assert by[("odd/pytorch", 1, "natural", "latency")] == 7.0
    assert by[("teacher/openvino-fp32", 1, "natural", "latency")] == 6.0
    assert by[("teacher/onnx-fp32", 4, "natural", "latency")] == 3.0            # another thread count: kept
    assert ("teacher/onnx-fp32", 1, "64", "latency") not in by                 # the job it ran: replaced
    assert by[("teacher/onnx-fp32", 1, "natural", "latency")] != 99.0
    assert len(rows) == 4 + 4 and len(doc["machines"][mid]["added_to"]) == 1
    assert list(scratch.iterdir()) == []


def test_a_damaged_artifact_or_checkpoint_is_not_timed(tiny_run, tmp_path, capsys):
    import edgedistill_cli.commands as edgedistill
    from bench.schema import read_document

    run = tmp_path / "runs" / RUN
    shutil.copytree(tiny_run, run)
    model = run / "artifacts" / "teacher" / "onnx-fp32" / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF                                   # same size: the sha256 tells
    model.write_bytes(bytes(data))
    results = tmp_path / "results"
    rc = edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--variants",
                           "onnx-fp32,openvino-fp32", "--set", "bench.reference=false", "--seq-lens", "natural",
                           "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "FAILED teacher/onnx-fp32" in err and "onnx/model.onnx: sha256 differs from the one in manifest.json" in err
    assert "--force" in err
    doc, rows = read_document(results / "bench.json")
    assert {r.artifact for r in rows} == {"teacher/openvino-fp32"}
