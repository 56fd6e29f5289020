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
    from bench.bundles.write import write_bundle

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
    from bench.bundles.spec import verify_bundle
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

    from bench.bundles.spec import BundleError, verify_bundle

    copy = tmp_path / "b"
    shutil.copytree(bundled[2], copy)
    model = copy / "artifacts" / "teacher" / "onnx-fp32" / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    (copy / "inputs.json").unlink()
    with pytest.raises(BundleError) as err:
        verify_bundle(copy)
    assert "artifacts/teacher/onnx-fp32/onnx/model.onnx: sha256 differs" in str(err.value)
    assert "inputs.json: missing" in str(err.value)


def test_a_bundle_from_a_newer_schema_is_refused(bundled, tmp_path):
    import shutil

    from bench.bundles.spec import BundleError, read_bundle

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

    from bench.bundles.spec import BundleError
    from bench.launchers.bundle import bench_bundle

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(BundleError) as err:
        bench_bundle(bundled[2], tmp_path / "bench.json", {"quick": True})
    msg = str(err.value)
    assert "openvino not installed" in msg and "teacher/openvino-fp32" in msg and "pip install openvino" in msg
    assert "--runtimes onnxruntime" in msg and not (tmp_path / "bench.json").exists()
    # Where openvino is absent on purpose (its aarch64 wheels need glibc 2.35), the ONNX-Runtime-only install.
    assert "glibc >= 2.35" in msg and "'.[bench-ort]'" in msg


def test_the_ort_only_extra_has_no_openvino_and_the_roofline_needs():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = lambda deps: {d.split(">")[0].split("<")[0].split("=")[0].split("[")[0] for d in deps}
    assert not any("openvino" in d for d in extras["bench-ort"])
    assert {"onnxruntime", "onnx", "pytest-benchmark"} <= names(extras["bench-ort"])
    assert "edgedistill[bench-ort]" in extras["bench"] and "openvino" in names(extras["bench"])


def test_without_bench_results_the_default_selection_asks_for_artifacts(bundled, tmp_path):
    from bench.bundles.write import BundleError, write_bundle

    with pytest.raises(BundleError, match="--artifacts"):
        write_bundle(bundled[1], tmp_path / "b")


@pytest.mark.slow
def test_bundle_benches_with_no_heavy_library_importable_and_merges(bundled, tmp_path):
    from bench.launchers.process import merge_bench_file
    from bench.schema import read_document

    root, run, bundle, _ = bundled
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker(tmp_path / "blocked")), str(ROOT)]))
    out = tmp_path / "there" / "bench.json"
    out.parent.mkdir()
    proc = subprocess.run([sys.executable, "-m", "edgedistill_cli", "bench", "--bundle", str(bundle), "--out", str(out),
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

    from bench.bundles.write import default_selection
    from bench.plan import Artifact
    from bench.reporting.derive import add_derived
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
    for command in ([], ["train"], ["export"], ["bench"], ["bundle"], ["suite"], ["run"], ["dashboard"]):
        proc = subprocess.run([sys.executable, "-m", "edgedistill_cli", *command, "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (command, proc.stderr[-1500:])


# --- safe with the user's files -------------------------------------------------------------

def _bundle(run, out, **kw):
    from bench.bundles.write import write_bundle

    return write_bundle(run, out, artifacts=["teacher/onnx-fp32"], overrides={"max_test": 10}, **kw)


def test_out_replaces_only_a_bundle_it_wrote_never_a_run(bundled, tmp_path, capsys):
    from bench.bundles.spec import BundleError
    from edgedistill_cli.commands import main

    root, run, _, _ = bundled
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(BundleError, match="never replaced, --force or not") as err:
        _bundle(run, mine)
    assert str(mine) in str(err.value) and (mine / "thesis.tex").read_text() == "years of work"
    assert main(["bundle", "--run", str(run), "--out", str(mine), "--artifacts", "teacher/onnx-fp32"]) == 2
    assert "not a bench bundle" in capsys.readouterr().err and (mine / "thesis.tex").is_file()
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for out in (run, run.parent, root, run / "models"):          # the run, its parents, a part of it
        for force in (False, True):
            with pytest.raises(BundleError):
                _bundle(run, out, force=force)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    # an earlier bundle and an empty folder are replaced; the user's folder never, --force or not
    (tmp_path / "empty").mkdir()
    _bundle(run, tmp_path / "empty")
    assert _bundle(run, tmp_path / "empty")["kind"] == "edgedistill-bench-bundle"
    with pytest.raises(BundleError, match="never replaced"):
        _bundle(run, mine, force=True)
    assert (mine / "thesis.tex").read_text() == "years of work" and not (mine / "bundle.json").exists()


def test_a_killed_bundles_partial_folder_is_removed_by_the_next(bundled, tmp_path):
    import socket

    root, run, _, _ = bundled
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".b.pid{dead.pid}@{socket.gethostname()}.x1y2z3.partial"
    (stale / "artifacts").mkdir(parents=True)
    (stale / "artifacts" / "model.onnx").write_bytes(b"\0" * 1024)
    alive = tmp_path / f".b.pid{os.getpid()}@{socket.gethostname()}.a1b2c3.partial"
    alive.mkdir()
    _bundle(run, tmp_path / "b")
    assert not stale.exists() and alive.exists() and (tmp_path / "b" / "bundle.json").is_file()


def test_a_damaged_artifact_is_refused_on_the_way_in(bundled, tmp_path):
    import shutil

    from bench.bundles.spec import BundleError

    run = tmp_path / "runs" / RUN
    shutil.copytree(bundled[1], run)
    model = run / "artifacts" / "teacher" / "onnx-fp32" / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF                                  # same size: only the sha256 can tell
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError) as err:
        _bundle(run, tmp_path / "b")
    assert "teacher/onnx-fp32: onnx/model.onnx: sha256 differs" in str(err.value) and "--force" in str(err.value)
    assert not (tmp_path / "b").exists()
    # tokenizer.json is covered by the manifest as well
    shutil.copy2(bundled[1] / "artifacts" / "teacher" / "onnx-fp32" / "onnx" / "model.onnx", model)
    tok = run / "artifacts" / "teacher" / "onnx-fp32" / "tokenizer.json"
    tok.write_text(tok.read_text().replace('"good"', '"g00d"'))
    with pytest.raises(BundleError, match="tokenizer.json: sha256 differs"):
        _bundle(run, tmp_path / "b")


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "folder"])
def test_a_path_leaving_the_bundle_is_refused_before_anything_is_read(bundled, tmp_path, case):
    import shutil

    from bench.bundles.spec import BundleError
    from bench.launchers.bundle import bench_bundle
    from edgedistill.io import sha256

    copy = tmp_path / "b"
    shutil.copytree(bundled[2], copy)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the bundle")
    info = json.loads((copy / "bundle.json").read_text())
    record = {"sha256": sha256(secret), "bytes": secret.stat().st_size}
    if case == "dotdot":
        info["files"]["../secret.txt"] = record
    elif case == "absolute":
        info["files"][str(secret)] = record
    elif case == "symlink":
        (copy / "artifacts" / "teacher" / "onnx-fp32" / "extra.txt").symlink_to(secret)
    else:
        outside = tmp_path / "outside" / "onnx-fp32"
        shutil.copytree(copy / "artifacts" / "teacher" / "onnx-fp32", outside)
        info["artifacts"][0]["folder"] = "../outside/onnx-fp32"
    (copy / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match="outside") as err:
        bench_bundle(copy, tmp_path / "bench.json", {"quick": True})
    assert "nothing was measured" in str(err.value) and not (tmp_path / "bench.json").exists()


def test_bundle_settings_out_of_range_are_refused(bundled, tmp_path, capsys):
    from edgedistill_cli.commands import main

    run = bundled[1]
    assert main(["bundle", "--run", str(run), "--out", str(tmp_path / "a"), "--artifacts", "teacher/onnx-fp32",
                 "--max-test", "0"]) == 2
    assert "max_test: 0" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main(["bundle", "--run", str(run), "--out", str(tmp_path / "g"), "--gpu-only", "--gpu-max-mb", "-1"]) == 2
    assert "--gpu-max-mb -1" in capsys.readouterr().err and not (tmp_path / "g").exists()


def test_a_full_disk_is_one_paragraph_and_keeps_what_was_finished(bundled, tmp_path, monkeypatch, capsys):
    import errno
    import shutil

    from bench.bundles.spec import verify_bundle
    from edgedistill_cli.commands import main

    run, out = bundled[1], tmp_path / "b"
    _bundle(run, out)

    def full(src, dst, *a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(shutil, "copytree", full)
    assert main(["bundle", "--run", str(run), "--out", str(out), "--artifacts", "teacher/onnx-fp32",
                 "--max-test", "10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgedistill bundle: the disk is full") and "What finished before is kept" in err
    assert "Traceback" not in err and verify_bundle(out)["kind"] == "edgedistill-bench-bundle"
    assert not list(tmp_path.glob(".b.*.partial"))
