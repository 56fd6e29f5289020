"""Suites and fleet benches on Dask: a LocalCluster's rows equal a sequential run's, a worker
killed mid-row costs nothing but time, a bad scheduler address fails before any work."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from test_bundle import bundled  # noqa: F401 - the fixture: a tiny bundle (teacher ONNX, OpenVINO)
from test_suite import _suite

from edgedistill import cluster

pytest.importorskip("distributed")


def test_a_bad_scheduler_fails_fast_with_how_to_start_one(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    from conftest import suite_main as main

    for spec in ("local:0", "local:two", "http://host:8786", "tcp://host"):
        with pytest.raises(cluster.ClusterError, match="neither local:N"):
            cluster.parse_scheduler(spec)
    path = _suite(tmp_path, tiny_checkpoint, tiny_csv, seeds=[1])
    t0 = time.monotonic()
    assert main([str(path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err
    assert "no Dask scheduler answers at tcp://127.0.0.1:9" in err
    assert "dask scheduler" in err and "dask worker tcp://HOST:8786 --nthreads 1 --resources train=1" in err
    assert not (tmp_path / "suite-runs").exists() and not (tmp_path / "suite").exists()   # nothing was run


def _rows(folder) -> dict:
    return {p.name: json.loads(p.read_text()) for p in sorted((folder / "entries").glob("*.json"))}


def _metrics(row: dict) -> dict:
    """What a row measured, without the times (which differ from run to run)."""
    times = ("wall_time_s", "train_cpu_s")
    return {m: {k: v for k, v in e.items() if k not in times} for m, e in row["models"].items()}


@pytest.mark.slow
def test_a_suite_on_two_local_workers_writes_the_rows_a_sequential_run_writes(tmp_path, tiny_checkpoint, tiny_csv):
    import torch
    from conftest import suite_main as main

    from distill.suite import run_suite

    path = _suite(tmp_path, tiny_checkpoint, tiny_csv)                     # 1 entry x 2 seeds
    spec = path.read_text()
    # The sequential run on the thread count each of the two workers takes: sums in the same order.
    before = torch.get_num_threads()
    torch.set_num_threads(cluster.threads_for("here", {"here": 2}))
    try:
        sequential = run_suite(path)
    finally:
        torch.set_num_threads(before)
    seq_rows = _rows(tmp_path / "suite")
    (tmp_path / "suite").rename(tmp_path / "suite-sequential")
    path.write_text(spec.replace("suite-runs", "suite-runs-dask"))

    client = cluster.connect("local:2", "train")
    try:
        names = {str(w["name"]) for w in client.scheduler_info()["workers"].values()}
        result = run_suite(path, client=client)
    finally:
        cluster.close(client)
    rows = _rows(tmp_path / "suite")
    assert result["complete"] and result["failed"] == [] and sequential["complete"]
    assert set(rows) == set(seq_rows) == {"capped-s1.json", "capped-s2.json"}
    assert {p.name for p in (tmp_path / "suite").iterdir()} == \
        {p.name for p in (tmp_path / "suite-sequential").iterdir()}           # the same files
    for name, row in rows.items():
        assert _metrics(row) == _metrics(seq_rows[name])
        assert row["recipe_sha256"] == seq_rows[name]["recipe_sha256"]
        assert row["method_sha256"] == seq_rows[name]["method_sha256"]
        assert str(row["worker"]["name"]) in names and row["worker"]["address"].startswith("tcp://")
        assert row["provenance"]["git_commit"] == seq_rows[name]["provenance"]["git_commit"]
        assert row["provenance"]["hardware"]["machine_id"] == seq_rows[name]["provenance"]["hardware"]["machine_id"]
        assert "worker" not in seq_rows[name]
    assert result["entries"]["capped"]["methods"]["odd"]["retained_test_macro_f1"] == \
        sequential["entries"]["capped"]["methods"]["odd"]["retained_test_macro_f1"]
    # --tables reads the cluster's rows as it reads a sequential run's
    assert main([str(path), "--tables"]) == 0
    assert json.loads((tmp_path / "suite" / "suite.json").read_text())["complete"]
    # rows on disk are not trained again
    client = cluster.connect("local:1", "train")
    try:
        again = run_suite(path, client=client)
    finally:
        cluster.close(client)
    assert again["complete"] and _rows(tmp_path / "suite") == rows


@pytest.mark.slow
def test_a_worker_killed_mid_row_costs_only_time(tmp_path, tiny_checkpoint, tiny_csv):
    from distill.suite import run_suite

    path = _suite(tmp_path, tiny_checkpoint, tiny_csv)
    client = cluster.connect("local:2", "train")
    outcome: dict = {}
    try:
        pids = client.run(os.getpid)                                    # worker address -> process id
        runner = threading.Thread(target=lambda: outcome.update(result=run_suite(path, client=client)))
        runner.start()
        killed, deadline = None, time.monotonic() + 120
        while killed is None and time.monotonic() < deadline:
            busy = {addr: keys for addr, keys in client.processing().items() if keys}
            started = [p for p in (tmp_path / "suite-runs").glob("capped-s*/models")] if busy else []
            if started and not (tmp_path / "suite" / "entries").exists():
                killed = next(iter(busy))
                os.kill(pids[killed], signal.SIGKILL)                   # mid-row: its run folder is half-written
            time.sleep(0.2)
        runner.join(timeout=600)
    finally:
        cluster.close(client)
    assert killed is not None, "no row was seen running"
    result = outcome["result"]
    assert result["complete"] and result["failed"] == []
    rows = _rows(tmp_path / "suite")
    assert set(rows) == {"capped-s1.json", "capped-s2.json"}
    assert all(r["worker"]["address"] != killed for r in rows.values())  # the lost row was trained again elsewhere


class _OneMachine:
    """A client whose every worker reports the same fingerprint (two boards of one model)."""

    def run(self, fn, workers):
        return {addr: {"machine_id": "abc123", "label": "Cortex-A76 x4"} for addr in workers}


def test_two_targets_with_one_fingerprint_are_refused_before_anything_is_sent():
    from bench.launchers.fleet import check_distinct

    with pytest.raises(cluster.ClusterError, match="(?s)targets b1, b2 report one machine fingerprint.*"
                                                   "EDGEDISTILL_MACHINE_NAME=board-1 dask worker"):
        check_distinct(_OneMachine(), {"b1": "tcp://10.0.0.1:1", "b2": "tcp://10.0.0.2:1"})


def test_a_machine_name_keeps_identical_boards_apart(monkeypatch):
    from edgedistill import provenance

    plain = provenance.hardware()
    provenance.hardware.cache_clear()
    monkeypatch.setenv(provenance.MACHINE_NAME_VAR, "board-1")
    try:
        named = provenance.hardware()
    finally:
        provenance.hardware.cache_clear()
    assert named["machine_id"] != plain["machine_id"] and named["machine_name"] == "board-1"
    assert named["label"] == "board-1: " + plain["label"] and "machine_name" not in plain


@pytest.fixture
def two_boards(tmp_path):
    """A scheduler and two `dask worker` processes offering `target`, each named as its own machine;
    neither can import torch, transformers, pandas... (the slim install plus the cluster extra)."""
    import subprocess
    import sys
    from pathlib import Path

    from distributed import Client, LocalCluster
    from test_bundle import blocker

    scheduler = LocalCluster(n_workers=0, dashboard_address=None)
    dask = Path(sys.executable).parent / "dask"
    procs = []
    for name in ("board-a", "board-b"):
        env = dict(os.environ, EDGEDISTILL_MACHINE_NAME=name, PYTHONPATH=str(blocker(tmp_path / "blocked")))
        procs.append(subprocess.Popen([str(dask), "worker", scheduler.scheduler_address, "--nthreads", "1",
                                       "--resources", "target=1", "--name", name, "--no-dashboard"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
    try:
        with Client(scheduler.scheduler_address) as client:
            client.wait_for_workers(2, timeout=120)
        yield scheduler.scheduler_address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        scheduler.close()


@pytest.mark.slow
def test_a_fleet_bench_merges_each_machines_rows_under_its_own_fingerprint(bundled, two_boards, tmp_path, capsys):  # noqa: F811
    from bench.launchers.bundle import bench_bundle
    from bench.schema import read_document
    from edgedistill_cli.commands import main

    _, _, bundle, _ = bundled
    out = tmp_path / "fleet" / "bench.json"
    common = ["--quick", "--threads", "1", "--runtimes", "onnxruntime", "--no-progress"]
    assert main(["bench", "--bundle", str(bundle), "--scheduler", two_boards, "--targets", "board-z",
                 "--out", str(out)]) == 2
    assert "--targets board-z: no such worker" in capsys.readouterr().err and not out.exists()

    assert main(["bench", "--bundle", str(bundle), "--scheduler", two_boards, "--out", str(out), *common]) == 0
    doc, rows = read_document(out)
    blocks = doc["machines"]
    assert sorted(b["hardware"]["machine_name"] for b in blocks.values()) == ["board-a", "board-b"]
    for mid, block in blocks.items():
        assert block["bundle"]["test_size"] == 10 and not block["failed"]
        assert "fleet bench on Dask worker " + block["hardware"]["machine_name"] in block["merge_note"]
        assert {(r.artifact, r.runtime) for r in rows if r.machine_id == mid} == {("teacher/onnx-fp32", "onnxruntime")}
    # the same accuracy on both machines, and as a plain bench of the bundle here measures it
    here = tmp_path / "here.json"
    bench_bundle(bundle, here, {"quick": True, "threads": [1], "runtimes": ["onnxruntime"]}, progress=False)
    _, plain = read_document(here)
    assert {(r.artifact, r.macro_f1, r.accuracy) for r in rows} == {(r.artifact, r.macro_f1, r.accuracy) for r in plain}
    assert out.with_suffix(".csv").is_file() and (out.parent / "bench-report.md").is_file()


@pytest.mark.slow
def test_a_sweep_on_two_local_workers_gives_the_sequential_rows(tmp_path, tiny_checkpoint, tiny_csv):
    import torch
    from schedule_ablation import run_variants
    from test_train import tiny_recipe

    from edgedistill.configbase import dump

    (tmp_path / "recipe.yaml").write_text(dump(tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})))
    variants = {"base": {}, "lr": {"methods": {"odd": {"lr": 1e-2}}}}
    args = (str(tmp_path / "recipe.yaml"), variants, "odd", ["data.max_train=60"])
    before = torch.get_num_threads()
    torch.set_num_threads(cluster.threads_for("here", {"here": 2}))
    try:
        sequential = run_variants(*args, out_dir=tmp_path / "sequential")
    finally:
        torch.set_num_threads(before)
    client = cluster.connect("local:2", "train")
    try:
        spread = run_variants(*args, out_dir=tmp_path / "spread", client=client)
    finally:
        cluster.close(client)
    assert spread["failed"] == [] and list(spread["variants"]) == list(sequential["variants"]) == ["base", "lr"]
    for name, row in spread["variants"].items():
        plain = sequential["variants"][name]
        assert {k: v for k, v in row.items() if k not in ("compute", "worker")} == \
            {k: v for k, v in plain.items() if k != "compute"}
        assert row["worker"]["address"].startswith("tcp://") and "worker" not in plain


def test_a_job_that_fails_for_good_names_the_worker_it_last_ran_on():
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    last = SimpleNamespace(name="box-2", address="tcp://10.0.0.2:40000", host="10.0.0.2")
    died = cluster._failure("capped-s1", KilledWorker("train_pair-capped-s1-1", last, 1))
    assert not died.ok and died.worker["name"] == "box-2" and "2 workers died while running it" in died.error
    assert died.where() == "worker box-2 (tcp://10.0.0.2:40000)"
    raised = cluster._failure("capped-s2", cluster.JobError("ValueError: bad", {"name": "box-1", "address": "a"}))
    assert raised.error == "ValueError: bad" and raised.worker["name"] == "box-1"
