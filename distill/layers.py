"""Which teacher layers to keep: drop-one-layer analysis on the validation split, and ``layers: auto``.

Each layer's contribution is how much the fine-tuned teacher's validation macro-F1 falls when that
one layer is removed (no re-tuning). ``auto`` keeps the ``num_layers`` layers whose removal hurts
most. The analysis also scores the fixed patterns (odd, even, bottom-k) and the auto pick at the
same depth, each as a truncated teacher without training, so the choice can be compared before
any student is trained.

    edgedistill layers configs/hate-speech.yaml      (after the teacher is trained)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edgedistill import layout
from edgedistill.io import atomic_write_json
from edgedistill.provenance import provenance


def _val_f1(model, tokenizer, data, max_length: int, batch_size: int) -> float:
    from distill.train import predict_logits
    from edgedistill.metrics import classification_metrics, softmax

    logits = predict_logits(model, tokenizer, data.validation, max_length, batch_size, "cpu")
    return classification_metrics(data.validation.labels, softmax(logits), data.label_names)["macro_f1"]


def analyse_layers(teacher, tokenizer, data, max_length: int, batch_size: int, num_layers: int | None = None) -> dict:
    """Validation macro-F1 of the teacher without each layer, and of each layer subset pattern."""
    from distill.models import make_student, model_depth, pick_auto, select_layers

    depth = model_depth(teacher.config)
    full = _val_f1(teacher, tokenizer, data, max_length, batch_size)
    without = []
    for i in range(depth):
        keep = [j for j in range(depth) if j != i]
        without.append(_val_f1(make_student(teacher, keep), tokenizer, data, max_length, batch_size))
    contributions = [full - w for w in without]
    n = num_layers or max(1, depth // 2)
    subsets = {"auto": pick_auto(contributions, n), "bottom": list(range(n))}
    for spec in ("odd", "even"):
        try:
            subsets[spec] = select_layers(spec, depth, n)
        except ValueError:
            pass
    scored = {
        k: {
            "layers": v,
            "validation_macro_f1": _val_f1(make_student(teacher, v), tokenizer, data, max_length, batch_size),
        }
        for k, v in subsets.items()
    }
    return {
        "schema_version": 1,
        "depth": depth,
        "num_layers": n,
        "teacher_validation_macro_f1": full,
        "validation_macro_f1_without_layer": without,
        "contribution": contributions,
        "subsets_without_training": scored,
        "selected_on": "validation macro-F1 (no re-tuning)",
    }


def layer_analysis(recipe, data, teacher_dir: Path, num_layers: int | None = None) -> dict:
    """The run's analysis, computed once per fine-tuned teacher and stored beside it and in results/."""
    from distill.models import load_classifier

    cached = Path(teacher_dir).parent.parent / "layer_analysis.json"
    # The teacher's marker file changes whenever the teacher is retrained: a stale analysis is redone.
    stamp = (Path(teacher_dir) / "edgedistill.json").stat().st_mtime_ns
    if cached.is_file():
        result = json.loads(cached.read_text())
        if result.get("teacher_stamp") == stamp and result.get("num_layers") == (
            num_layers or max(1, result["depth"] // 2)
        ):
            return result
    teacher, tok = load_classifier(str(teacher_dir), data.label_names)
    result = analyse_layers(teacher.eval(), tok, data, recipe.data.max_length, recipe.train.eval_batch_size, num_layers)
    result["provenance"], result["teacher_stamp"] = provenance(), stamp
    atomic_write_json(cached, result)
    atomic_write_json(recipe.results_path / "layer_analysis.json", result)
    plot_contributions(result, recipe.results_path / "layer_contributions.png")
    return result


def plot_contributions(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    c = np.asarray(result["contribution"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(
        [str(i + 1) for i in range(len(c))],
        c,
        color=[
            "#c0392b" if i in result["subsets_without_training"]["auto"]["layers"] else "#7f8c8d" for i in range(len(c))
        ],
    )
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel("teacher layer (1-based); red = kept by layers: auto")
    ax.set_ylabel("validation macro-F1 lost\nwhen the layer is dropped")
    ax.set_title(f"Layer contributions (teacher validation macro-F1 {result['teacher_validation_macro_f1']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(p) -> None:
    p.add_argument("recipe")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--num-layers", type=int, help="depth of the subsets compared (default: half the teacher's)")


def main(args) -> int:
    from distill.data import load_dataset
    from edgedistill.configbase import ConfigError
    from edgedistill.recipe import load_recipe

    try:
        recipe = load_recipe(args.recipe, args.overrides)
        teacher_dir = layout.model_dir(recipe.run_dir, "teacher")
        if not layout.checkpoint_complete(teacher_dir):
            raise ConfigError(
                f"no fine-tuned teacher in {teacher_dir}; run `edgedistill train {args.recipe} --methods teacher`"
            )
        from distill.models import config_depth, source_config

        depth = config_depth(*source_config(str(teacher_dir)))
        if args.num_layers is not None and not 1 <= args.num_layers < depth:
            raise ConfigError(f"--num-layers {args.num_layers}: the subsets compared keep 1 to {depth - 1} of the "
                              f"teacher's {depth} layers (default: {max(1, depth // 2)})")
        # It writes runs/<run>/layer_analysis.json: the run folder's lock, as every writer takes.
        with layout.run_lock(recipe.run_dir):
            result = layer_analysis(recipe, load_dataset(recipe.data), teacher_dir, args.num_layers)
    except (ConfigError, ValueError) as exc:
        print(f"layers: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("contribution", "subsets_without_training")}, indent=1))
    return 0
