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
    from bench.gpu.pack import pack_run

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
    from bench.gpu.pack import pack_run

    run, pack, first = packed
    room = first["models"]["teacher"]["packed_mb"] * 1e6 + (pack / "inputs.json").stat().st_size + 64 * 1024 + 500
    info = pack_run(run, tmp_path / "pack", max_mb=room / 2**20)    # room for the teacher alone
    assert info["models"]["teacher"]["weights"] == "fp16" and info["models"]["odd"]["weights"] is None
    assert not (tmp_path / "pack" / "models" / "odd" / "model.safetensors").exists()


def test_smoke_run_writes_a_schema_valid_file_that_merges(packed, tmp_path):
    from bench.runner import merge_bench_file
    from bench.schema import BenchFileError, read_document

    run, pack, _ = packed
    out = tmp_path / "gpu-bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench.gpu.run", "--pack", str(pack), "--out", str(out), "--smoke"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc, rows = read_document(out)
    assert doc["run"] == RUN and len(doc["machines"]) == 1
    block = next(iter(doc["machines"].values()))
    assert block["bench_config"]["smoke"] is True and "FP16" in block["transport"]
    assert {(r.artifact, r.precision, r.scenario, r.seq_len) for r in rows} == {
        ("teacher/pytorch", "fp32", "latency", "natural"), ("teacher/pytorch", "fp32", "latency", "16"),
        ("teacher/pytorch", "fp32", "throughput", "natural")}
    for r in rows:
        assert r.latency_p50_ms > 0 and r.rounds >= 3 and r.macro_f1 is not None and r.peak_rss_mb > 0
        assert r.speedup_vs_teacher is not None and r.size_ratio_vs_fp32 is None   # no ONNX export in this run

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
    import edgedistill.cli as edgedistill

    assert edgedistill.main(["bench", "--merge", str(out), "--results", str(results)]) == 0
    doc, merged = read_document(results / "bench.json")
    assert list(doc["machines"]) == ["h100-box"] and len(merged) == len(rows) and mid not in doc["machines"]
    assert "### cuda" in (results / "report.md").read_text()


def test_the_gpu_runner_reads_a_verified_bundle(packed, tmp_path):
    """A bundle carries the GPU pack; the runner verifies it, then measures (smoke mode on CPU)."""
    from bench.bundle import BundleError, bench_bundle
    from bench.schema import read_document

    run = packed[0]
    import edgedistill

    assert edgedistill.main(["bundle", "--run", str(run), "--out", str(tmp_path / "bundle"), "--gpu-only",
                             "--max-test", "10"]) == 0
    info = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert info["gpu"]["models"]["teacher"]["weights"] == "fp16" and info["artifacts"] == []
    assert "gpu/models/teacher/model.safetensors" in info["files"] and info["gpu"]["test_size"] == 10
    out = tmp_path / "gpu-bench.json"
    cmd = [sys.executable, "-m", "bench.gpu.run", "--bundle", str(tmp_path / "bundle"), "--out", str(out), "--smoke"]
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
    assert proc.returncode == 2 and "gpu/models/odd/model.safetensors: sha256 differs" in proc.stderr
