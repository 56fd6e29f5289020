"""One bundle, benched on a fleet of machines: every Dask worker that offers a ``target`` resource.

    dask scheduler                                                     (any machine)
    EDGEDISTILL_MACHINE_NAME=board-1 dask worker tcp://HOST:8786 --nthreads 1 --resources target=1 --name board-1
    edgedistill bench --bundle B --scheduler tcp://HOST:8786 --out bench.json [--targets board-1 board-2]

The bundle is verified here, sent to each chosen target as bytes (no shared filesystem needed),
written into a fresh folder there and benched by ``bench.launchers.bundle.bench_bundle``: the same
verification on arrival, the same loop, the slim install plus the ``cluster`` extra. One bench
per target at a time (the ``target`` resource), so a machine's timings are not contended by a
second bench. Each machine's rows come back and are merged under its own fingerprint into one
bench.json by ``bench.launchers.process.merge_bench_file``. Boards of one model share a fingerprint: name
each (``EDGEDISTILL_MACHINE_NAME``), or their rows would replace one another; that is refused
before anything is sent.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.bundles.spec import BUNDLE_FILE, BundleError, verify_bundle
from edgedistill import cluster
from edgedistill.provenance import MACHINE_NAME_VAR


@dataclass
class FleetOutcome:
    out: Path
    machines: dict[str, str] = field(default_factory=dict)      # worker name -> machine id merged
    rows: dict[str, int] = field(default_factory=dict)          # worker name -> rows merged
    failed_jobs: dict[str, list] = field(default_factory=dict)  # worker name -> jobs that failed there
    failures: list = field(default_factory=list)                # cluster.Outcome of machines that gave no rows


def bundle_files(folder: str | Path) -> dict[str, bytes]:
    """Every file the bundle lists, and bundle.json, by relative path."""
    folder = Path(folder)
    info = json.loads((folder / BUNDLE_FILE).read_text())
    return {rel: (folder / rel).read_bytes() for rel in [*info["files"], BUNDLE_FILE]}


def choose_targets(client, targets: list[str] | None) -> dict[str, str]:
    """Worker name -> address of the chosen targets (``None`` or ``["all"]``: every one)."""
    offered = {str(w["name"]): addr for addr, w in cluster.offering(client, "target").items()}
    if not targets or targets == ["all"]:
        return offered
    unknown = [t for t in targets if t not in offered]
    if unknown:
        raise cluster.ClusterError(f"--targets {', '.join(unknown)}: no such worker offers the 'target' resource "
                                   f"(targets: {', '.join(sorted(offered))}); start one with `dask worker "
                                   f"{client.scheduler.address} --nthreads 1 --resources target=1 --name NAME`")
    return {t: offered[t] for t in dict.fromkeys(targets)}


def machine_of_worker() -> dict:
    """Runs on a worker: the fingerprint its rows will carry."""
    from edgedistill.provenance import hardware

    hw = hardware()
    return {"machine_id": hw["machine_id"], "label": hw["label"]}


def check_distinct(client, chosen: dict[str, str]) -> dict[str, dict]:
    """Each target's fingerprint; two targets with one fingerprint would overwrite each other's rows."""
    by_address = client.run(machine_of_worker, workers=list(chosen.values()))
    machines = {name: by_address[addr] for name, addr in chosen.items()}
    seen: dict[str, list[str]] = {}
    for name, m in machines.items():
        seen.setdefault(m["machine_id"], []).append(name)
    clashes = [names for names in seen.values() if len(names) > 1]
    if clashes:
        raise cluster.ClusterError(
            "; ".join(f"targets {', '.join(n)} report one machine fingerprint ({machines[n[0]]['label']})"
                      for n in clashes)
            + ": their rows would replace one another. Name each machine in its worker's environment "
            f"({MACHINE_NAME_VAR}=board-1 dask worker ...), or choose one of them with --targets. Nothing was sent.")
    return machines


def bench_shipped(files: dict[str, bytes], overrides: dict | None, command: list[str] | None) -> dict:
    """Runs on a target: the bundle's files into a fresh folder, verified and benched there;
    returns the bench.json it wrote (this machine's block and rows)."""
    from bench.launchers.bundle import bench_bundle

    with tempfile.TemporaryDirectory(prefix="edgedistill-fleet-") as tmp:
        folder = Path(tmp) / "bundle"
        for rel, data in files.items():
            path = folder / rel
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise BundleError(f"bundle file {rel!r} points outside the bundle; write the bundle again")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        out = Path(tmp) / "bench.json"
        bench_bundle(folder, out, overrides, progress=False, command=command)
        return json.loads(out.read_text())


def fleet_bench(bundle: str | Path, out: str | Path, client, targets: list[str] | None = None,
                overrides: dict | None = None, command: list[str] | None = None) -> FleetOutcome:
    """Bench ``bundle`` on the chosen targets at once, one bench per target; merge into ``out``."""
    from bench.launchers.process import merge_bench_file

    bundle, out = Path(bundle), Path(out)
    info = verify_bundle(bundle)                 # a bundle broken here is not sent anywhere
    chosen = choose_targets(client, targets)
    machines = check_distinct(client, chosen)
    print(f"bundle {bundle} (run {info['run']}, {info['total_mb']:.1f} MiB) to {len(chosen)} target(s): "
          + ", ".join(f"{n} ({m['label']})" for n, m in machines.items()), flush=True)
    [files] = client.scatter([bundle_files(bundle)], workers=list(chosen.values()), broadcast=True)
    jobs = {name: (files, overrides, command) for name in chosen}
    outcome = FleetOutcome(out)
    for done in cluster.run_tasks(client, bench_shipped, jobs, "target", retries=0, workers=chosen):
        if not done.ok:
            outcome.failures.append(done)
            print(f"  {done.name}: FAILED on {done.where()}: {done.error}", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="edgedistill-fleet-") as tmp:
            part = Path(tmp) / "bench.json"
            part.write_text(json.dumps(done.value))
            merged = merge_bench_file(part, out.parent, note=f"fleet bench on Dask worker {done.name} "
                                      f"({done.worker.get('address')})", json_path=out)
        block = done.value["machines"][merged[0]]
        outcome.machines[done.name] = merged[0]
        outcome.rows[done.name] = len(done.value["rows"])
        outcome.failed_jobs[done.name] = block.get("failed", [])
        print(f"  {done.name}: {len(done.value['rows'])} rows as machine {merged[0]} ({block['hardware']['label']})"
              + (f", {len(block['failed'])} job(s) failed" if block.get("failed") else ""), flush=True)
    files.release()
    if not outcome.machines:
        raise BundleError("no target gave rows, so nothing was written to " + str(out) + ":\n  - "
                          + "\n  - ".join(f"{f.name} ({f.where()}): {f.error}" for f in outcome.failures))
    print(f"{sum(outcome.rows.values())} rows from {len(outcome.machines)} machine(s) merged into {out}", flush=True)
    return outcome
