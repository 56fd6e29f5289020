"""``edgedistill export --run runs/<run>``: a thin layer over ``export.pipeline.export_run``.

    edgedistill export --run runs/quickstart
    edgedistill export --run runs/quickstart --models odd,even --variants onnx-int8-dynamic,openvino-int8-trim
    edgedistill export --run runs/quickstart --calibration-size 500 --set trim_min_count=2 --force
    edgedistill export --model path/to/fine-tuned --data reviews.csv --text-column body --label-column rating

``--model`` takes a fine-tuned sequence classifier (a save_pretrained folder or a hub id) as it
is: a run folder ``runs/<name>`` is made with it as the teacher (``teacher.fine_tune: false``,
no training; labels from its id2label, checked against the data's), evaluated on the data's
test split, then exported. Bench it next with ``edgedistill bench --run runs/<name>``.

Settings come from the recipe's ``export:`` section (runs/<run>/recipe.yaml); flags override.
Heavy imports (torch, onnxruntime, openvino) happen inside ``main`` so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from edgedistill.configbase import csv_list, default_of
from edgedistill.methods import ORDER
from export.config import ExportConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from export.config import KNOWN_VARIANTS

    parser.add_argument("--run", help="run folder written by `edgedistill train` (runs/<run>)")
    parser.add_argument("--model", help="instead of --run: a fine-tuned classifier (save_pretrained folder or hub id), "
                        "exported as it is, with no training")
    parser.add_argument("--data", help="with --model: the test data, a preset (tweet-sentiment, hate-speech, ...) "
                        "or a .csv / .jsonl / .parquet file")
    parser.add_argument("--text-column", help="with --model and a data file: the text column")
    parser.add_argument("--label-column", help="with --model and a data file: the label column")
    parser.add_argument("--name", help="with --model: the run name (default: the model folder's name)")
    parser.add_argument("--runs-dir", default="runs", help="with --model: where the run folder goes")
    parser.add_argument("--results-dir", default="results", help="with --model: where the results go")
    parser.add_argument("--models", type=csv_list, default=None,
                        help=f"comma-separated models ({','.join(ORDER)}); None = every trained one")
    parser.add_argument("--variants", type=csv_list, default=None,
                        help="comma-separated variants; None = the recipe's export.variants. Known: "
                             + ", ".join(KNOWN_VARIANTS))
    parser.add_argument("--calibration-size", type=int, default=None,
                        help="TRAIN examples for static INT8 / NNCF calibration; None = the recipe's (default "
                             f"{default_of(ExportConfig, 'calibration_size')})")
    parser.add_argument("--parity-samples", type=int, default=None,
                        help="TEST examples for the logit parity check; None = the recipe's (default "
                             f"{default_of(ExportConfig, 'parity_samples')})")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="cap on TEST examples for macro-F1; None = the recipe's (default "
                             f"{default_of(ExportConfig, 'eval_samples', 'the whole test split')})")
    parser.add_argument("--threads", type=int, default=None, help="threads for the checks; None = all cores")
    parser.add_argument("--no-trim", action="store_true", help="skip the vocabulary-trimmed (-trim) variants")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="any export setting, e.g. --set trim_min_count=2 --set dynamic_source=plain")
    parser.add_argument("--force", action="store_true", help="rebuild artifacts that already have a manifest")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")


def config_from_args(args, recipe=None):
    """The recipe's export section (default: the run's), then --set overrides, then the dedicated flags."""
    from edgedistill.configbase import parse_overrides
    from edgedistill.recipe import load_run_recipe
    from export.config import load_export_config

    recipe = recipe or load_run_recipe(Path(args.run))
    extra = parse_overrides(args.overrides)             # "trim_min_count=2" or "export.trim_min_count=2"
    extra = {**{k: v for k, v in extra.items() if k != "export"}, **extra.get("export", {})}
    flags = {"models": args.models, "variants": args.variants, "calibration_size": args.calibration_size,
             "parity_samples": args.parity_samples, "eval_samples": args.eval_samples, "threads": args.threads,
             "trim_vocab": False if args.no_trim else None, "force": True if args.force else None}
    return load_export_config(recipe.export, {**extra, **flags})


def model_recipe(args):
    """The recipe of a run made for ``--model``: the given classifier as the teacher, used as it is."""
    from distill.data import PRESETS
    from edgedistill.configbase import ConfigError
    from edgedistill.methods import ORDER
    from edgedistill.recipe import load_recipe

    if not args.data:
        raise ConfigError("--model needs --data: a preset (tweet-sentiment, hate-speech, wiki-toxic) or a data file")
    data = {"source": args.data} if args.data in PRESETS and args.data != "file" else {
        "source": "file", "path": args.data, "text_column": args.text_column, "label_column": args.label_column}
    name = args.name or Path(args.model.rstrip("/")).name
    return load_recipe(overrides={
        "run": {"name": name, "runs_dir": args.runs_dir, "results_dir": args.results_dir}, "data": data,
        "teacher": {"model": args.model, "fine_tune": False},
        "methods": {m: {"enabled": False} for m in ORDER if m != "teacher"}})


def main(args) -> int:
    from edgedistill.configbase import ConfigError
    from edgedistill.layout import RunFolderError
    from edgedistill.runtime import ArtifactError

    try:
        from distill.data import DataError
        from distill.errors import RunError
        from edgedistill.checkpoint import ModelError
        from export.pipeline import export_run

        if bool(args.run) == bool(args.model):
            raise ConfigError("pass --run runs/<run> (a trained run) or --model PATH --data DATA (a fine-tuned "
                              "classifier, exported as it is)")
        from edgedistill.layout import run_lock

        recipe = model_recipe(args) if args.model else None
        # Every export setting is checked before the given model is saved as a run.
        cfg = config_from_args(args, recipe)
        with run_lock(recipe.run_dir if recipe else args.run, create=recipe is not None):
            if recipe is not None:
                from distill.pipeline import train_run

                # The PyTorch evaluation of the given model honours --eval-samples, as the checks do.
                train_run(recipe, methods=["teacher"], progress=False, eval_samples=args.eval_samples,
                          keep_going=False)
                args.run = str(recipe.run_dir)
            rows = export_run(args.run, cfg, progress=not args.no_progress)
    except (ArtifactError, ConfigError, DataError, ModelError, RunError, RunFolderError) as exc:
        message = str(exc) if "\n" in str(exc) else textwrap.fill(" ".join(str(exc).split()), width=100)
        print(f"edgedistill export: error: {message}", file=sys.stderr)
        return 2
    return 0 if rows is not None else 1
