"""The GPU pack and script, run on CPU in --smoke mode: a schema-valid bench.json that merges."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench_run import RUN, make_tiny_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    from bench.bundles.gpu_pack import pack_run

    root = tmp_path_factory.mktemp("gpu")
    run = make_tiny_run(root, methods=("teacher", "odd"))
    info = pack_run(run, root / "pack", models=["teacher"])
    return run, root / "pack", info


def test_pack_is_small_and_keeps_the_test_tokens(packed):
    from safetensors.torch import load_file

    run, pack, info = packed
    m = info["models"]["teacher"]
    assert m["weights"] == "fp16" and m["kept_vocab"] < m["vocab"] and m["params"] > 0
    inputs = json.loads((pack / "inputs.json").read_text())
    assert max(max(ids) for ids in inputs["test_ids"]) < m["kept_vocab"]
    assert [len(inputs["fixed_ids"][n]) for n in ("16", "64", "128")] == [16, 64, 128]
    weights = load_file(str(pack / "models" / "teacher" / "model.safetensors"))
    assert weights["bert.embeddings.word_embeddings.weight"].shape[0] == m["kept_vocab"]
    assert all(str(t.dtype) == "torch.float16" for t in weights.values() if t.is_floating_point())
    assert json.loads((pack / "models" / "teacher" / "config.json").read_text())["vocab_size"] == m["kept_vocab"]


def test_budget_leaves_a_model_config_only(tmp_path, packed):
    from bench.bundles.gpu_pack import pack_run

    run, pack, first = packed
    room = first["models"]["teacher"]["packed_mb"] * 1e6 + (pack / "inputs.json").stat().st_size + 64 * 1024 + 500
    info = pack_run(run, tmp_path / "pack", max_mb=room / 2**20)    # room for the teacher alone
    assert info["models"]["teacher"]["weights"] == "fp16" and info["models"]["odd"]["weights"] is None
    assert not (tmp_path / "pack" / "models" / "odd" / "model.safetensors").exists()


def test_smoke_run_writes_a_schema_valid_file_that_merges(packed, tmp_path):
    from bench.launchers.process import merge_bench_file
    from bench.schema import BenchFileError, read_document

    run, pack, _ = packed
    out = tmp_path / "gpu-bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench.launchers.gpu.run", "--pack", str(pack), "--out", str(out),
                           "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc, rows = read_document(out)
    assert doc["run"] == RUN and len(doc["machines"]) == 1
    block = next(iter(doc["machines"].values()))
    assert block["bench_config"]["smoke"] is True and "FP16" in block["transport"]
    assert {(r.artifact, r.precision, r.scenario, r.seq_len, r.options) for r in rows} == {
        ("teacher/pytorch", "fp32", "latency", "natural", ""), ("teacher/pytorch", "fp32", "latency", "16", ""),
        ("teacher/pytorch", "fp32", "throughput", "natural", ""),
        ("teacher/pytorch", "fp32", "throughput", "bucketed", "")}
    for r in rows:
        assert r.latency_p50_ms > 0 and r.rounds >= 3 and r.macro_f1 is not None and r.peak_rss_mb > 0
        assert r.speedup_vs_teacher is not None and r.size_ratio_vs_fp32 is None   # no ONNX export in this run
    # The bucketed row: one call is a pass over the whole test split, so texts/s = test texts / mean call time.
    passed = next(r for r in rows if r.seq_len == "bucketed")
    test_size = json.loads((pack / "pack.json").read_text())["test_size"]
    assert passed.batch_size == 4
    assert passed.throughput_per_s == pytest.approx(1000 * test_size / passed.latency_mean_ms)
    assert block["bucketed"]["texts"] == test_size and block["bucketed"]["multiple"] == 8
    assert all(b <= 4 and length % 8 == 0 for b, length in block["bucketed"]["shapes"])

    results = tmp_path / "results"
    with pytest.raises(BenchFileError, match="--smoke"):
        merge_bench_file(out, results)
    # As if it came from a real GPU machine: merged beside this machine's rows.
    data = json.loads(out.read_text())
    mid = next(iter(data["machines"]))
    block["bench_config"]["smoke"] = False
    data["machines"] = {"h100-box": block}
    for r in data["rows"]:
        r["machine_id"], r["device"] = "h100-box", "cuda"
    out.write_text(json.dumps(data))
    import edgedistill_cli.commands as edgedistill

    assert edgedistill.main(["bench", "--merge", str(out), "--results", str(results)]) == 0
    doc, merged = read_document(results / "bench.json")
    assert list(doc["machines"]) == ["h100-box"] and len(merged) == len(rows) and mid not in doc["machines"]
    assert "### cuda" in (results / "report.md").read_text()


def test_the_gpu_runner_reads_a_verified_bundle(packed, tmp_path):
    """A bundle carries the GPU pack; the runner verifies it, then measures (smoke mode on CPU)."""
    from bench.bundles.spec import BundleError
    from bench.launchers.bundle import bench_bundle
    from bench.schema import read_document

    run = packed[0]
    import edgedistill_cli.commands as edgedistill

    assert edgedistill.main(["bundle", "--run", str(run), "--out", str(tmp_path / "bundle"), "--gpu-only",
                             "--max-test", "10"]) == 0
    info = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert info["gpu"]["models"]["teacher"]["weights"] == "fp16" and info["artifacts"] == []
    assert "gpu/models/teacher/model.safetensors" in info["files"] and info["gpu"]["test_size"] == 10
    out = tmp_path / "gpu-bench.json"
    cmd = [sys.executable, "-m", "bench.launchers.gpu.run", "--bundle", str(tmp_path / "bundle"), "--out", str(out),
           "--smoke"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc, rows = read_document(out)
    assert {r.model for r in rows} == {"teacher", "odd"} and all(r.device == "cpu" for r in rows)
    assert next(iter(doc["machines"].values()))["bundle"]["test_size"] == 10

    with pytest.raises(BundleError, match="only the GPU pack"):
        bench_bundle(tmp_path / "bundle", tmp_path / "cpu.json")

    weights = tmp_path / "bundle" / "gpu" / "models" / "odd" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "gpu/models/odd/model.safetensors: " in proc.stderr
    assert "bundle.json says" in proc.stderr and "truncated" in proc.stderr


def test_bucket_batches_cover_every_text_once_padded_to_its_bucket():
    import random

    from bench.scenarios.throughput import bucket_batches, describe

    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(1000)] + [5] * 40     # ties at length 5
    order = list(range(len(lengths)))
    rng.shuffle(order)
    buckets = bucket_batches(lengths, 256, 16, order=order, max_length=128)
    seen = [i for b in buckets for i in b.indices]
    assert sorted(seen) == list(range(len(lengths)))                   # every text exactly once
    assert [len(b.indices) for b in buckets] == [256, 256, 256, 256, 16]   # full batches, one partial last
    for b in buckets:
        longest = max(lengths[i] for i in b.indices)
        assert b.length % 16 == 0 and longest <= b.length < longest + 16   # padded only to its bucket
    assert [lengths[i] for i in seen] == sorted(lengths)               # shortest first
    rank = {i: r for r, i in enumerate(order)}
    fives = [i for i in seen if lengths[i] == 5]
    assert fives == sorted(fives, key=rank.get)                         # ties in the given (seeded) order
    assert bucket_batches(lengths, 256, 16, order=order, max_length=128) == buckets
    assert bucket_batches(lengths, 256, 16, order=order[::-1], max_length=128) != buckets
    info = describe(buckets, lengths)
    assert info["texts"] == len(lengths) and info["batches"] == 5 and len(info["shapes"]) <= 9
    padded_to_longest = 100 * (1 - sum(lengths) / (len(lengths) * max(lengths)))
    assert 0 < info["padding_pct"] < padded_to_longest

    # The model's limit caps the rounding; multiple 1 pads to each batch's own longest text.
    assert [b.length for b in bucket_batches([40, 126], 1, 48, max_length=128)] == [48, 128]
    assert [b.length for b in bucket_batches([7, 3, 9], 2, 1)] == [7, 9]
    with pytest.raises(ValueError, match="batch_size: 0.*multiple: 0.*not a permutation"):
        bucket_batches([3, 4], 0, 0, order=[0, 0])


def test_bucketed_batches_carry_the_test_tokens_exactly(packed):
    from bench.launchers.gpu.run import make_batch, pass_batches, pass_buckets

    _, pack, info = packed
    inputs = json.loads((pack / "inputs.json").read_text())
    s = {"batch_size": 4, "bucket_multiple": 8}
    buckets = pass_buckets(inputs, json.loads((pack / "pack.json").read_text()), s)
    batches = pass_batches(inputs, buckets, "cpu")
    for b, batch in zip(buckets, batches):
        assert tuple(batch["input_ids"].shape) == (len(b.indices), b.length) and b.length % 8 == 0
        for row, i in enumerate(b.indices):
            n = len(inputs["test_ids"][i])
            assert batch["input_ids"][row, :n].tolist() == inputs["test_ids"][i]
            assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (b.length - n)
    assert make_batch([[5, 6]], 0, ["input_ids"], "cpu")["input_ids"].shape == (1, 2)


def test_a_case_of_many_texts_counts_them_in_its_throughput(tmp_path):
    from bench.scenarios.latency import Case, TimingSettings, run_cases

    cases = [Case("throughput", 4, "bucketed", texts=1000, min_rounds=3),
             Case("throughput", 4, "natural", min_rounds=3)]
    out = run_cases(cases, lambda case: (lambda: sum(range(2000))), TimingSettings(max_time=0.01, warmup_iterations=0),
                    tmp_path)
    for c in cases:
        r = out[c.id]
        assert r["throughput_per_s"] == pytest.approx((c.texts or 4) / (r["latency_mean_ms"] / 1000))


def test_the_report_names_a_bucketed_throughput_winner():
    from test_bench_schema import row

    from bench.reporting.derive import add_derived
    from bench.reporting.report import best_per_goal

    rows = [row(), row(scenario="throughput", batch=256, p50=40.0),
            row(scenario="throughput", batch=256, p50=20.0, seq_len="bucketed")]
    rows[2].throughput_per_s = 50000.0    # a pass over 1,000 texts in 20 ms
    add_derived(rows)
    text = best_per_goal(rows)
    assert "50000.0 texts/s at batch 256 (length-bucketed pass over the test split)" in text
    rows[2].throughput_per_s = 1.0
    assert "texts/s at batch 256." in best_per_goal(rows) and "bucketed" not in best_per_goal(rows)
