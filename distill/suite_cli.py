"""``edgedistill suite SUITE``: a thin layer over ``distill.suite`` (also ``edgedistill suite``).

    edgedistill suite experiments/suite/suite.yaml                          every (entry, seed), one after another
    edgedistill suite experiments/suite/suite.yaml --scheduler local:2      on 2 worker processes of this machine
    edgedistill suite experiments/suite/suite.yaml --scheduler tcp://HOST:8786   on a Dask cluster's `train` workers
    edgedistill suite experiments/suite/suite.yaml --tables                 the tables from the finished rows

Exit codes: 0 done, 1 some pairs failed on the cluster (the others were written), 2 nothing done.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgedistill.cluster import SCHEDULER_HELP


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite YAML, e.g. experiments/suite/suite.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value for every entry (repeatable)")
    p.add_argument("--only", nargs="+", help="train only these entries (finished ones are still aggregated)")
    p.add_argument("--seeds", nargs="+", type=int,
                   help="train only these seeds (finished ones are still aggregated); to spread a suite over "
                        "machines, use --scheduler")
    p.add_argument("--scheduler", metavar="local:N|tcp://HOST:PORT", help=SCHEDULER_HELP + "; each (entry, seed) "
                   "is one task needing one `train` resource, retried once")
    p.add_argument("--progress", action="store_true", help="progress bars (sequential runs only)")
    p.add_argument("--rerun-stale", action="store_true",
                   help="retrain the finished pairs whose recorded recipe differs from what the suite file now gives "
                        "(only the changed methods; without the run folder, beside a retrained teacher that must "
                        "reproduce the row's, else the whole pair)")
    p.add_argument("--plan", action="store_true", help="print the projected time and exit (trains nothing)")
    p.add_argument("--tables", action="store_true",
                   help="rewrite suite.json, suite.md and retained.png from the finished rows (trains nothing)")
    p.add_argument("--costs-from", default="results/hate-speech/metrics.json",
                   help="a run's metrics.json or a finished suite row (experiments/suite/entries/*.json) from this "
                        "machine, whose measured costs the plan uses")


def main(args: argparse.Namespace) -> int:
    from distill.data import DataError
    from distill.errors import RunError
    from distill.suite import load_suite, plan, run_suite, write_finished_tables
    from edgedistill import cluster
    from edgedistill.checkpoint import ModelError
    from edgedistill.configbase import ConfigError
    from edgedistill.io import atomic_write_json

    client = None
    try:
        if args.plan:
            result = plan(args.suite, args.costs_from, args.overrides)
            atomic_write_json(Path(load_suite(args.suite, args.overrides)[0].results_dir) / "plan.json", result)
            return 0
        if args.tables:
            result = write_finished_tables(args.suite, args.overrides)
            print(f"{len(result['entries'])} entries aggregated; missing: {', '.join(result['missing']) or 'none'}")
            return 0
        if args.scheduler:
            load_suite(args.suite, args.overrides)          # a bad suite file fails before a cluster starts
            client = cluster.connect(args.scheduler, "train")
        result = run_suite(args.suite, args.overrides, progress=args.progress, only=args.only,
                           rerun_stale=args.rerun_stale, seeds=args.seeds, client=client)
    except (ConfigError, DataError, ModelError, RunError, cluster.ClusterError) as exc:
        print(f"suite: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            cluster.close(client)
    if result["failed"]:
        print(f"suite: {len(result['failed'])} pair(s) failed: "
              + "; ".join(f"{f['pair']} (worker {f['worker'].get('name', 'unknown')})" for f in result["failed"]),
              file=sys.stderr)
        return 1
    return 0
