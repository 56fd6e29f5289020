"""Static-student ablation: what each step of the ``static`` recipe adds over plain model2vec, on validation.

The shipped static student differs from the model2vec baseline in four ways; each variant below adds
them one at a time, with the same budget (the recipe's ``static`` schedule), seed and data:

- the table: model2vec's distillation of the PRE-TRAINED body (as the baseline) or of the FINE-TUNED teacher;
- what trains: the head alone on a frozen table (as model2vec's classifier) or the table and the head;
- the loss: cross-entropy on the labels, or the recipe's distillation loss (labels + the teacher's logits);
- the data: the labelled texts, or the labelled texts plus the teacher-labelled pool.

Variants are compared on validation macro-F1; the test split is recorded beside it and never used to
choose. The model2vec baseline's own validation score (its library's classifier, from the run's
metrics.json) is the reference row. The run's fine-tuned teacher is reused, so train it first.

    python experiments/static_ablation.py runs/quickstart
        -> experiments/static-ablation/quickstart.json, quickstart.md
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from edgedistill.configbase import ConfigError
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.provenance import provenance
from edgedistill.recipe import load_run_recipe

METHOD = "static"

# table source, does the table train, loss, teacher-labelled pool. The last is what ships.
VARIANTS = {
    "pretrained-frozen-ce": ("pretrained", False, "ce", False),
    "finetuned-frozen-ce": ("finetuned", False, "ce", False),
    "finetuned-trained-ce": ("finetuned", True, "ce", False),
    "finetuned-trained-kd": ("finetuned", True, "kd", False),
    "pretrained-trained-kd-pool": ("pretrained", True, "kd", True),
    "finetuned-trained-kd-pool": ("finetuned", True, "kd", True),
}
SHIPPED = "finetuned-trained-kd-pool"

# The record of this experiment sits beside the script.
OUT_DIR = Path(__file__).parent / "static-ablation"


def model2vec_baseline(run_dir: Path) -> dict | None:
    """The model2vec baseline's validation and test scores, from the run's own baseline record, if it trained."""
    path = run_dir / "baselines" / "model2vec.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return {"validation_macro_f1": doc["validation"]["macro_f1"], "test_macro_f1": doc["test"]["macro_f1"],
            "test_per_class_f1": {k: v["f1"] for k, v in doc["test"]["per_class"].items()}}


def run_ablation(run_dir: Path, variants: dict | None = None, progress: bool = True, out_dir=OUT_DIR) -> dict:
    from accelerate.utils import set_seed

    from distill.data import load_dataset
    from distill.models import resolve_model_source
    from distill.pipeline import checkpoint_complete, model_dir, student_dataset
    from distill.static import build_static_student
    from distill.train import CE_ONLY, TeacherCache, setup_method, train

    recipe = load_run_recipe(run_dir)
    variants = variants or VARIANTS
    teacher_dir = model_dir(recipe, "teacher")
    if not checkpoint_complete(teacher_dir):
        raise ConfigError(f"no fine-tuned teacher in {teacher_dir}; run `edgedistill train` on {run_dir} first")
    data = load_dataset(recipe.data)
    pooled, pool_info = student_dataset(recipe, data)
    caches: dict[bool, TeacherCache] = {}
    rows = {}
    for name, (table, train_table, loss, pool) in variants.items():
        m = recipe.methods[METHOD]
        r = replace(recipe, methods={**recipe.methods, METHOD: replace(m, loss=CE_ONLY if loss == "ce" else m.loss)})
        set_seed(recipe.run.seed)      # every variant starts from the same random head
        setup = setup_method(METHOD, r, data.label_names, teacher_dir)
        if table == "pretrained":
            # model2vec's own starting point: the body before any fine-tuning (the baseline's table)
            setup.model, setup.tokenizer = build_static_student(resolve_model_source(recipe.teacher.model),
                                                                data.label_names, m.static_dims, m.static_hidden)
        setup.model.embeddings.weight.requires_grad_(train_table)
        split = pooled if pool else data
        cache = None
        if setup.teacher is not None:
            if pool not in caches:
                caches[pool] = TeacherCache(setup.teacher, setup.teacher_tokenizer, split.train, recipe.data.max_length,
                                            recipe.train.eval_batch_size, "cpu", with_hidden=False, progress=progress)
            cache = caches[pool]
        print(f"[static ablation {name}] table {table}, {'trained' if train_table else 'frozen'}, loss {loss}, "
              f"{len(split.train)} training texts", flush=True)
        t0 = time.perf_counter()
        out = train(setup, split, recipe.data.max_length, recipe.run.seed, progress=progress, cache=cache)
        trainable = sum(p.numel() for p in setup.model.parameters() if p.requires_grad)
        rows[name] = {"table": table, "table_trains": train_table, "loss": loss, "pool": pool,
                      "train_texts": len(split.train), "params_trainable": trainable,
                      "validation_macro_f1": out.validation["macro_f1"],
                      "test_macro_f1": out.test["macro_f1"],
                      "test_per_class_f1": {k: v["f1"] for k, v in out.test["per_class"].items()},
                      "best_epoch": out.best_epoch, "train_time_s": time.perf_counter() - t0}
        print(f"[static ablation {name}] val macro-F1 {out.validation['macro_f1']:.4f}  "
              f"test macro-F1 {out.test['macro_f1']:.4f}", flush=True)
    best = max(rows, key=lambda k: rows[k]["validation_macro_f1"])
    m = recipe.methods[METHOD]
    result = {"schema_version": 1, "run": recipe.run.name, "run_dir": str(run_dir), "data": recipe.data.source,
              "labelled": len(data.train), "pool": pool_info, "schedule": {"lr": recipe.method_train(METHOD).lr,
              "epochs": recipe.method_train(METHOD).epochs, "dims": m.static_dims, "hidden": m.static_hidden},
              "selected_on": "validation macro-F1", "best": best, "shipped": SHIPPED,
              "model2vec_baseline": model2vec_baseline(run_dir),
              "variants": rows, "provenance": provenance()}
    out_dir = Path(out_dir)
    stem = recipe.run.name.replace("/", "-")
    atomic_write_json(out_dir / f"{stem}.json", result)
    atomic_write_text(out_dir / f"{stem}.md", ablation_table(result))
    print(ablation_table(result))
    return result


def ablation_table(result: dict) -> str:
    labels = list(next(iter(result["variants"].values()))["test_per_class_f1"])
    base = result["model2vec_baseline"]
    s = result["schedule"]
    lines = [f"# Static-student ablation: {result['run']} ({result['data']}, {result['labelled']} labels)", "",
             f"Schedule: lr {s['lr']:g}, up to {s['epochs']} epochs, table width {s['dims']}, head {s['hidden']}; "
             f"seed and data as the run. Chosen on {result['selected_on']}: **{result['best']}** "
             f"(shipped: {result['shipped']}).", "",
             "| Variant | Table from | Table | Loss | Pool | Val macro-F1 | Test macro-F1 | "
             + " | ".join(f"{label} F1" for label in labels) + " | Best epoch | Train s |",
             "|" + "---|" * (9 + len(labels))]
    if base is not None:
        lines.append("| model2vec baseline (its own classifier) | pretrained | frozen | CE | no | "
                     f"{base['validation_macro_f1']:.4f} | {base['test_macro_f1']:.4f} | "
                     + " | ".join(f"{base['test_per_class_f1'][label]:.3f}" for label in labels) + " | | |")
    for name, r in result["variants"].items():
        lines.append(f"| {name} | {r['table']} | {'trained' if r['table_trains'] else 'frozen'} | {r['loss'].upper()} "
                     f"| {'yes' if r['pool'] else 'no'} | {r['validation_macro_f1']:.4f} | {r['test_macro_f1']:.4f} | "
                     + " | ".join(f"{r['test_per_class_f1'][label]:.3f}" for label in labels)
                     + f" | {r['best_epoch']} | {r['train_time_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/static_ablation.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a trained run folder (runs/<run>) whose teacher is fine-tuned")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="train only these variants")
    p.add_argument("--out", default=str(OUT_DIR), help="folder for <run>.json and <run>.md")
    p.add_argument("--tables", action="store_true", help="rewrite <run>.md from <run>.json (trains nothing)")
    args = p.parse_args(argv)
    if args.tables:
        path = Path(args.out) / f"{Path(args.run).name}.json"
        result = json.loads(path.read_text())
        # the baseline trains at the end of a run: an ablation made before it finished picks it up here
        result["model2vec_baseline"] = result.get("model2vec_baseline") or model2vec_baseline(Path(result["run_dir"]))
        atomic_write_json(path, result)
        atomic_write_text(path.with_suffix(".md"), ablation_table(result))
        return 0
    variants = {k: VARIANTS[k] for k in args.only} if args.only else None
    try:
        run_ablation(Path(args.run), variants, out_dir=args.out)
    except ConfigError as exc:
        print(f"static ablation: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
