"""Loss ablation: train one student under several distillation losses, same budget, same data.

The variants are chosen on validation macro-F1 (the test split is reported beside it, never
used to choose). The fine-tuned teacher of the run is reused, so run ``train`` first.

    python experiments/loss_ablation.py configs/hate-speech.yaml --max-train 4000
        -> experiments/loss-ablation/ablation.json, ablation.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from edgedistill.configbase import ConfigError, from_dict
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.methods import students
from edgedistill.provenance import provenance
from edgedistill.recipe import LossConfig, Recipe, load_recipe

# What the literature suggests, from the course project's loss to patient-KD style hidden losses.
DEFAULT_VARIANTS = {
    "ce-only": {"ce": 1.0, "kl": 0.0, "cosine": 0.0, "hidden": 0.0},
    "reference": {"preset": "reference"},
    "kd-T2": {"ce": 1.0, "kl": 1.0, "cosine": 0.0, "hidden": 0.0, "temperature": 2.0},
    "kd-T2-hidden": {"ce": 1.0, "kl": 1.0, "cosine": 0.0, "hidden": 1.0, "temperature": 2.0},
    "kd-T4-hidden": {"ce": 1.0, "kl": 1.0, "cosine": 0.0, "hidden": 1.0, "temperature": 4.0},
}

# The record of this experiment sits beside the script.
OUT_DIR = Path(__file__).parent / "loss-ablation"


def run_ablation(recipe: Recipe, method: str = "odd", variants: dict | None = None, max_train: int | None = 4000,
                 progress: bool = True, out_dir=OUT_DIR) -> dict:
    from dataclasses import replace

    from distill.data import load_dataset
    from distill.pipeline import checkpoint_complete, model_dir
    from distill.train import TeacherCache, setup_method, train

    variants = variants or DEFAULT_VARIANTS
    teacher_dir = model_dir(recipe, "teacher")
    if not checkpoint_complete(teacher_dir):
        raise ConfigError(f"no fine-tuned teacher in {teacher_dir}; "
                          f"run `edgedistill train {recipe.source} --methods teacher` first")
    data_cfg = replace(recipe.data, max_train=max_train or recipe.data.max_train)
    data = load_dataset(data_cfg)
    rows, cache = {}, None
    for name, loss_dict in variants.items():
        loss = from_dict(LossConfig, loss_dict)
        entry = replace(recipe.methods[method], loss=loss, lora=recipe.methods[method].lora)
        r = replace(recipe, methods={**recipe.methods, method: entry})
        setup = setup_method(method, r, data.label_names, teacher_dir)
        if cache is None and setup.teacher is not None:
            cache = TeacherCache(setup.teacher, setup.tokenizer, data.train, data_cfg.max_length,
                                 recipe.train.eval_batch_size, "cpu", with_hidden=True, progress=progress)
        print(f"[ablation {name}] loss {setup.info['loss']}")
        t0 = time.perf_counter()
        out = train(setup, data, data_cfg.max_length, recipe.run.seed, progress=progress, cache=cache)
        rows[name] = {"loss": setup.info["loss"], "validation_macro_f1": out.validation["macro_f1"],
                      "test_macro_f1": out.test["macro_f1"], "test_accuracy": out.test["accuracy"],
                      "test_per_class_f1": {k: v["f1"] for k, v in out.test["per_class"].items()},
                      "best_epoch": out.best_epoch, "train_time_s": time.perf_counter() - t0}
        print(f"[ablation {name}] val macro-F1 {out.validation['macro_f1']:.4f}  "
              f"test macro-F1 {out.test['macro_f1']:.4f}")
    best = max(rows, key=lambda k: rows[k]["validation_macro_f1"])
    result = {"schema_version": 1, "run": recipe.run.name, "method": method, "layers": setup.info["layers"],
              "train_examples": len(data.train), "epochs": recipe.train.epochs, "selected_on": "validation macro-F1",
              "best": best, "variants": rows, "provenance": provenance()}
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "ablation.json", result)
    atomic_write_text(out_dir / "ablation.md", ablation_table(result))
    print(ablation_table(result))
    return result


def ablation_table(result: dict) -> str:
    labels = list(next(iter(result["variants"].values()))["test_per_class_f1"])
    lines = [f"# Distillation-loss ablation: {result['run']}, {result['method']} student "
             f"(teacher layers {result['layers']})",
             "", f"{result['train_examples']} training examples, {result['epochs']} epochs each, same seed; "
             f"chosen on {result['selected_on']}: **{result['best']}**.", "",
             "| Variant | CE | KL | cosine | hidden | T | Val macro-F1 | Test macro-F1 | "
             + " | ".join(f"{label} F1" for label in labels) + " |",
             "|" + "---|" * (8 + len(labels))]
    for name, r in result["variants"].items():
        c = r["loss"]
        lines.append(f"| {name} | {c['ce']:.2g} | {c['kl']:.2g} | {c['cosine']:.2g} | {c['hidden']:.2g} | "
                     f"{c['temperature']:g} | "
                     f"{r['validation_macro_f1']:.4f} | {r['test_macro_f1']:.4f} | "
                     + " | ".join(f"{r['test_per_class_f1'][label]:.3f}" for label in labels) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/loss_ablation.py", description=__doc__)
    p.add_argument("recipe")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--method", default="odd", choices=list(students()))
    p.add_argument("--max-train", type=int, default=4000, help="cap on training examples (stratified)")
    p.add_argument("--out", default=str(OUT_DIR), help="folder for ablation.json and ablation.md")
    args = p.parse_args(argv)
    try:
        run_ablation(load_recipe(args.recipe, args.overrides), args.method, max_train=args.max_train, out_dir=args.out)
    except ConfigError as exc:
        print(f"ablation: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
