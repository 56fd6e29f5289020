"""``edgedistill train RECIPE``: fine-tune the teacher, then train the students, LoRA and hybrid.

Exit codes: 0 everything trained, 2 nothing done (the recipe, data or run folder needs a fix),
3 some methods or baselines failed (listed in metrics.json's ``failed`` and results.md; the others
were written; the same command retries only what failed)."""
from __future__ import annotations

import argparse
import sys

from edgedistill.methods import BASELINES, ORDER


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe YAML, e.g. configs/hate-speech.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value, e.g. --set train.epochs=1 --set data.max_train=2000 (repeatable)")
    p.add_argument("--methods", nargs="+", choices=[*ORDER, *BASELINES],
                   help="train only these methods or baselines (the teacher is trained first when a student needs "
                        "it; without --methods every enabled method and baseline is trained)")
    p.add_argument("--force", action="store_true", help="retrain methods whose checkpoints are already complete")
    p.add_argument("--retrain-changed", action="store_true",
                   help="after editing the recipe: retrain only the methods whose settings changed (students too when "
                        "the teacher's did) and keep the other checkpoints; without it a changed run folder is refused")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def main(args) -> int:
    import contextlib
    import os

    from distill.data import DataError
    from distill.errors import RunError
    from distill.failures import TRAIN_FAILED, summary
    from distill.pipeline import train_run
    from edgedistill.checkpoint import ModelError
    from edgedistill.configbase import ConfigError
    from edgedistill.layout import RunFolderError, run_lock
    from edgedistill.recipe import load_recipe

    try:
        recipe = load_recipe(args.recipe, args.overrides)
        # The run folder's lock: no export, bench or second train works on it meanwhile (the other
        # processes of a distributed launch follow the main one, which holds it).
        main_process = os.environ.get("RANK", "0") == "0"
        with run_lock(recipe.run_dir, create=True) if main_process else contextlib.nullcontext():
            metrics = train_run(recipe, methods=args.methods, force=args.force, progress=not args.no_progress,
                                retrain_changed=args.retrain_changed)
    except (ConfigError, DataError, ModelError, RunError, RunFolderError) as exc:
        print(f"edgedistill train: {exc}", file=sys.stderr)
        return 2
    if metrics.get("failed"):
        print(f"edgedistill train: {summary(metrics['failed'])}", file=sys.stderr)
        return TRAIN_FAILED
    return 0
