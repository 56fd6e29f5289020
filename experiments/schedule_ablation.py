"""Small-data ablation: one fine-tuned teacher, one student method, several recipes, chosen on validation.

Each variant is a set of recipe overrides (schedule, loss, unlabelled pool, augmentation) for the
student; the teacher is trained once (``run`` with the base recipe) and reused. Rows record
validation macro-F1 (what defaults are chosen on), the compute each variant spent, and the test
macro-F1 beside it for the record only.

    python experiments/schedule_ablation.py experiments/smalldata-ablation/spec.yaml
    python experiments/schedule_ablation.py experiments/smalldata-ablation/spec.yaml --scheduler local:2
        (the variants on Dask workers)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from edgedistill import cluster
from edgedistill.cluster import SCHEDULER_HELP
from edgedistill.configbase import ConfigError, deep_merge
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.provenance import provenance


def run_variants(
    recipe_path: str,
    variants: dict[str, dict],
    method: str = "odd",
    overrides: list[str] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
    client=None,
) -> dict:
    """Train the teacher once (here), then every unfinished variant; ``variants.json`` / ``variants.md``
    after each. With a Dask ``client`` (``edgedistill.cluster.connect``) each variant is a task needing
    one ``train`` resource, retried once; its workers read the teacher from the run folder, so they
    share this machine's filesystem (``local:N``, or a shared mount). A variant that fails there is
    reported (``result["failed"]``) and the others go on."""
    from distill.pipeline import model_dir, train_run
    from edgedistill.configbase import parse_overrides
    from edgedistill.recipe import load_recipe

    if out_dir is not None:
        # The teacher's own results (metrics per epoch, plots) go beside the variants, not into results/ itself.
        overrides = [*(overrides or []), f"run.results_dir={out_dir}"]
    base = load_recipe(recipe_path, overrides)
    # Validate every variant before any compute.
    recipes = {
        name: load_recipe(recipe_path, deep_merge(parse_overrides(overrides), v)) for name, v in variants.items()
    }
    train_run(base, methods=["teacher"], progress=progress)
    teacher_dir = model_dir(base, "teacher")
    teacher_entry = json.loads((teacher_dir / "edgedistill.json").read_text())
    from distill.data import load_dataset

    data = load_dataset(base.data)
    out_dir = Path(out_dir or base.results_path)
    rows_path = out_dir / "variants.json"
    rows = json.loads(rows_path.read_text())["variants"] if rows_path.is_file() else {}
    for name in rows:
        print(f"[{name}] done before; skipping")
    todo = {name: (recipe, variants[name], method, base.data, str(teacher_dir), progress and client is None)
            for name, recipe in recipes.items() if name not in rows}
    outcomes = cluster.run(client, train_variant, todo, "train")
    failed = []
    for done in outcomes:
        if not done.ok:
            failed.append({"variant": done.name, "worker": done.worker, "error": done.error})
            print(f"[{done.name}] FAILED on {done.where()}: {done.error}", file=sys.stderr, flush=True)
            continue
        rows[done.name] = {**done.value, **({"worker": done.worker} if done.worker else {})}
        r = rows[done.name]
        print(f"[{done.name}] val macro-F1 {r['validation_macro_f1']:.4f} (best epoch {r['best_epoch']}, "
              f"{r['compute']['wall_time_s']:.0f} s{f', {done.where()}' if done.worker else ''})")
        result = {
            "schema_version": 1,
            "recipe": recipe_path,
            "overrides": overrides or [],
            "method": method,
            "selected_on": "validation macro-F1",
            "teacher": {
                "validation_macro_f1": teacher_entry["validation"]["macro_f1"],
                "best_epoch": teacher_entry["best_epoch"],
                "epochs": teacher_entry["epochs"],
                "epochs_run": teacher_entry.get("compute", {}).get("epochs_run"),
                "test_macro_f1_not_used_for_choice": teacher_entry["test"]["macro_f1"],
            },
            "data": data.summary(),
            # In the spec's order, whichever finished first.
            "variants": {n: rows[n] for n in [*variants, *rows] if n in rows},
            "provenance": provenance(),
        }
        atomic_write_json(rows_path, result)
        atomic_write_text(out_dir / "variants.md", table(result))
    done = json.loads(rows_path.read_text()) if rows_path.is_file() else {"variants": {}}
    return {**done, "failed": failed}


def train_variant(recipe, variant: dict, method: str, data_cfg, teacher_dir: str, progress: bool = False) -> dict:
    """Train ``method`` under one variant's recipe from the teacher in ``teacher_dir``; its row."""
    from accelerate.utils import set_seed

    from distill.data import load_dataset
    from distill.pipeline import checkpoint_complete, compute_entry, student_dataset, training_data
    from distill.train import TeacherCache, setup_method, train
    from edgedistill.methods import students

    if not checkpoint_complete(Path(teacher_dir)):
        raise ConfigError(f"no finished teacher at {teacher_dir} on this machine: the variants read the teacher the "
                          "sweep trained first, so run them where that folder is (--scheduler local:N, or workers "
                          "sharing the filesystem at the same path)")
    data = load_dataset(data_cfg)
    student_data, extra = student_dataset(recipe, data)
    set_seed(recipe.run.seed)
    setup = setup_method(method, recipe, data.label_names, Path(teacher_dir))
    cache = None
    if setup.teacher is not None and recipe.train.cache_teacher:
        cache = TeacherCache(
            setup.teacher,
            setup.tokenizer,
            student_data.train,
            recipe.data.max_length,
            recipe.train.eval_batch_size,
            "cpu",
            with_hidden=setup.loss.needs_hidden,
            progress=progress,
        )
    t0 = time.perf_counter()
    out = train(setup, training_data(method, data, student_data), recipe.data.max_length, recipe.run.seed,
                progress=progress, cache=cache)
    return {
        "overrides": variant,
        "extra_texts": extra if method in students() else {},
        "loss": setup.info["loss"],
        "lr": setup.train.lr,
        "epochs": setup.train.epochs,
        "best_epoch": out.best_epoch,
        "validation_macro_f1": out.validation["macro_f1"],
        "validation_history": [e["val_macro_f1"] for e in out.history["epochs"]],
        "compute": compute_entry(out, setup, cache, time.perf_counter() - t0),
        "test_macro_f1_not_used_for_choice": out.test["macro_f1"],
    }


def table(result: dict) -> str:
    t = result["teacher"]
    lines = [
        f"# Small-data ablation ({result['method']} student), chosen on validation macro-F1",
        "",
        f"Recipe `{result['recipe']}` with {result['overrides']}; commit `{result['provenance']['git_commit']}`, "
        f"{result['provenance']['hardware']['label']}. Teacher: validation macro-F1 {t['validation_macro_f1']:.4f} "
        f"(best epoch {t['best_epoch']} of {t['epochs_run'] or t['epochs']} run).",
        "",
        "| Variant | Val macro-F1 | % of teacher (val) | Best epoch / run | Steps | Examples/epoch | "
        "Est. TFLOPs (incl. teacher) | Wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["variants"].items():
        c = r["compute"]
        per_epoch = c["examples_seen"] // max(c["epochs_run"], 1)
        lines.append(
            f"| {name} | {r['validation_macro_f1']:.4f} | "
            f"{100 * r['validation_macro_f1'] / t['validation_macro_f1']:.1f} | "
            f"{r['best_epoch']} / {c['epochs_run']} | {c['optimizer_steps']} | {per_epoch} | "
            f"{c['total_flops'] / 1e12:.1f} | {c['wall_time_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python experiments/schedule_ablation.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", help="YAML with recipe, method, overrides (list) and variants (name -> overrides)")
    p.add_argument("--out", help="results folder (default: the spec's out, else the recipe's results folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra recipe override after the spec's own (repeatable), e.g. run.seed=2 to repeat a "
                        "spec at another seed")
    p.add_argument("--scheduler", metavar="local:N|tcp://HOST:PORT", help=SCHEDULER_HELP + "; each variant is one "
                   "task needing one `train` resource (its workers read the teacher trained here first)")
    args = p.parse_args(argv)
    client = None
    try:
        spec = yaml.safe_load(Path(args.spec).read_text()) or {}
        missing = [k for k in ("recipe", "variants") if k not in spec]
        if missing:
            raise ConfigError(
                f"{args.spec}: missing {', '.join(missing)} (keys: recipe, method, overrides, variants, out)"
            )
        if args.scheduler:
            client = cluster.connect(args.scheduler, "train")
        result = run_variants(
            spec["recipe"],
            spec["variants"],
            spec.get("method", "odd"),
            [*(spec.get("overrides") or []), *args.set],
            args.out or spec.get("out"),
            client=client,
        )
    except (ConfigError, cluster.ClusterError) as exc:
        print(f"schedule_ablation: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            cluster.close(client)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
