"""How training was launched: several processes must share one distributed state.

``torchrun`` and ``accelerate launch --multi_gpu`` start one process per rank and Accelerate joins
them (NCCL on GPUs; gloo on CPUs when ``ACCELERATE_USE_CPU=true``). Two launches look right and are
not: a plain ``torchrun`` on a CPU machine starts processes that Accelerate leaves unconnected, each
training a full copy and writing the same files; ``accelerate launch --cpu --num_processes 2`` (no
MPI hostfile) starts a single process. The first is refused, the second warned about.
"""
from __future__ import annotations

import os
import sys


def cpu_launch_hint(n: int) -> str:
    return (f"on CPUs launch with `ACCELERATE_USE_CPU=true torchrun --nproc_per_node {n} -m edgedistill_cli train "
            f"RECIPE`, on GPUs with `accelerate launch --multi_gpu --num_processes {n} -m edgedistill_cli train "
            "RECIPE`")


def check_processes(accelerator) -> None:
    """Raise RunError when several processes were started without a distributed state; warn when
    ``accelerate launch`` was asked for several CPU processes and started one."""
    from distill.errors import RunError

    world = int(os.environ.get("WORLD_SIZE") or 1)
    if world > 1 and accelerator.num_processes != world:
        raise RunError(f"{world} processes were started (WORLD_SIZE={world}), but Accelerate joined "
                       f"{accelerator.num_processes} (distributed type {accelerator.distributed_type.value}): each "
                       f"would train a full copy and write the same files. Nothing was done; {cpu_launch_hint(world)} "
                       "(README, Training on several GPUs).")
    asked = launcher_processes()
    if asked and asked > 1 and accelerator.num_processes == 1:
        print(f"WARNING: `accelerate launch` was asked for {asked} processes but started one (its --cpu launcher "
              f"needs an MPI hostfile for more); training goes on in this single process. For {asked} CPU "
              f"processes launch with `ACCELERATE_USE_CPU=true torchrun --nproc_per_node {asked} -m edgedistill_cli "
              "train RECIPE`.", file=sys.stderr, flush=True)


def launcher_processes() -> int | None:
    """--num_processes of an ``accelerate launch`` parent process, read from /proc (Linux); else None."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    if not any("accelerate" in a for a in argv) or "launch" not in " ".join(argv):
        return None
    for i, a in enumerate(argv):
        if a in ("--num_processes", "--num-processes") and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(("--num_processes=", "--num-processes=")):
            value = a.split("=", 1)[1]
        else:
            continue
        return int(value) if value.isdigit() else None
    return None
