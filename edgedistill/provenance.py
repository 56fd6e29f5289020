"""What produced a result: git commit, command, hardware fingerprint and library versions.

Stored beside every metrics file, manifest and bench row so a number can be traced back.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "onnxscript",
             "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tokenizers", "scikit-learn",
             "numpy", "streamlit", "pytest-benchmark")
# x86 `flags` and aarch64 `Features` of /proc/cpuinfo worth recording (Arm: asimddp = int8 dot product,
# i8mm = int8 matrix multiply, bf16 = BF16 arithmetic on Graviton3 / Neoverse V1 and newer).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_int8", "amx_bf16", "sse4_2", "asimd", "asimddp", "i8mm", "bf16", "sve", "sve2",
             "svebf16")
# Set (to anything but 0) where the CPU is emulated in a way the checks in ``emulation`` cannot see.
EMULATED_VAR = "EDGEDISTILL_EMULATED"
# The architecture each /proc/cpuinfo layout belongs to: x86 lists `flags`, Arm `Features` / `CPU implementer`.
_CPUINFO_ARCH = {"flags": "x86", "vendor_id": "x86", "Features": "arm", "CPU implementer": "arm"}
_MACHINE_ARCH = {"x86_64": "x86", "amd64": "x86", "i386": "x86", "i686": "x86", "aarch64": "arm", "arm64": "arm",
                 "armv7l": "arm"}


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD, with ``-dirty`` when tracked code or configs differ from it. Edits under results/ do not count:
    they are this project's outputs (a long job rewrites its tables while it runs), not what produced them."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)results"],
                               cwd=cwd or Path(__file__).parent,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _cpuinfo(text: str | None = None) -> tuple[str, list[str]]:
    """The CPU model and its flags (x86 ``flags``, Arm ``Features``) from /proc/cpuinfo (or ``text``)."""
    model, flags = platform.processor() or platform.machine(), []
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
    return model, flags


def emulation(machine: str | None = None, cpuinfo: str | None = None, environ=None,
              binfmt: str | Path = "/proc/sys/fs/binfmt_misc") -> str | None:
    """Why this process's CPU looks emulated (QEMU user-mode, an explicit EDGEDISTILL_EMULATED), or None.

    - /proc/cpuinfo describes another architecture than ``platform.machine()`` (an arm64 root under
      qemu-user that sees the x86 host's cpuinfo);
    - QEMU's own variables (QEMU_CPU, QEMU_LD_PREFIX) are set: they act only on an emulator;
    - binfmt_misc hands this architecture to qemu (``qemu-<machine>`` enabled), which no native system does;
    - ``EDGEDISTILL_EMULATED`` is set (a bind-mounted Arm cpuinfo hides the rest).
    """
    machine = machine or platform.machine()
    environ = os.environ if environ is None else environ
    flag = str(environ.get(EMULATED_VAR, "")).strip()
    if flag and flag != "0":
        return f"{EMULATED_VAR}={flag}"
    for var in ("QEMU_CPU", "QEMU_LD_PREFIX"):
        if environ.get(var):
            return f"{var}={environ[var]} is set (QEMU user-mode)"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    keys = {line.partition(":")[0].strip() for line in cpuinfo.splitlines()}
    seen = {_CPUINFO_ARCH[k] for k in keys if k in _CPUINFO_ARCH}
    want = _MACHINE_ARCH.get(machine)
    if want and len(seen) == 1 and want not in seen:
        return f"/proc/cpuinfo describes an {seen.pop()} CPU but the process runs as {machine}"
    entry = Path(binfmt) / f"qemu-{machine}"
    try:
        if entry.read_text().splitlines()[0].strip() == "enabled":
            return f"binfmt_misc runs {machine} binaries through qemu ({entry})"
    except (OSError, IndexError):
        pass
    return None


def _gpus() -> list[dict]:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        name, driver, mem = [p.strip() for p in line.split(",")]
        gpus.append({"name": name, "driver": driver, "memory": mem})
    return gpus


# Boards of one model share a fingerprint; a name set here (e.g. in a fleet worker's environment)
# keeps each board's rows apart, and is part of its id and label.
MACHINE_NAME_VAR = "EDGEDISTILL_MACHINE_NAME"


@functools.lru_cache(maxsize=1)
def hardware() -> dict:
    """A fingerprint of this machine; ``machine_id`` is stable across runs on the same box
    (and the same ``EDGEDISTILL_MACHINE_NAME``, when it is set)."""
    import psutil

    model, flags = _cpuinfo()
    gpus = _gpus()
    info = {
        "cpu_model": model,
        "physical_cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "logical_cores": psutil.cpu_count(logical=True),
        "isa_flags": [f for f in ISA_FLAGS if f in flags],
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": gpus,
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "python": sys.version.split()[0],
    }
    key = "|".join([model, str(info["logical_cores"]), str(info["memory_gb"]), ",".join(g["name"] for g in gpus)])
    name = os.environ.get(MACHINE_NAME_VAR, "").strip()
    if name:
        info["machine_name"] = name
        key += f"|{name}"
    # An emulated CPU is never the board it imitates: its own id, and its timings are never ranked.
    emulated_by = emulation(info["arch"])
    info["emulated"] = emulated_by is not None
    if emulated_by:
        info["emulated_by"] = emulated_by
        key += f"|emulated on {info['arch']}"
    info["machine_id"] = hashlib.sha1(key.encode()).hexdigest()[:12]
    info["label"] = (f"{name}: " if name else "") + f"{model} x{info['logical_cores']}" + \
        (f" + {gpus[0]['name']}" if gpus else "") + (" (emulated)" if emulated_by else "")
    return info


def threads() -> dict:
    """The thread settings a result was produced with: on CPU, training with 1 or 2 threads sums in another
    order, and the last digits of a metric (or a borderline prediction) can differ."""
    torch = sys.modules.get("torch")       # not imported here: the slim bench environment has no torch
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.get_num_threads() if torch is not None else None}


# The commit this process's code came from, read when the module is first imported (every stage imports it
# at start-up). Read at write time instead, a long run would stamp its results with whatever was checked out
# when it finished, which need not be the code that trained them.
STARTED_AT_COMMIT = git_commit()


def footer(prov: dict, command: list[str], when: str) -> str:
    """The line a result's markdown ends with: what ran (``command``), at which commit, on what, when."""
    return (f"`{' '.join(map(str, command))}` at commit `{str(prov.get('git_commit'))[:7]}` on "
            f"{prov.get('hardware', {}).get('label', '?')}, {when}.")


def provenance(command: list[str] | None = None) -> dict:
    return {
        "git_commit": STARTED_AT_COMMIT,
        "command": " ".join(command if command is not None else sys.argv),
        "hardware": hardware(),
        "threads": threads(),
        "libraries": library_versions(),
    }
