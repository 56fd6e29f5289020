"""A bench bundle measured on this machine: verified hash by hash, then benched with the one bench
loop (``bench.launchers.process``), with the slim install only (no torch, transformers, datasets or
scikit-learn). The bundle's format is ``bench.bundles.spec``; writing one is ``bench.bundles.write``.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.bundles.spec import BUNDLE_FILE, FORMAT_RUNTIME, INPUTS_FILE, RUNTIME_PACKAGE, BundleError, verify_bundle
from edgedistill.integrity import resolve_inside
from edgedistill.owned import OutputError, check_result_file

# Why openvino may be absent on purpose: the ONNX-Runtime-only install (docs/bundle.md, "Arm boards").
OPENVINO_FLOOR = (" openvino's aarch64 wheels need glibc >= 2.35 (manylinux_2_35; x86_64: 2.28): where pip finds no "
                  "openvino (JetPack 5, Amazon Linux 2023 and older systems), use the ONNX-Runtime-only install "
                  "pip install '.[bench-ort]' with --runtimes onnxruntime.")


def missing_runtimes(runtimes: list[str]) -> list[str]:
    import importlib.util

    return [r for r in runtimes if importlib.util.find_spec(RUNTIME_PACKAGE.get(r, r)) is None]


def bench_bundle(folder: str | Path, out: str | Path, overrides: dict | None = None, force_new: bool = False,
                 progress: bool = True, command: list[str] | None = None, browser: bool = False):
    """Verify the bundle, then measure its artifacts on this machine with the one bench loop;
    this machine's rows go to ``out`` (a bench.json that ``edgedistill bench --merge`` folds in).
    ``browser``: its ONNX artifacts in headless Chromium instead (``bench.launchers.web``), as another machine."""
    from bench.config import describe, load_bench_config
    from bench.inputs import timing_inputs
    from bench.launchers.process import (
        BenchOutcome,
        finish,
        measure_jobs,
        outside_jobs,
        plan_here,
        write_outputs,
    )
    from bench.plan import Artifact
    from bench.schema import load_or_new, replace_machine

    folder, out = Path(folder), Path(out)
    info = verify_bundle(folder)
    try:
        # bench.json may go inside the bundle (cd B && edgedistill bench --bundle . --out bench.json), never
        # over one of its own files.
        check_result_file(out, what="bench result file", inputs=[folder / BUNDLE_FILE, *(folder / rel for rel in
                                                                                       info.get("files") or {})],
                          example="bench.json")
    except OutputError as exc:
        raise BundleError(str(exc)) from None
    overrides = dict(overrides or {})
    if overrides.get("max_test") is not None:
        raise BundleError(f"the bundle carries its test texts already capped ({info['test_size']}); set --max-test "
                          "when writing it (edgedistill bundle --max-test N)")
    cfg = load_bench_config(info["bench"], overrides)
    cfg.max_test = None                      # the carried texts are the test set (capped when written)
    print(f"bundle {folder}: run {info['run']}, {len(info['artifacts'])} artifact(s), {info['test_size']} test texts, "
          f"written on {info.get('arch')} at commit {(info.get('provenance') or {}).get('git_commit')}")
    print("bench config (bundle settings + overrides):\n" + describe(cfg), flush=True)
    artifacts = [Artifact(**{k: v for k, v in a.items() if k != "chosen_for"}
                          | {"folder": str(resolve_inside(folder, a["folder"], "artifact folder"))})
                 for a in info["artifacts"]]
    if not artifacts:
        raise BundleError(f"bundle {folder} carries no ONNX / OpenVINO artifact, only the GPU pack: measure it on a "
                          f"CUDA machine with edgedistill gpu-bench --bundle {folder} --out bench.json")
    source = {"bundle": {k: info.get(k) for k in ("created_at", "arch", "test_size", "total_mb")}
              | {"git_commit": (info.get("provenance") or {}).get("git_commit")}}
    if browser:
        from bench.launchers.web import bench_browser

        data = json.loads((folder / INPUTS_FILE).read_text())
        inputs = timing_inputs(data["test_texts"], data["test_labels"], data["label_names"], cfg)
        doc, old_rows = load_or_new(out, info["run"], force_new)
        doc, all_rows, rows, mid, failures = bench_browser(doc, old_rows, artifacts, cfg, inputs, info["run"],
                                                           command, source)
        write_outputs(doc, all_rows, out.parent, json_path=out)
        return finish(BenchOutcome(out.parent, mid, rows, failures, []), out)
    wanted = cfg.runtimes or sorted({FORMAT_RUNTIME[a.format] for a in artifacts
                                     if cfg.models is None or a.model in cfg.models})
    missing = missing_runtimes(wanted)
    if missing:
        needs = [a.name for a in artifacts if FORMAT_RUNTIME.get(a.format) in missing]
        raise BundleError(f"runtime(s) {', '.join(missing)} not installed here, and the bundle's {', '.join(needs)} "
                          f"need them. Install them (pip install {' '.join(RUNTIME_PACKAGE[m] for m in missing)}, or "
                          "the slim install in the README), or bench the others only with --runtimes "
                          f"{','.join(r for r in wanted if r not in missing) or '<runtime>'}."
                          + (OPENVINO_FLOOR if "openvino" in missing else ""))
    if cfg.runtimes is None:
        cfg.runtimes = wanted                # never probe for a runtime (e.g. torch) that the bundle does not use
    jobs, hw = plan_here(artifacts, cfg, [])
    data = json.loads((folder / INPUTS_FILE).read_text())
    inputs = timing_inputs(data["test_texts"], data["test_labels"], data["label_names"], cfg)
    doc, old_rows = load_or_new(out, info["run"], force_new)
    rows, block = measure_jobs(jobs, cfg, inputs, info["run"], hw, command, progress, out, source)
    failures = block.pop("failures")
    doc, all_rows = replace_machine(doc, old_rows, hw["machine_id"], block, rows, keep=outside_jobs(jobs))
    write_outputs(doc, all_rows, out.parent, json_path=out)
    return finish(BenchOutcome(out.parent, hw["machine_id"], rows, failures, []), out)
