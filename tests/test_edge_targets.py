"""Edge targets beyond x86 servers: Arm flags (BF16), an emulated CPU marked and never ranked, and the roofline
peak that says why it is missing instead of dropping its error."""
from __future__ import annotations

import pytest
from test_bench_schema import block, machine_rows

from bench.config import BenchConfig
from bench.plan import Artifact, cpu_has_bf16, plan_jobs
from bench.reporting.report import render_report
from bench.schema import document
from edgedistill import goals, provenance

X86_CPUINFO = ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel Xeon\n"
               "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni\n")
# A Neoverse V1 (Graviton3): BF16, int8 matrix multiply, SVE.
ARM_CPUINFO = ("processor\t: 0\nBogoMIPS\t: 2100.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
               "fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat "
               "ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng\nCPU implementer\t: 0x41\n"
               "CPU architecture: 8\nCPU part\t: 0xd40\n")
# A Raspberry Pi 5 (Cortex-A76): no BF16.
PI5_CPUINFO = ("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics "
               "fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n")


def _isa(text):
    _, flags = provenance._cpuinfo(text)
    return [f for f in provenance.ISA_FLAGS if f in flags]


def test_arm_bf16_and_int8_features_are_recorded_and_plan_bf16():
    assert {"asimd", "asimddp", "i8mm", "bf16", "sve", "svebf16"} <= set(_isa(ARM_CPUINFO))
    assert "bf16" not in _isa(PI5_CPUINFO) and "asimddp" in _isa(PI5_CPUINFO)
    assert cpu_has_bf16({"isa_flags": _isa(ARM_CPUINFO)})
    assert not cpu_has_bf16({"isa_flags": _isa(PI5_CPUINFO)}) and not cpu_has_bf16({"isa_flags": _isa(X86_CPUINFO)})
    ov = Artifact("odd", "openvino-fp32", "openvino", "fp32", "none", False, "/x", 1, 1)
    for cpuinfo, want in ((ARM_CPUINFO, ["fp32", "bf16"]), (PI5_CPUINFO, ["fp32"])):
        jobs = plan_jobs([ov], BenchConfig(threads=[1]), {"openvino": ["cpu"]},
                         {"physical_cores": 4, "isa_flags": _isa(cpuinfo)})
        assert [j.precision for j in jobs] == want


def test_emulation_is_detected(tmp_path):
    em = provenance.emulation
    assert em("x86_64", X86_CPUINFO, {}, tmp_path) is None
    assert em("aarch64", ARM_CPUINFO, {}, tmp_path) is None
    # qemu-user with the host's cpuinfo in view: an x86 cpuinfo under an aarch64 process.
    assert "x86 CPU but the process runs as aarch64" in em("aarch64", X86_CPUINFO, {}, tmp_path)
    # A bind-mounted Arm cpuinfo hides that; QEMU's own variables or binfmt_misc still tell.
    assert "QEMU_CPU=cortex-a76" in em("aarch64", PI5_CPUINFO, {"QEMU_CPU": "cortex-a76"}, tmp_path)
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    assert "binfmt_misc" in em("aarch64", PI5_CPUINFO, {}, tmp_path)
    (tmp_path / "qemu-aarch64").write_text("disabled\n")
    assert em("aarch64", PI5_CPUINFO, {}, tmp_path) is None
    assert em("aarch64", PI5_CPUINFO, {provenance.EMULATED_VAR: "1"}, tmp_path).startswith(provenance.EMULATED_VAR)
    assert em("aarch64", PI5_CPUINFO, {provenance.EMULATED_VAR: "0"}, tmp_path) is None


def test_the_fingerprint_marks_an_emulated_cpu_with_its_own_id(monkeypatch):
    monkeypatch.delenv("QEMU_CPU", raising=False)
    monkeypatch.delenv(provenance.EMULATED_VAR, raising=False)
    provenance.hardware.cache_clear()
    try:
        native = provenance.hardware()
        monkeypatch.setenv(provenance.EMULATED_VAR, "1")
        provenance.hardware.cache_clear()
        emulated = provenance.hardware()
    finally:
        provenance.hardware.cache_clear()
    assert native["emulated"] is False and "emulated_by" not in native
    assert emulated["emulated"] is True and emulated["emulated_by"].startswith(provenance.EMULATED_VAR)
    assert emulated["label"].endswith("(emulated)") and emulated["machine_id"] != native["machine_id"]


def test_emulated_timings_rank_nothing():
    rows = machine_rows("m1")
    fast = [{"model": "odd", "macro_f1": 0.8, "latency_p50_ms": 1.0, "emulated": True},
            {"model": "tiny", "macro_f1": 0.8, "latency_p50_ms": 5.0, "emulated": False}]
    assert goals.fastest(fast)["model"] == "tiny"
    assert goals.fastest(fast[:1]) is None
    b = block("m1")
    b["hardware"].update(emulated=True, emulated_by="QEMU_CPU=cortex-a76 is set (QEMU user-mode)")
    doc = {"run": "tiny", "machines": {"m1": b}}
    text = render_report(document(doc, rows), rows)
    assert "Best artifact per goal" not in text and "emulated CPU (QEMU_CPU=cortex-a76" in text
    assert "rank nothing" in text
    doc["machines"]["m1"] = block("m1")
    assert "Best artifact per goal" in render_report(document(doc, rows), rows)


def test_a_missing_peak_says_why(tmp_path, monkeypatch):
    """The roofline's MatMul graphs need onnx: without it the peak is missing, and the block and the report say why."""
    from test_bench_schema import row

    from bench.launchers import process
    from bench.reporting import trust

    blocked = tmp_path / "blocked"
    (blocked / "onnx").mkdir(parents=True)
    (blocked / "onnx" / "__init__.py").write_text("raise ImportError('onnx is not installed here')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocked))
    errors = {}
    assert process.measure_peaks([1], tmp_path, errors) == {}
    assert "on 1 thread(s) was not measured (exit code 1)" in errors["1"] and "onnx is not installed" in errors["1"]
    r = row(threads=1)
    r.gflop_per_call = 0.1
    note = trust.limit_table([r], {"peak_errors": errors}, 1)
    assert note.startswith("Distance to the limit: no floor") and "onnx is not installed" in note


def _doc(machine: str, emulated: bool, accuracy: float, artifact="teacher/onnx-fp32", test_size=200):
    from test_bench_schema import row

    r = row(machine, variant=artifact.split("/")[1], runtime="onnxruntime")
    r.accuracy, r.macro_f1 = accuracy, accuracy - 0.05
    b = block(machine)
    b["hardware"]["emulated"] = emulated
    b["test_size"] = test_size
    return {"run": "tiny", "machines": {machine: b}}, [r]


def test_the_emulated_agreement_table():
    from tools.emulated_agreement import agreement, table

    arm, arm_rows = _doc("arm", True, 0.900)
    x86, x86_rows = _doc("x86", False, 0.905)
    out = agreement(arm, arm_rows, x86, x86_rows)
    assert len(out) == 1 and out[0]["texts_apart"] == pytest.approx(1.0) and out[0]["agrees"] is True
    assert "| teacher/onnx-fp32 | onnxruntime | fp32 | 0.9000 | 0.9050 |" in table(out)
    far, far_rows = _doc("x86", False, 0.95)
    assert agreement(arm, arm_rows, far, far_rows)[0]["agrees"] is False
    # The native file's emulated rows are not a reference, and an artifact measured nowhere else says so.
    assert agreement(arm, arm_rows, arm, arm_rows)[0]["native"] is None
    assert "not measured natively" in table(agreement(arm, arm_rows, arm, arm_rows))


def test_the_arm_script_checks_its_arguments_before_touching_anything(tmp_path):
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "tools" / "arm_emulated_bench.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    run = lambda *a: subprocess.run([str(script), *a], capture_output=True, text=True)
    help_text = run("--help").stdout
    assert "QEMU user-mode" in help_text and "--until STEP" in help_text and "set -euo" not in help_text
    assert "pass BUNDLE and OUT.json" in run().stderr
    assert "has no bundle.json" in run(str(tmp_path), "out.json").stderr
    assert "--cpu m1: a76" in run("--cpu", "m1", "--until", "packages").stderr
    assert "--until bogus: one of" in run("--until", "bogus").stderr
