"""``edgedistill bench``: a thin layer over ``bench.launchers.process.run_bench`` / ``merge_bench_file``.

    edgedistill bench --run runs/hate-speech                          every artifact, all cores
    edgedistill bench --run runs/hate-speech --threads all,1 --repeat 2
    edgedistill bench --run runs/hate-speech --models teacher,odd --runtimes onnxruntime --quick
    edgedistill bench --run runs/hate-speech --merge h100-bench.json  fold in another machine's file
    edgedistill bench --bundle quickstart-bundle --out bench.json     a bundle (edgedistill bundle), slim install
    edgedistill bench --bundle quickstart-bundle --browser --out browser.json   its ONNX artifacts in headless
                                                                      Chromium (ONNX Runtime Web), another machine
    edgedistill bench --bundle B --scheduler tcp://HOST:8786 --out bench.json   on every `target` worker of a
                                                                      Dask cluster, merged into one file

Flags override the recipe's ``bench:`` section; ``--set bench.key=value`` reaches any option.
Exit codes: 0 all jobs measured, 1 some jobs failed (the rest were written), 2 nothing done.
"""
from __future__ import annotations

import argparse

from bench.config import BenchConfig
from edgedistill.cluster import SCHEDULER_HELP
from edgedistill.configbase import csv_list, default_of
from edgedistill.methods import BASELINES, ORDER


def _count_or(word: str):
    def parse(value: str) -> list:
        out = []
        for v in csv_list(value):
            if v == word:
                out.append(v)
            else:
                try:
                    out.append(int(v))
                except ValueError:
                    raise argparse.ArgumentTypeError(f"{v!r} is neither {word!r} nor a whole number") from None
        return out
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Option flags default to SUPPRESS: unset means "as the recipe's bench section says".
    keep = argparse.SUPPRESS
    parser.add_argument("--run", help="the run folder, runs/<run> (checkpoints in models/, exports in artifacts/)")
    parser.add_argument("--bundle", metavar="DIR", help="bench a bundle written by `edgedistill bundle` instead of a "
                        "run folder (needs only the slim install); its files are verified first")
    parser.add_argument("--out", metavar="FILE", help="with --bundle: the bench.json to write (default: "
                        "bench.json in the current folder); merge it at home with --run ... --merge FILE")
    parser.add_argument("--scheduler", metavar="local:N|tcp://HOST:PORT", help="with --bundle: bench it on every "
                        "Dask worker that offers the `target` resource, one bench per machine, each machine's rows "
                        "merged into --out under its own fingerprint (" + SCHEDULER_HELP + ")")
    parser.add_argument("--targets", nargs="+", metavar="all|NAME", default=["all"],
                        help="with --scheduler: the target workers by name (dask worker --name NAME)")
    parser.add_argument("--results", default=keep,
                        help="results folder (default: <results_dir>/<run> from the run's recipe)")
    parser.add_argument("--merge", metavar="FILE", default=keep, help="fold FILE (a bench.json from another "
                        "machine, e.g. the GPU script's) into the results; that machine's rows are replaced, "
                        "nothing is measured")
    parser.add_argument("--note", metavar="TEXT", help="with --merge: where and how the merged file was measured, "
                        "kept in its machine block (e.g. the GPU box's software stack and the command)")
    parser.add_argument("--add", action="store_true", help="with --merge: keep that machine's rows the file does not "
                        "measure (a second file from the same machine, e.g. ONNX Runtime on CUDA beside the GPU "
                        "script's PyTorch rows)")
    parser.add_argument("--force-new", action="store_true", help="if bench.json is corrupt or of another schema, "
                        "keep it as bench.json.corrupt-<time> and start a new file")
    parser.add_argument("--set", action="append", default=[], metavar="bench.KEY=VALUE",
                        help="override any bench option, e.g. --set bench.min_rounds=500 (repeatable)")
    parser.add_argument("--models", type=csv_list, default=keep,
                        help=f"comma-separated: {','.join((*ORDER, *BASELINES))}")
    parser.add_argument("--variants", type=csv_list, default=keep, help="comma-separated: pytorch,onnx-fp32,...")
    parser.add_argument("--runtimes", type=csv_list, default=keep,
                        help="comma-separated: pytorch,onnxruntime,openvino,numpy (numpy: a static student's FP32 "
                        "artifact, served without an inference engine)")
    parser.add_argument("--devices", type=csv_list, default=keep,
                        help="comma-separated: cpu,cuda,gpu (unset: all present)")
    parser.add_argument("--threads", type=_count_or("all"), default=keep,
                        help="comma-separated thread counts; all = every physical core (recipe default: "
                        f"{default_of(BenchConfig, 'threads')})")
    parser.add_argument("--one-thread", action="store_true", help="also measure with 1 thread")
    parser.add_argument("--seq-lens", type=_count_or("natural"), default=keep,
                        help=f"batch-1 lengths (recipe default: {default_of(BenchConfig, 'seq_lens')})")
    parser.add_argument("--batch-size", type=int, default=keep, help=f"throughput batch size (recipe default: "
                        f"{default_of(BenchConfig, 'batch_size')})")
    parser.add_argument("--repeat", type=int, default=keep,
                        help="time everything N times; report.md shows the p50 spread (recipe default: "
                        f"{default_of(BenchConfig, 'repeat')})")
    parser.add_argument("--max-test", type=int, default=keep,
                        help="cap the test texts used for accuracy (recipe default: "
                        f"{default_of(BenchConfig, 'max_test', 'the full split')})")
    parser.add_argument("--min-rounds", type=int, default=keep,
                        help="pytest-benchmark minimum rounds per latency case (recipe default: "
                        f"{default_of(BenchConfig, 'min_rounds')})")
    parser.add_argument("--max-time", type=float, default=keep,
                        help="pytest-benchmark seconds per case (recipe default: "
                        f"{default_of(BenchConfig, 'max_time')})")
    parser.add_argument("--browser", action="store_true", help="time text -> label of the ONNX artifacts in headless "
                        "Chromium (ONNX Runtime Web, WASM) as another machine, instead of this machine's runtimes; "
                        "needs chromium and `npm ci` in bench/launchers/browser (docs/bundle.md)")
    parser.add_argument("--no-bf16", action="store_true", help="skip BF16 on CPUs that support it")
    parser.add_argument("--quick", action="store_true", help="a few rounds on a few texts: checks, not numbers "
                        "(written to <results>/<run>/quick/ unless --results says where)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from(args: argparse.Namespace) -> dict:
    from edgedistill.configbase import ConfigError, parse_overrides

    sets = parse_overrides(args.set)
    other = sorted(set(sets) - {"bench"})
    if other:
        raise ConfigError(f"--set {other[0]}.…: bench only takes bench.KEY=VALUE overrides")
    out = dict(sets.get("bench", {}))
    for key in ("models", "variants", "runtimes", "devices", "threads", "seq_lens", "batch_size", "repeat",
                "max_test", "min_rounds", "max_time"):
        if hasattr(args, key):
            out[key] = getattr(args, key)
    if args.quick:
        out["quick"] = True
    if args.no_bf16:
        out["include_bf16"] = False
    if args.one_thread:
        out["threads"] = list(out.get("threads") or ["all"]) + [1]
    return out


def main(args: argparse.Namespace) -> int:
    import sys

    from bench.bundles.spec import BundleError
    from bench.launchers.process import BenchError
    from bench.launchers.web import BrowserError
    from bench.schema import BenchFileError
    from edgedistill.configbase import ConfigError
    from edgedistill.layout import RunFolderError
    from edgedistill.runtime import ArtifactError

    errors: tuple = (ArtifactError, BenchError, BenchFileError, BrowserError, BundleError, ConfigError,
                     RunFolderError)
    if getattr(args, "scheduler", None):
        return _main_fleet(args, errors)
    if getattr(args, "bundle", None):
        # The slim path: nothing here may import torch, transformers, pandas or scikit-learn.
        from bench.launchers.bundle import bench_bundle

        if args.run or getattr(args, "merge", None):
            print("edgedistill bench: --bundle measures a bundle; merge its output at home with --run ... --merge",
                  file=sys.stderr)
            return 2
        try:
            outcome = bench_bundle(args.bundle, args.out or "bench.json", overrides_from(args),
                                   force_new=args.force_new, progress=not args.no_progress,
                                   command=["edgedistill"] + sys.argv[1:], browser=args.browser)
        except errors as exc:
            print(f"edgedistill bench: {exc}", file=sys.stderr)
            return 2
        return 1 if outcome.failures else 0
    from distill.data import DataError

    return _main_run(args, errors + (DataError,))


def _main_fleet(args: argparse.Namespace, errors: tuple) -> int:
    """--bundle DIR --scheduler ...: the bundle on every chosen target worker (``bench.launchers.fleet``)."""
    import sys

    from bench.launchers.fleet import fleet_bench
    from edgedistill import cluster

    if not args.bundle or args.run or getattr(args, "merge", None):
        print("edgedistill bench: --scheduler benches a bundle on a fleet: pass --bundle DIR (and --out FILE), "
              "not --run or --merge", file=sys.stderr)
        return 2
    client = None
    try:
        client = cluster.connect(args.scheduler, "target")
        outcome = fleet_bench(args.bundle, args.out or "bench.json", client, args.targets, overrides_from(args),
                              command=["edgedistill"] + sys.argv[1:])
    except errors + (cluster.ClusterError,) as exc:
        print(f"edgedistill bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            cluster.close(client)
    return 1 if outcome.failures or any(outcome.failed_jobs.values()) else 0


def _main_run(args: argparse.Namespace, errors: tuple) -> int:
    import contextlib
    import sys
    from pathlib import Path

    from bench.launchers.process import BenchError, merge_bench_file, run_bench

    try:
        results = getattr(args, "results", None)
        from edgedistill.layout import run_lock

        if results and Path(results).exists() and not Path(results).is_dir():
            raise BenchError(f"--results {results} is a file; pass the folder that holds (or will hold) bench.json, "
                             "e.g. --results results/<run>")
        if getattr(args, "merge", None):
            results = results or _results_for(args.run)
            # The run's lock: a bench of the same run, finishing later, would write its rows over the merged ones.
            with run_lock(args.run) if args.run else contextlib.nullcontext():
                merged = merge_bench_file(args.merge, results, force_new=args.force_new, note=args.note,
                                          add=args.add)
            print(f"merged machine(s) {', '.join(merged)} from {args.merge} into {Path(results) / 'bench.json'}")
            return 0
        if not args.run:
            raise BenchError("pass --run runs/<run> (the run folder to benchmark), "
                             "or --merge FILE with --run/--results")
        if args.quick and results is None:
            # Checks, not numbers: beside the run's real rows, never over them (--results to choose).
            from edgedistill.recipe import results_root_of

            results = str(Path(results_root_of(args.run)) / "quick")
            print(f"--quick: writing to {results} (the run's bench.json is left as it is; --results DIR to choose)")
        with run_lock(args.run):
            outcome = run_bench(args.run, overrides_from(args), results_dir=results, force_new=args.force_new,
                                progress=not args.no_progress, command=["edgedistill"] + sys.argv[1:],
                                browser=getattr(args, "browser", False))
    except errors as exc:
        print(f"edgedistill bench: {exc}", file=sys.stderr)
        return 2
    return 1 if outcome.failures else 0


def _results_for(run: str | None) -> str:

    from bench.launchers.process import BenchError
    from edgedistill.recipe import results_root_of

    if not run:
        raise BenchError("--merge needs --run runs/<run> or --results results/<run> to know where to merge")
    return str(results_root_of(run))
