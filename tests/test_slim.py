"""The slim install (the README's `pip install '.[bench]'`, built by `make slim` / .ci/run) benches
a bundle end to end: torch and transformers cannot even be imported there.

Skipped unless EDGEDISTILL_SLIM_PYTHON names that environment's python (.ci/run sets it)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_bench_run import RUN
from test_bundle import HEAVY, bundled  # noqa: F401 - the fixture: a bundle written by this (full) install

SLIM = os.environ.get("EDGEDISTILL_SLIM_PYTHON")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not SLIM, reason="set EDGEDISTILL_SLIM_PYTHON to the python of a slim install (make slim; .ci/run does)")]


def slim(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # Away from the source tree and without PYTHONPATH: only what the slim install put in site-packages.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([SLIM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_slim_install_has_no_heavy_library(tmp_path):
    for name in HEAVY:
        proc = slim(["-c", f"import {name}"], tmp_path)
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, f"{name} is importable in {SLIM}"
    code = "import edgedistill, bench, export, onnxruntime, openvino; print(edgedistill.__file__)"
    proc = slim(["-c", code], tmp_path)
    assert proc.returncode == 0 and "site-packages" in proc.stdout, proc.stderr


def test_the_slim_install_benches_a_bundle_into_a_file_that_merges(bundled, tmp_path):  # noqa: F811
    from bench.launchers.process import merge_bench_file
    from bench.schema import read_document

    root, _, bundle, _ = bundled
    out = tmp_path / "bench.json"
    proc = slim(["-m", "edgedistill_cli", "bench", "--bundle", str(bundle), "--out", str(out), "--quick",
                 "--threads", "1", "--no-progress"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc, rows = read_document(out)                      # schema-valid
    block = next(iter(doc["machines"].values()))
    libs = block["provenance"]["libraries"]
    assert "torch" not in libs and "transformers" not in libs and "onnxruntime" in libs
    assert {r.runtime for r in rows} == {"onnxruntime", "openvino"} and all(r.macro_f1 is not None for r in rows)
    # The roofline runs on the slim install too: the MatMul peak is measured and the rows get their floor.
    assert block["peak_gflops"]["1"]["fp32"] > 0 and not block.get("peak_errors"), block.get("peak_errors")
    assert any(r.pct_of_peak for r in rows if r.runtime == "onnxruntime")
    merged = merge_bench_file(out, root / "results-slim" / RUN)
    assert merged == list(doc["machines"])
    assert len(read_document(root / "results-slim" / RUN / "bench.json")[1]) == len(rows)
