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
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_int8", "amx_bf16", "sse4_2", "asimd", "sve")


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


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    return model, flags


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
    info["machine_id"] = hashlib.sha1(key.encode()).hexdigest()[:12]
    info["label"] = (f"{name}: " if name else "") + f"{model} x{info['logical_cores']}" + \
        (f" + {gpus[0]['name']}" if gpus else "")
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


def provenance(command: list[str] | None = None) -> dict:
    return {
        "git_commit": STARTED_AT_COMMIT,
        "command": " ".join(command if command is not None else sys.argv),
        "hardware": hardware(),
        "threads": threads(),
        "libraries": library_versions(),
    }
