"""The README results block is generated from result files: every number traces back to them."""
from test_dashboard import RUN, write_results

from tools.readme_results import END, START, build, replace_block


def test_summary_is_built_from_the_result_files(tmp_path):
    root = tmp_path / "results"
    write_results(root)
    block = build(RUN, root)
    assert "### Accuracy on the test split" in block and "### Export" in block and "### Speed on this CPU" in block
    assert (root / RUN / "tradeoff.png").stat().st_size > 1000
    assert "keeps" in block and "% of the teacher" in block


def test_gpu_rows_are_shown_beside_the_cpu_rows_with_their_provenance(tmp_path):
    from bench.schema import read_document
    from tools.readme_results import cpu_and_gpu

    root = tmp_path / "results"
    write_results(root)
    block = build(RUN, root)
    assert "### CPU and GPU side by side: Laptop CPU x4" in block and "NVIDIA T4" in block
    assert "No GPU rows yet" not in block and "Measured with bench/launchers/gpu/run.py on a rented T4." in block
    doc, rows = read_document(root / RUN / "bench.json")
    text = "\n".join(cpu_and_gpu(RUN, doc, rows, root))
    table = [line for line in text.splitlines() if line.startswith("| teacher |")]
    assert len(table) == 1 and table[0].count("|") == 11
    doc["machines"] = {k: v for k, v in doc["machines"].items() if not v["hardware"]["gpus"]}
    assert cpu_and_gpu(RUN, doc, [r for r in rows if r.machine_id in doc["machines"]], root) == []


def test_readme_block_is_replaced_between_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    replace_block(readme, "new block\n")
    assert readme.read_text() == f"intro\n{START}\nnew block\n{END}\noutro\n"


def test_a_target_counts_as_met_only_when_every_timing_pass_meets_it():
    from test_bench_schema import row

    from bench.reporting.derive import add_derived
    from tools.readme_results import _ratios, repeat_spreads

    base = row(p50=10.0)                                                     # teacher PyTorch FP32
    fast = row(model="odd", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", p50=0.5, f1=0.8)
    rows = [base, fast]
    add_derived(rows)
    # first pass: 20x; second pass: the teacher ran faster, 10x
    repeats = {base.key_text(): [10.0, 5.0], fast.key_text(): [0.5, 0.5]}
    table = "\n".join(_ratios(rows, rows, repeats, threads=2))
    assert "20.0x (other pass: 10.0x) | >= 12x | **no** |" in table
    assert "2 of 2" not in table and "1 of 2 (median spread 100.0%" in table   # 5 -> 10 is a 100% spread
    steady = {base.key_text(): [10.0, 9.5], fast.key_text(): [0.5, 0.52]}
    table = "\n".join(_ratios(rows, rows, steady, threads=2))
    assert "20.0x (other pass: 18.3x) | >= 12x | yes |" in table
    assert "0.500 ms (other pass: 0.520 ms) | <= 0.5 ms | **no** |" in table   # the slower pass misses 0.5 ms
    assert repeat_spreads(steady, threads=1) == []                          # other thread counts are left out


def test_paired_ratios_lead_with_their_interval_and_both_runs_must_meet_the_target():
    from test_bench_schema import row

    from bench.reporting.derive import add_derived
    from tools.readme_results import _ratios

    base = row(p50=10.0)
    slow = row(model="odd", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", p50=0.45, f1=0.8)
    fast = row(model="tiny", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", p50=0.4, f1=0.8)
    rows = [base, slow, fast]
    add_derived(rows)
    # the paired ratios, not the separate rows' p50s, pick the headline: odd wins when paired
    slow.paired_speedup_vs_teacher, slow.paired_speedup_vs_teacher_low, slow.paired_speedup_vs_teacher_high = \
        14.0, 13.0, 15.0
    slow.paired_speedup_vs_teacher_int8, slow.paired_speedup_vs_teacher_int8_low = 3.5, 3.2
    slow.paired_speedup_vs_teacher_int8_high = 3.8
    fast.paired_speedup_vs_teacher, fast.paired_speedup_vs_teacher_low, fast.paired_speedup_vs_teacher_high = \
        12.5, 11.0, 13.0
    table = "\n".join(_ratios(rows, rows, {}, threads=2))
    assert "`odd/onnx-int8-dynamic` (onnxruntime) over teacher PyTorch FP32" in table
    assert "| 14.0x [13.0, 15.0] | >= 12x | yes |" in table and "| 3.5x [3.2, 3.8] | >= 3x | yes |" in table
    assert "0.450 ms | <= 0.5 ms | yes |" in table and "previous bench run" not in table
    # a previous run of 11.8x: the same target now fails, and the run-to-run line counts the spreads
    block = {"previous_run": {"paired": {
        f"{slow.key_text()}|paired_speedup_vs_teacher": [11.8, 11.0, 12.5],
        f"{slow.key_text()}|paired_speedup_vs_teacher_int8": [3.4, 3.1, 3.7],
        f"{fast.key_text()}|paired_speedup_vs_teacher": [12.4, 11.9, 13.0]}}}
    table = "\n".join(_ratios(rows, rows, {}, threads=2, block=block))
    assert "| 14.0x [13.0, 15.0]; previous run 11.8x [11.0, 12.5] | >= 12x | **no** |" in table
    assert "| 3.5x [3.2, 3.8]; previous run 3.4x [3.1, 3.7] | >= 3x | yes |" in table
    assert "within 10% | 2 of 3 (worst 18.6%) | all | **no** |" in table


def test_drift_note_splits_rows_by_how_much_the_machine_moved_during_their_job():
    from test_bench_schema import row

    from bench.reporting.report import drift_note

    a, b = row(p50=10.0), row(model="odd", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8",
                              p50=1.0)
    block = {"repeats": {a.key_text(): [10.0, 10.5], b.key_text(): [1.0, 1.3]},
             "bandwidth_gbs": {a.key_text(): [8.0, 8.4], b.key_text(): [6.0, 12.0]}}
    note = drift_note(block, threads=2)
    assert "read 6.0 to 12.0 GB/s over the run (2.0x)" in note
    assert "1 of 1 where the probe moved 10% or less" in note
    assert "0 of 1 where the probe moved more than 10%" in note
    assert drift_note(block, threads=1) == "" and drift_note({"repeats": block["repeats"]}, threads=2) == ""


def test_provenance_names_each_command_that_built_kept_artifacts(tmp_path):
    """A resumed export keeps artifacts an earlier command built: the README names both builders,
    not only the last command (export.json's top-level provenance)."""
    import json

    from test_dashboard import export_doc

    from export.report import summary_row

    root = tmp_path / "results"
    write_results(root)
    doc = export_doc()
    rows = []
    for manifest in doc["artifacts"]:
        later = manifest["model"] == "odd"
        prov = {**manifest["provenance"], "command": "edgedistill export runs/x --models odd" if later
                else "edgedistill run recipe.yaml", "git_commit": ("b" if later else "a") * 40}
        rows.append(summary_row({**manifest, "provenance": prov}, tmp_path / manifest["model"]))
    assert rows[0]["built_by"]["git_commit"] == "a" * 40 and rows[0]["built_by"]["hardware"]["logical_cores"] == 4
    doc["artifacts"] = rows
    (root / RUN / "export.json").write_text(json.dumps(doc))
    block = build(RUN, root)
    assert f"Export of {', '.join(m for m in dict.fromkeys(r['model'] for r in rows) if m != 'odd')}: " \
           f"`edgedistill run recipe.yaml` at commit `aaaaaaa`" in block
    assert "Export of odd: `edgedistill export runs/x --models odd` at commit `bbbbbbb`" in block
    # One builder: one line, naming it even where a later export kept every artifact.
    for r in rows:
        r["built_by"] = rows[0]["built_by"]
    doc["provenance"] = {**doc["provenance"], "command": "edgedistill export --run runs/x --models static"}
    (root / RUN / "export.json").write_text(json.dumps(doc))
    block = build(RUN, root)
    assert "Export of" not in block and "--models static" not in block
    assert "Export: `edgedistill run recipe.yaml` at commit `aaaaaaa`" in block
