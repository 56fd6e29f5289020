"""The portable bench bundle: written, verified (a changed file, a newer schema, a missing runtime
are clear errors), benched without any heavy library importable, merged back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_bench_run import RUN, make_tiny_run

ROOT = Path(__file__).resolve().parents[1]
# Libraries the bench of a bundle must never import (the slim install does not have them).
HEAVY = ("torch", "transformers", "optimum", "nncf", "datasets", "sklearn", "pandas", "streamlit", "peft",
         "accelerate")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    from bench.bundle import write_bundle

    root = tmp_path_factory.mktemp("bundle")
    run = make_tiny_run(root, methods=("teacher",), exports=("onnx-fp32", "openvino-fp32"))
    info = write_bundle(run, root / "bundle", artifacts=["teacher/onnx-fp32", "teacher/openvino-fp32"],
                        overrides={"max_test": 10})
    return root, run, root / "bundle", info


def blocker(folder: Path) -> Path:
    """A folder that, first on PYTHONPATH, makes every heavy library fail to import."""
    for name in HEAVY:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text(f"raise ImportError('{name} is not part of the slim install')\n")
    return folder


def test_bundle_holds_every_file_with_its_hash(bundled):
    from bench.bundle import verify_bundle
    from edgedistill.io import sha256

    _, _, bundle, info = bundled
    assert info["schema_version"] == 1 and info["run"] == RUN and info["arch"] and info["test_size"] == 10
    assert [a["folder"] for a in info["artifacts"]] == ["artifacts/teacher/onnx-fp32",
                                                         "artifacts/teacher/openvino-fp32"]
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()} - {"bundle.json"}
    assert files == set(info["files"]) and "inputs.json" in files
    assert "artifacts/teacher/onnx-fp32/tokenizer.json" in files
    assert all(sha256(bundle / f) == info["files"][f]["sha256"] for f in files)
    assert verify_bundle(bundle)["files"] == info["files"]
    inputs = json.loads((bundle / "inputs.json").read_text())
    assert len(inputs["test_texts"]) == len(inputs["test_labels"]) == 10


def test_a_changed_or_missing_file_is_named(bundled, tmp_path):
    import shutil

    from bench.bundle import BundleError, verify_bundle

    copy = tmp_path / "b"
    shutil.copytree(bundled[2], copy)
    model = copy / "artifacts" / "teacher" / "onnx-fp32" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    (copy / "inputs.json").unlink()
    with pytest.raises(BundleError) as err:
        verify_bundle(copy)
    assert "artifacts/teacher/onnx-fp32/model.onnx: sha256 differs" in str(err.value)
    assert "inputs.json: missing" in str(err.value)


def test_a_bundle_from_a_newer_schema_is_refused(bundled, tmp_path):
    import shutil

    from bench.bundle import BundleError, read_bundle

    copy = tmp_path / "b"
    shutil.copytree(bundled[2], copy)
    info = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**info, "schema_version": 2}))
    with pytest.raises(BundleError, match="schema_version 2, newer than this edgedistill reads"):
        read_bundle(copy)
    with pytest.raises(BundleError, match="bundle.json is missing"):
        read_bundle(tmp_path)


def test_a_missing_runtime_is_named_with_the_fix(bundled, tmp_path, monkeypatch):
    import importlib.util

    from bench.bundle import BundleError, bench_bundle

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(BundleError) as err:
        bench_bundle(bundled[2], tmp_path / "bench.json", {"quick": True})
    msg = str(err.value)
    assert "openvino not installed" in msg and "teacher/openvino-fp32" in msg and "pip install openvino" in msg
    assert "--runtimes onnxruntime" in msg and not (tmp_path / "bench.json").exists()


def test_without_bench_results_the_default_selection_asks_for_artifacts(bundled, tmp_path):
    from bench.bundle import BundleError, write_bundle

    with pytest.raises(BundleError, match="--artifacts"):
        write_bundle(bundled[1], tmp_path / "b")


@pytest.mark.slow
def test_bundle_benches_with_no_heavy_library_importable_and_merges(bundled, tmp_path):
    from bench.runner import merge_bench_file
    from bench.schema import read_document

    root, run, bundle, _ = bundled
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker(tmp_path / "blocked")), str(ROOT)]))
    out = tmp_path / "there" / "bench.json"
    out.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "edgedistill", "bench", "--bundle", str(bundle), "--out", str(out),
                           "--quick", "--threads", "1", "--no-progress"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc, rows = read_document(out)
    block = next(iter(doc["machines"].values()))
    assert block["hardware"]["arch"] and block["bundle"]["test_size"] == 10 and not block["failed"]
    assert {(r.artifact, r.runtime) for r in rows} == {("teacher/onnx-fp32", "onnxruntime"),
                                                       ("teacher/openvino-fp32", "openvino")}
    assert all(r.macro_f1 is not None and r.latency_p50_ms > 0 for r in rows)
    assert out.with_suffix(".csv").is_file()

    results = root / "results" / RUN
    assert merge_bench_file(out, results) == list(doc["machines"])
    merged_doc, merged = read_document(results / "bench.json")
    assert len(merged) == len(rows) and "bundle" in next(iter(merged_doc["machines"].values()))


def test_default_selection_is_the_best_export_per_goal_plus_the_teacher_references(tmp_path):
    from test_bench_schema import row

    from bench.bundle import default_selection
    from bench.derive import add_derived
    from bench.plan import Artifact
    from bench.schema import document, new_document

    rows = [row(), row(variant="onnx-fp32", runtime="onnxruntime", size=88.0, p50=8.0),
            row(variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", size=23.0, p50=4.0, f1=0.796),
            row(model="odd", variant="onnx-int8-dynamic", runtime="onnxruntime", precision="int8", size=15.0,
                p50=2.0, f1=0.7999),
            row(model="odd", variant="openvino-int8", runtime="openvino", precision="int8", size=16.0, p50=3.0,
                f1=0.81),
            row(model="odd", variant="onnx-fp32", runtime="onnxruntime", size=60.0, p50=5.0, f1=0.5)]
    add_derived(rows)
    doc = new_document("tiny")
    doc["machines"]["m1"] = {"hardware": {"label": "cpu m1"}}
    (tmp_path / "bench.json").write_text(json.dumps(document(doc, rows)))
    found = [Artifact(r.model, r.variant, r.format, r.precision, "none", False, "/x", 1, 1) for r in rows
             if r.format != "pytorch"]
    names, why = default_selection(found, tmp_path / "bench.json")
    assert names == ["teacher/onnx-fp32", "teacher/onnx-int8-dynamic", "odd/onnx-int8-dynamic", "odd/openvino-int8"]
    assert why["odd/onnx-int8-dynamic"] == ["fastest_1pct on cpu m1", "fastest_3pct on cpu m1", "smallest on cpu m1"]
    assert why["odd/openvino-int8"] == ["accurate on cpu m1"] and why["teacher/onnx-fp32"] == ["teacher reference"]


def test_the_cli_imports_nothing_heavy_before_a_stage_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker(tmp_path / "blocked")), str(ROOT)]))
    for command in ([], ["train"], ["export"], ["bench"], ["bundle"], ["run"], ["dashboard"]):
        proc = subprocess.run([sys.executable, "-m", "edgedistill", *command, "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (command, proc.stderr[-1500:])
