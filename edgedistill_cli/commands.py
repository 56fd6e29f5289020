"""The ``edgedistill`` command: one subcommand per stage, each a thin layer over a library function.

    edgedistill train configs/hate-speech.yaml        fine-tune the teacher, distil the students
    edgedistill export --run runs/hate-speech          ONNX / OpenVINO, FP32 and INT8, checked
    edgedistill bench --run runs/hate-speech           accuracy, size, latency on this machine
    edgedistill bundle --run runs/hate-speech --out B  a folder to bench elsewhere: edgedistill bench --bundle B
    edgedistill run configs/quickstart.yaml            all three, resuming finished stages
    edgedistill suite SUITE.yaml                       the generality suite (--scheduler: on a Dask cluster)
    edgedistill dashboard --results results            explore the results in Streamlit
    edgedistill layers configs/hate-speech.yaml        which teacher layers matter (after training)
    edgedistill compare OLD/bench.json NEW/bench.json  two bench runs of one machine, row by row
    edgedistill gpu-pack --run runs/hate-speech        checkpoints packed for a GPU machine
    edgedistill gpu-bench --pack PACK --out bench.json the GPU bench (on the CUDA machine)
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

STAGES = {
    "train": ("distill.cli", "fine-tune the teacher and train odd/even/LoRA/hybrid students"),
    "export": ("export.cli", "convert trained models to ONNX and OpenVINO, FP32 and INT8, with parity checks"),
    "bench": ("bench.cli", "measure accuracy, size and latency of every artifact on this machine"),
    "bundle": ("bench.bundles.cli", "write a portable bench bundle (artifacts, test texts, settings, hashes) for "
               "another machine"),
    "suite": ("distill.suite_cli", "train one recipe on several data sets and seeds (retained macro-F1), "
              "optionally spread over a Dask cluster"),
    "run": ("edgedistill_cli.orchestrate", "train -> export -> bench in one go, skipping stages already complete"),
    "dashboard": ("dashboard.cli", "start the Streamlit dashboard over a results folder"),
    "layers": ("distill.layers", "which teacher layers matter: drop-one-layer analysis of a trained teacher on the "
               "validation split (what `layers: auto` keeps)"),
    "compare": ("bench.reporting.compare", "how far two bench.json files from the same machine agree, row by row"),
    "gpu-pack": ("bench.bundles.gpu_pack", "pack a run's checkpoints for a GPU machine (FP16 weights, vocabulary cut "
                 "to the test texts)"),
    "gpu-bench": ("bench.launchers.gpu.run", "benchmark a GPU pack or a bundle written with --gpu on a CUDA machine "
                  "(--smoke: a CPU check of the script)"),
}


# Libraries of the full install that the slim one (bench --bundle) leaves out.
FULL_INSTALL = {"torch", "transformers", "pandas", "sklearn", "datasets", "streamlit", "matplotlib", "accelerate",
                "peft", "optimum", "nncf", "safetensors", "model2vec", "plotly", "altair", "setfit"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported (``edgedistill --help`` stays fast)."""
    parser = argparse.ArgumentParser(prog="edgedistill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == command:
            importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in FULL_INSTALL:
            raise
        # The slim install (README) benches bundles only; every other command needs the full one.
        print(f"edgedistill {args.command}: this command needs the full install (`make install`): {exc.name} is not "
              "installed here. The slim install runs `edgedistill bench --bundle DIR` only.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Folders are written whole or not at all and locks go with the process: nothing to clean up.
        print(f"\nedgedistill {args.command}: interrupted (Ctrl-C); finished work is kept, the folder being written "
              "was discarded. Run the same command again to go on.", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # Every folder is written whole or not at all (edgedistill.io.atomic_dir), so what
        # finished before the disk filled up is complete and kept.
        print(f"edgedistill {args.command}: the disk is full (no space left writing {exc.filename or 'a file'}). "
              "What finished before is kept: complete checkpoints, artifacts and result files stay, the folder being "
              "written was discarded. Free some space (df -h shows where) and run the same command again; finished "
              "work is kept and the stage goes on from there.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
