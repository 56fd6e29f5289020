"""Static student: what chooses its epoch, how far its table moves, how much pool it reads; judged on validation.

The static student keeps its best epoch on a few hundred labelled validation texts, and its ablations
(``static_ablation.py``, ``static_pool.py``) found that choice flatters a 7.6M-parameter table fitted to
a few thousand texts: it stops 1-4 points short of the teacher on test. Each variant below changes one
thing of the shipped recipe (``methods.static`` in configs/quickstart.yaml):

- what chooses the epoch: validation macro-F1 (shipped) or agreement with the teacher on 2,000 more
  teacher-labelled pool texts held out of training (``static_select: pool``);
- the table's step: the head's (shipped), a tenth of it (``static_table_lr_scale: 0.1``), none (frozen), or a
  low-rank update (``static_table_rank``);
- the pool: 20,000 teacher-labelled texts (shipped) or the whole unlabelled source;
- the targets: KD at T=2 (shipped) or softer, T=4;
- more of the teacher's labels: noisy copies of every training text, which the teacher labels
  (``static_augment_copies``), or the teacher's sentence vector as an auxiliary target (``static_teacher_vectors``).
- averaging: a moving average of the weights (``static_weight_average``), students trained from the same start
  averaged into one (``static_soup``), or students trained apart and stacked into one model that averages their
  logits (``static_ensemble``: k times the table).
- the table's start: model2vec's token-alone vectors (shipped), or each token the training texts hold moved to
  the teacher's mean vector for it in those texts (``static_init: context``), trained or frozen.
- the decision rule: the head as trained (shipped), or one offset per class added to its output bias so that its
  labels agree best with the teacher's on the texts that chose the epoch (``static_calibrate: teacher``).

Protocol (as ``static_pool.py``): the validation split is cut in two stratified, seeded halves; a variant
that chooses its epoch on validation uses half A; every variant is judged on half B. The test split is not
read. Each variant trains once per seed (``--seeds``); a seed changes the head's start and the batch order,
not the data. The variants run through the pipeline's own data path (``own_pool_data``) and training loop.

    python experiments/static_recipe.py runs/quickstart --seeds 1 2 3
        -> experiments/static-recipe/quickstart.json, quickstart.md
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from edgedistill.configbase import ConfigError
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.provenance import provenance
from edgedistill.recipe import LossConfig, load_run_recipe

METHOD = "static"
SHIPPED = "shipped"
# The best recipe of the screens (two noisy copies, whole words, the table at a tenth of the step); the variants
# named after it change it in one setting each.
BEST = "augment-2-vocabulary-5k-table-0.1"
BEST_SETTINGS = {"static_augment_copies": 2, "static_vocabulary": 5000, "static_table_lr_scale": 0.1}
BEST_CHANGES = {"conv": {"static_pooling": "conv"}, "pool-all": {"static_pool": 10**9},
                "vectors-1-soup-3": {"static_teacher_vectors": 1.0, "static_soup": 3},
                "T4": {"loss": {"temperature": 4.0}}, "hidden-1024": {"static_hidden": 1024},
                "logits-mse": {"static_logits_mse": 1.0, "loss": {"kl": 0.0}}, "ensemble-2": {"static_ensemble": 2}}
# name -> the static method's settings that differ from the run's recipe. "shipped" changes nothing.
VARIANTS = {
    SHIPPED: {},
    "select-pool": {"static_select": "pool"},
    "select-pool-table-0.1": {"static_select": "pool", "static_table_lr_scale": 0.1},
    "select-pool-frozen": {"static_select": "pool", "static_train_table": False},
    "select-pool-all": {"static_select": "pool", "static_pool": 10**9},
    "select-pool-T4": {"static_select": "pool", "loss": {"temperature": 4.0}},
    "table-0.1": {"static_table_lr_scale": 0.1},
    "bigrams-64k": {"static_bigrams": 65536},
    "bigrams-32k": {"static_bigrams": 32768},
    "dims-384": {"static_dims": 384},
    "token-dropout-0.3": {"static_token_dropout": 0.3},
    "augment-2": {"static_augment_copies": 2},
    "teacher-vectors-1": {"static_teacher_vectors": 1.0},
    "table-rank-16": {"static_table_rank": 16},
    "augment-2-vectors-1": {"static_augment_copies": 2, "static_teacher_vectors": 1.0},
    "augment-2-vectors-1-bigrams-64k": {"static_augment_copies": 2, "static_teacher_vectors": 1.0,
                                        "static_bigrams": 65536},
    "weight-average-0.995": {"static_weight_average": 0.995},
    "soup-3": {"static_soup": 3},
    "augment-2-vectors-1-soup-3": {"static_augment_copies": 2, "static_teacher_vectors": 1.0, "static_soup": 3},
    "ensemble-3": {"static_ensemble": 3},
    "augment-4-vectors-1": {"static_augment_copies": 4, "static_teacher_vectors": 1.0},
    "augment-2-vectors-1-ensemble-3": {"static_augment_copies": 2, "static_teacher_vectors": 1.0, "static_ensemble": 3},
    "frozen": {"static_train_table": False},
    "context": {"static_init": "context"},
    "context-frozen": {"static_init": "context", "static_train_table": False},
    "context-frozen-hidden-1024": {"static_init": "context", "static_train_table": False, "static_hidden": 1024},
    "context-frozen-hidden-1024-epochs-20": {"static_init": "context", "static_train_table": False,
                                             "static_hidden": 1024, "epochs": 20},
    "frozen-hidden-1024": {"static_train_table": False, "static_hidden": 1024},
    "augment-2-context-frozen": {"static_augment_copies": 2, "static_init": "context", "static_train_table": False},
    "augment-2-context-frozen-hidden-1024": {"static_augment_copies": 2, "static_init": "context",
                                             "static_train_table": False, "static_hidden": 1024},
    "context-frozen-hidden-1024-mean-max": {"static_init": "context", "static_train_table": False,
                                            "static_hidden": 1024, "static_pooling": "mean-max"},
    "augment-2-context-frozen-hidden-1024-mean-max": {"static_augment_copies": 2, "static_init": "context",
                                                      "static_train_table": False, "static_hidden": 1024,
                                                      "static_pooling": "mean-max"},
    "context-frozen-hidden-1024-attention": {"static_init": "context", "static_train_table": False,
                                             "static_hidden": 1024, "static_pooling": "attention"},
    "augment-2-context-frozen-hidden-1024-attention": {"static_augment_copies": 2, "static_init": "context",
                                                       "static_train_table": False, "static_hidden": 1024,
                                                       "static_pooling": "attention"},
    "vocabulary-5k": {"static_vocabulary": 5000},
    "augment-2-vocabulary-5k": {"static_augment_copies": 2, "static_vocabulary": 5000},
    "augment-2-vocabulary-5k-select-pool": {"static_augment_copies": 2, "static_vocabulary": 5000,
                                            "static_select": "pool"},
    BEST: BEST_SETTINGS,
    "augment-2-context-frozen-hidden-1024-vocabulary-5k": {"static_augment_copies": 2, "static_init": "context",
                                                           "static_train_table": False, "static_hidden": 1024,
                                                           "static_vocabulary": 5000},
    "calibrate": {"static_calibrate": "teacher"},
    "context-frozen-hidden-1024-conv": {"static_init": "context", "static_train_table": False,
                                        "static_hidden": 1024, "static_pooling": "conv"},
    "augment-2-context-frozen-hidden-1024-conv": {"static_augment_copies": 2, "static_init": "context",
                                                  "static_train_table": False, "static_hidden": 1024,
                                                  "static_pooling": "conv"},
    **{f"{BEST}-{name}": {**BEST_SETTINGS, **change} for name, change in BEST_CHANGES.items()},
    "augment-2-vectors-1-context": {"static_augment_copies": 2, "static_teacher_vectors": 1.0,
                                    "static_init": "context"},
}
OUT_DIR = Path(__file__).parent / "static-recipe"
# Variants also paired against another variant than the shipped one: the run that differs from them in one
# setting alone (where the table starts, how it pools, its words), so that setting's own effect has its interval.
PAIRED_WITH = {"context-frozen": "frozen", "context-frozen-hidden-1024": "frozen-hidden-1024",
               "context-frozen-hidden-1024-mean-max": "context-frozen-hidden-1024",
               "augment-2-context-frozen-hidden-1024-mean-max": "augment-2-context-frozen-hidden-1024",
               "context-frozen-hidden-1024-attention": "context-frozen-hidden-1024",
               "augment-2-context-frozen-hidden-1024-attention": "augment-2-context-frozen-hidden-1024",
               "augment-2-context-frozen-hidden-1024-vocabulary-5k": "augment-2-context-frozen-hidden-1024",
               "augment-2-vocabulary-5k": "augment-2",
               "augment-2-vocabulary-5k-select-pool": "augment-2-vocabulary-5k",
               "augment-2-vocabulary-5k-table-0.1": "augment-2-vocabulary-5k",
               "context-frozen-hidden-1024-conv": "context-frozen-hidden-1024",
               "augment-2-context-frozen-hidden-1024-conv": "augment-2-context-frozen-hidden-1024",
               **{f"{BEST}-{name}": BEST for name in BEST_CHANGES}}


def variant_recipe(recipe, changes: dict):
    m = recipe.methods[METHOD]
    changes = dict(changes)
    if "loss" in changes:
        changes["loss"] = replace(m.loss or LossConfig(), **changes["loss"])
    return replace(recipe, methods={**recipe.methods, METHOD: replace(m, **changes)})


# What judges the variants: "half-b", the validation split cut in two (half A chooses, half B judges); or
# "rest", the whole capped validation split chooses (as the pipeline's) and the validation texts beyond the
# recipe's cap judge: thousands of texts that neither the teacher nor any student chose on.
JUDGE = ("half-b", "rest")


def validation_rest(data, recipe):
    """``data`` with its capped validation split choosing and, as its "test" split, the texts of the
    uncapped validation split that the cap left out."""
    from dataclasses import replace as dc_replace

    from distill.data import Dataset, Split, load_dataset

    full = load_dataset(dc_replace(recipe.data, max_validation=None))
    chosen_on = set(data.validation.texts)
    keep = [i for i, t in enumerate(full.validation.texts) if t not in chosen_on]
    if not keep:
        raise ConfigError("judge rest: the validation split has no texts beyond data.max_validation; use half-b")
    rest = Split([full.validation.texts[i] for i in keep], full.validation.labels[keep])
    return Dataset(data.train, data.validation, rest, data.label_names, data.info, data.unused_train)


def record_stem(run_name: str, judge: str) -> str:
    stem = run_name.replace("/", "-")
    return stem if judge == "half-b" else f"{stem}-{judge}"


def run_experiment(run_dir: Path, seeds: list[int], variants: dict | None = None, progress: bool = True,
                   out_dir=OUT_DIR, judge: str = "half-b") -> dict:
    from accelerate.utils import set_seed
    from static_pool import validation_halves

    from distill.data import load_dataset
    from distill.pipeline import checkpoint_complete, model_dir, original_texts, own_pool_data, student_dataset
    from distill.static import forget_distilled
    from distill.train import (
        TeacherCache,
        predict_logits,
        setup_method,
        start_static_table,
        teacher_labelled,
        train,
    )

    recipe = load_run_recipe(run_dir)
    variants = variants or VARIANTS
    teacher_dir = model_dir(recipe, "teacher")
    if not checkpoint_complete(teacher_dir):
        raise ConfigError(f"no fine-tuned teacher in {teacher_dir}; run `edgedistill train` on {run_dir} first")
    if judge not in JUDGE:
        raise ConfigError(f"judge: {judge!r} must be one of {', '.join(JUDGE)}")
    data = load_dataset(recipe.data)
    judged = validation_halves(data, recipe.run.seed) if judge == "half-b" else validation_rest(data, recipe)
    recipes = {name: variant_recipe(recipe, changes) for name, changes in variants.items()}
    for name, r in recipes.items():      # every variant's settings are checked before any training
        problems = r.methods[METHOD].validate()
        if problems:
            raise ConfigError(f"variant {name}: " + "; ".join(problems))
    teacher, teacher_interval = teacher_half_b(teacher_dir, judged, recipe)
    t = recipe.method_train(METHOD)
    result = {"schema_version": 1, "run": recipe.run.name, "run_dir": str(run_dir), "data": recipe.data.source,
              "labelled": len(judged.train), "halves": [len(judged.validation), len(judged.test)], "seeds": [],
              "schedule": {"lr": t.lr, "epochs": t.epochs, "patience": t.early_stopping_patience},
              "teacher_half_b_macro_f1": teacher, "teacher_half_b_interval": teacher_interval,
              "half_b_labels": judged.test.labels.tolist(), "best": None,
              "judged_on": "validation half B" if judge == "half-b" else "validation texts beyond the recipe's cap",
              "chosen_on": "validation half A" if judge == "half-b" else "the recipe's capped validation split",
              "shipped": SHIPPED, "variants": {}, "provenance": provenance()}
    # Earlier runs of any known variant (same settings) are kept: a run with --seeds 2 or --only adds to
    # the record; what it asks for and the record already holds is not trained again.
    stem = record_stem(recipe.run.name, judge)
    previous = earlier_runs(Path(out_dir) / f"{stem}.json", run_dir, teacher, {**VARIANTS, **variants})
    for (name, seed), (fields, run) in sorted(previous.items(), key=lambda kv: kv[0][1]):
        if name not in variants or seed not in seeds:
            result["variants"].setdefault(name, {**fields, "runs": []})["runs"].append(run)
    data_cache, teacher_cache = {}, {}
    # one pass of the teacher serves the variants of a pool: its vectors per token are kept when any variant
    # starts its table in context
    in_context = any(r.methods[METHOD].static_init == "context" for r in recipes.values())
    # Seed by seed, every variant: the record is written after each run, so a stopped experiment keeps
    # whole seeds for every variant it reached.
    for seed in seeds:
        for name, r in recipes.items():
            if (name, seed) in previous:       # kept from an earlier, stopped run of this experiment
                row = result["variants"].setdefault(name, {**previous[(name, seed)][0], "runs": []})
                row["runs"].append(previous[(name, seed)][1])
                continue
            m = r.methods[METHOD]
            key = (m.static_pool, m.static_select, m.static_select_texts, m.static_augment_copies,
                   m.static_teacher_vectors > 0)
            if key not in data_cache:
                own = own_pool_data(r, [METHOD], judged)
                data_cache[key] = own[METHOD] if METHOD in own else student_dataset(r, judged)
            split, pool_info = data_cache[key]
            # every variant of a seed starts from the same random head, the pipeline's: model2vec's distillation
            # draws random numbers, so each run distils after the seed, as a pipeline run does
            forget_distilled()
            set_seed(seed)
            setup = setup_method(METHOD, r, judged.label_names, teacher_dir, progress=progress)
            if key not in teacher_cache:
                cache = TeacherCache(setup.teacher, setup.teacher_tokenizer, split.train, recipe.data.max_length,
                                     recipe.train.eval_batch_size, "cpu", with_hidden=False, progress=progress,
                                     with_vectors=setup.loss.needs_vectors,
                                     with_token_vectors=in_context)
                selection = None if split.selection is None else teacher_labelled(
                    setup, split.selection, recipe.data.max_length, recipe.train.eval_batch_size, "cpu", progress)
                teacher_cache[key] = (cache, selection)
            cache, selection = teacher_cache[key]
            start_static_table(setup, cache, original_texts(split.train, pool_info), progress)
            data = split if selection is None else replace(split, selection=selection)
            print(f"[static recipe {name} seed {seed}] {len(data.train)} training texts, epoch chosen on "
                  f"{'held-out pool texts' if selection is not None else result['chosen_on']}", flush=True)
            t0 = time.perf_counter()
            out = train(setup, data, recipe.data.max_length, seed, progress=progress, cache=cache)
            chosen = out.history["epochs"][out.best_epoch - 1]
            row = result["variants"].setdefault(name, {
                "changes": variants[name], "train_texts": len(split.train), "pool": pool_info.get("unlabeled", 0),
                "held_out_to_choose": pool_info.get("held_out_to_choose_the_epoch", 0), "runs": []})
            logits = predict_logits(out.model, setup.tokenizer, judged.test, recipe.data.max_length,
                                    recipe.train.eval_batch_size, "cpu")
            preds = logits.argmax(axis=1)
            calibration = out.history.get("calibration")
            uncalibrated = (logits - calibration["offsets"]).argmax(axis=1).tolist() if calibration else None
            row["runs"].append({"seed": seed, "judged_macro_f1": out.test["macro_f1"], "judged_pred": preds.tolist(),
                                "judged_per_class_f1": {k: v["f1"] for k, v in out.test["per_class"].items()},
                                "half_a_macro_f1": out.validation["macro_f1"],
                                "select_agreement": chosen.get("select_agreement"),
                                "best_epoch": out.best_epoch, "epochs_run": out.compute.get("epochs_run"),
                                "train_time_s": time.perf_counter() - t0,
                                # a calibrated student's labels without its offsets: the same training, the shipped
                                # decision rule (a check that the uncalibrated run reproduces the shipped one)
                                **({"calibration": calibration, "judged_pred_uncalibrated": uncalibrated}
                                   if calibration else {}),
                                **({"words_added": setup.info["static"]["words_added"]}
                                   if "words_added" in setup.info["static"] else {})})
            summarise(result)
            print(f"[static recipe {name} seed {seed}] judged {out.test['macro_f1']:.4f} (epoch {out.best_epoch})",
                  flush=True)
            write(result, stem, out_dir)
    summarise(result)
    write(result, stem, out_dir)
    print(table(result))
    return result


def summarise(result: dict) -> None:
    """Each variant's mean, min and max on half B, and per seed its paired bootstrap 95% interval against
    the shipped recipe's run of the same seed (points; where both kept their predictions); over two or more
    such seeds, the interval of the mean gain, every seed's pair scored on the same resample of the texts;
    the seeds every variant of the record has finished; the best mean."""
    import numpy as np

    from export.sensitivity import drop_interval, mean_drop_interval

    labels = np.asarray(result["half_b_labels"])

    def runs_of(name: str) -> dict:
        return {x["seed"]: x for x in result["variants"].get(name, {}).get("runs", [])}

    def gain(x: dict, base: dict | None) -> list | None:
        if base is None or "judged_pred" not in x or "judged_pred" not in base:
            return None
        # drop_interval gives first minus second: the variant's gain over its base
        return list(drop_interval(labels, np.asarray(x["judged_pred"]), np.asarray(base["judged_pred"]),
                                  int(labels.max()) + 1))

    shipped = runs_of(SHIPPED)
    for name, row in result["variants"].items():
        paired = runs_of(PAIRED_WITH[name]) if name in PAIRED_WITH else {}
        for x in row["runs"]:
            if name != SHIPPED and (pts := gain(x, shipped.get(x["seed"]))) is not None:
                x["vs_shipped_pts"] = pts
            if (pts := gain(x, paired.get(x["seed"]))) is not None:
                x["vs_paired_with_pts"] = pts
                row["paired_with"] = PAIRED_WITH[name]
        both = [(x["judged_pred"], shipped[x["seed"]]["judged_pred"]) for x in row["runs"]
                if name != SHIPPED and "judged_pred" in x and "judged_pred" in shipped.get(x["seed"], {})]
        for key in ("vs_shipped_mean_pts", "vs_shipped_mean_seeds"):      # recomputed from the runs it now has
            row.pop(key, None)
        if len(both) > 1:
            # the mean gain over seeds: what a default is chosen on when each seed alone is inside its noise
            row["vs_shipped_mean_pts"] = list(mean_drop_interval(
                labels, [(np.asarray(a), np.asarray(b)) for a, b in both], int(labels.max()) + 1))
            row["vs_shipped_mean_seeds"] = len(both)
        scores = [x["judged_macro_f1"] for x in row["runs"]]
        row.update(judged_mean=statistics.fmean(scores), judged_min=min(scores), judged_max=max(scores))
    every = sorted({x["seed"] for v in result["variants"].values() for x in v["runs"]})
    result["seeds"] = [s for s in every if all(any(x["seed"] == s for x in v["runs"])
                                               for v in result["variants"].values())]
    result["best"] = max(result["variants"], key=lambda k: result["variants"][k]["judged_mean"])


# What a sign test pairs a variant's run with: "shipped", the shipped recipe's run of the same seed; or
# "uncalibrated", the same run's labels without its calibration offsets (``judged_pred_uncalibrated``): the same
# weights, so the pair measures the offsets alone, free of the noise of training twice.
AGAINST = ("shipped", "uncalibrated")


def _uncalibrated(rec: dict, run: dict) -> dict | None:
    """A calibrated run as it scores without its offsets (None for a run without them)."""
    from edgedistill.metrics import labels_macro_f1

    if "judged_pred_uncalibrated" not in run:
        return None
    return {"seed": run["seed"], "judged_macro_f1": labels_macro_f1(
        rec["half_b_labels"], run["judged_pred_uncalibrated"], len(run["calibration"]["offsets"]))}


def sign_test(records: list[dict], variant: str, seeds: list[int], against: str = "shipped",
              record_seeds: list[list[int] | None] | None = None) -> dict:
    """A one-sided sign test of ``variant`` over (record, seed) pairs: each pair is its run of one seed and,
    judged on the same texts, the shipped recipe's run of that seed (``against`` "shipped") or the same run
    without its calibration offsets ("uncalibrated"); a pair counts for the variant only if it scores strictly
    higher (a tie counts against). ``p_one_sided``: the chance of at least that many wins if neither were better
    (Binomial(n, 1/2)). ``record_seeds``: per record, its own seeds instead of ``seeds`` (None: ``seeds``).
    A pair a record lacks is listed, not counted."""
    from scipy.stats import binom

    if against not in AGAINST:
        raise ValueError(f"sign test: against {against!r} must be one of {', '.join(AGAINST)}")
    pairs, missing = [], []
    for rec, own in zip(records, record_seeds or [None] * len(records), strict=True):
        runs = {name: {x["seed"]: x for x in rec["variants"].get(name, {}).get("runs", [])}
                for name in (variant, rec["shipped"])}
        for seed in own or seeds:
            mine = runs[variant].get(seed)
            base = runs[rec["shipped"]].get(seed) if against == "shipped" else \
                (_uncalibrated(rec, mine) if mine is not None else None)
            if mine is None or base is None:
                missing.append(f"{rec['run']} seed {seed}")
                continue
            pairs.append({"run": rec["run"], "judged_on": rec.get("judged_on"), "seed": seed,
                          "variant": mine["judged_macro_f1"], "shipped": base["judged_macro_f1"],
                          "gain_pts": 100 * (mine["judged_macro_f1"] - base["judged_macro_f1"])})
    wins = sum(x["gain_pts"] > 0 for x in pairs)
    return {"variant": variant, "against": against, "seeds": seeds,
            **({"record_seeds": record_seeds} if record_seeds and any(record_seeds) else {}),
            "pairs": pairs, "wins": wins, "n": len(pairs), "missing": missing,
            "p_one_sided": float(binom.sf(wins - 1, len(pairs), 0.5)) if pairs else None}


def sign_table(test: dict) -> str:
    base = {"shipped": "the shipped recipe", "uncalibrated": "itself without its calibration offsets"}[
        test.get("against", "shipped")]
    seeds = "each record's seeds below" if test.get("record_seeds") else f"seeds {', '.join(map(str, test['seeds']))}"
    column = "shipped" if test.get("against", "shipped") == "shipped" else "without offsets"
    lines = [f"Sign test of {test['variant']} against {base}, {seeds}: "
             f"{test['wins']} of {test['n']} pairs higher, one-sided p = {test['p_one_sided']:.3f}"
             + (f"; missing: {', '.join(test['missing'])}" if test["missing"] else ""), "",
             f"| run | judged on | seed | {column} | variant | gain, pts |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {x['run']} | {x['judged_on']} | {x['seed']} | {x['shipped']:.4f} | {x['variant']:.4f} | "
              f"{x['gain_pts']:+.2f} |" for x in test["pairs"]]
    return "\n".join(lines) + "\n"


def earlier_runs(path: Path, run_dir: Path, teacher: float, variants: dict) -> dict:
    """(variant, seed) -> (its row's fields, the run) from an earlier record of the same experiment on the
    same run (same teacher, same variant settings), so a stopped experiment resumes instead of starting over."""
    import json

    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    if old.get("run_dir") != str(run_dir) or old.get("teacher_half_b_macro_f1") != teacher:
        return {}
    out = {}
    for name, row in old.get("variants", {}).items():
        if name in variants and row.get("changes") == variants[name]:
            fields = {k: v for k, v in row.items() if k not in ("runs", "judged_mean", "judged_min", "judged_max")}
            out.update({(name, x["seed"]): (fields, x) for x in row["runs"]})
    return out


def write(result: dict, stem: str, out_dir) -> None:
    atomic_write_json(Path(out_dir) / f"{stem}.json", result)
    atomic_write_text(Path(out_dir) / f"{stem}.md", table(result))


def teacher_half_b(teacher_dir: Path, judged, recipe) -> tuple[float, list[float]]:
    """The fine-tuned teacher's macro-F1 on half B (what "% of the teacher" is measured against here), and
    its bootstrap 95% interval: how far half B alone can move a score."""
    import numpy as np

    from distill.models import load_classifier
    from distill.train import predict_logits
    from edgedistill.metrics import classification_metrics, softmax
    from edgedistill.paired import bootstrap_interval
    from export.sensitivity import RESAMPLES, SEED, macro_f1_resampled

    model, tok = load_classifier(str(teacher_dir), judged.label_names)
    logits = predict_logits(model, tok, judged.test, recipe.data.max_length, recipe.train.eval_batch_size, "cpu")
    labels, preds = judged.test.labels, logits.argmax(axis=1)
    # text indices are resampled: macro-F1 is not a mean of per-text values
    interval = list(bootstrap_interval(
        np.arange(len(labels)), resamples=RESAMPLES, seed=SEED,
        stat=lambda idx: macro_f1_resampled(labels, preds, idx.astype(int), len(judged.label_names))))
    return classification_metrics(labels, softmax(logits), judged.label_names)["macro_f1"], interval


def table(result: dict) -> str:
    labels = list(result["variants"][next(iter(result["variants"]))]["runs"][0]["judged_per_class_f1"])
    s, (a, b), teacher = result["schedule"], result["halves"], result["teacher_half_b_macro_f1"]
    low, high = result.get("teacher_half_b_interval") or (teacher, teacher)
    complete = ", ".join(map(str, result["seeds"])) or "none yet"
    lines = [f"# Static student, epoch choice, table step and pool: {result['run']} ({result['data']}, "
             f"{result['labelled']} labels)", "",
             f"Schedule: lr {s['lr']:g}, up to {s['epochs']} epochs (patience {s['patience']}). Judged on "
             f"{result.get('judged_on', 'validation half B')} ({b} texts); validation-chosen variants choose on "
             f"{result.get('chosen_on', 'validation half A')} ({a} texts); the test split is not read. "
             f"Seeds every variant ran: {complete}. The teacher scores {teacher:.4f} on the judged texts "
             f"(bootstrap 95% interval {low:.4f} - {high:.4f}: how far they alone move a score). "
             f"Best mean on the judged texts: **{result['best']}** (shipped: {result['shipped']}).", "",
             "| Variant | Seeds | Train texts | Held out to choose | Judged macro-F1, mean | min - max | "
             "% of teacher | vs shipped, pts per seed [paired 95%] | "
             + " | ".join(f"{label} F1 (mean)" for label in labels) + " | Best epochs | Train s |",
             "|" + "---|" * (10 + len(labels))]
    for name, r in result["variants"].items():
        per_class = {label: statistics.fmean(x["judged_per_class_f1"][label] for x in r["runs"]) for label in labels}
        seeds = ", ".join(str(x["seed"]) for x in r["runs"])
        lines.append(f"| {name} | {seeds} | {r['train_texts']} | {r['held_out_to_choose'] or '-'} | "
                     f"{r['judged_mean']:.4f} | "
                     f"{r['judged_min']:.4f} - {r['judged_max']:.4f} | {100 * r['judged_mean'] / teacher:.1f} | "
                     + ("; ".join(f"{p:+.1f} [{lo:+.1f}, {hi:+.1f}]" for p, lo, hi in
                                  (x["vs_shipped_pts"] for x in r["runs"] if "vs_shipped_pts" in x)) or "-") + " | "
                     + " | ".join(f"{per_class[label]:.3f}" for label in labels)
                     + f" | {', '.join(str(x['best_epoch']) for x in r['runs'])} | "
                     f"{statistics.fmean(x['train_time_s'] for x in r['runs']):.0f} |")
    pooled = [(name, r) for name, r in result["variants"].items() if r.get("vs_shipped_mean_pts")]
    if pooled:
        lines += ["", "The mean gain over the seeds both ran, every seed's pair scored on the same resample of the "
                  "judged texts:", "", "| Variant | seeds | vs shipped, mean pts [paired 95%] |", "|---|---:|---|"]
        lines += [f"| {name} | {r['vs_shipped_mean_seeds']} | {p:+.1f} [{lo:+.1f}, {hi:+.1f}] |"
                  for name, r in pooled for p, lo, hi in [r["vs_shipped_mean_pts"]]]
    paired = [(name, r) for name, r in result["variants"].items() if r.get("paired_with")]
    if paired:
        lines += ["", "Paired against the variant that differs in one setting alone (same seed, same judged texts):",
                  "", "| Variant | against | pts per seed [paired 95%] |", "|---|---|---|"]
        lines += [f"| {name} | {r['paired_with']} | "
                  + "; ".join(f"{p:+.1f} [{lo:+.1f}, {hi:+.1f}] (seed {x['seed']})" for x in r["runs"]
                              if "vs_paired_with_pts" in x for p, lo, hi in [x["vs_paired_with_pts"]]) + " |"
                  for name, r in paired]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python experiments/static_recipe.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="a trained run folder (runs/<run>) whose teacher is fine-tuned")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="training seeds per variant")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="train only these variants")
    p.add_argument("--judge", choices=JUDGE, default="half-b",
                   help="half-b: half A of the validation split chooses, half B judges; rest: the capped validation "
                        "split chooses and the validation texts beyond the cap judge (record <run>-rest.json)")
    p.add_argument("--out", default=str(OUT_DIR), help="folder for <run>.json and <run>.md")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--sign-test", nargs="+", metavar="RECORD.json[@S,S]",
                   help="train nothing: a sign test of --only's one variant against the shipped recipe over these "
                        "records' --seeds, or a record's own seeds after @ (written beside the first record as "
                        "sign-test-<variant>.{json,md})")
    p.add_argument("--label", help="with --sign-test: written as sign-test-<variant>[-against-...]-<label>, so that "
                                   "several tests of one variant keep their own files")
    p.add_argument("--against", choices=AGAINST, default="shipped",
                   help="with --sign-test: pair each run with the shipped recipe's run of its seed (shipped) or with "
                        "its own labels without its calibration offsets (uncalibrated; written as "
                        "sign-test-<variant>-against-uncalibrated.{json,md})")
    args = p.parse_args(argv)
    if args.sign_test:
        if not args.only or len(args.only) != 1:
            p.error("--sign-test needs --only with exactly one variant")
        if args.run:
            p.error(f"--sign-test trains nothing and reads records only; drop the run folder {args.run}")
        import json

        paths, record_seeds = [], []
        for arg in args.sign_test:
            path, _, own = arg.partition("@")
            try:
                record_seeds.append([int(x) for x in own.split(",")] if own else None)
            except ValueError:
                p.error(f"--sign-test: {arg}: the seeds after @ must be integers separated by commas, like 4,5,6")
            paths.append(Path(path))
        if bad := [str(r) for r in paths if not r.is_file()]:
            p.error(f"--sign-test: no such record: {', '.join(bad)}")
        test = sign_test([json.loads(r.read_text()) for r in paths], args.only[0], args.seeds, args.against,
                         record_seeds)
        if not test["n"]:
            p.error(f"--sign-test: no record holds {args.only[0]} and its pair ({args.against}) at seeds "
                    f"{', '.join(map(str, args.seeds))} (missing: {', '.join(test['missing'])})")
        test["records"] = [str(r) for r in paths]
        test["provenance"] = provenance()
        # the variant's name may hold a dot: no with_suffix
        stem = f"sign-test-{args.only[0]}" + ("" if args.against == "shipped" else f"-against-{args.against}") \
            + (f"-{args.label}" if args.label else "")
        atomic_write_json(paths[0].parent / f"{stem}.json", test)
        atomic_write_text(paths[0].parent / f"{stem}.md", sign_table(test))
        print(sign_table(test))
        return 0
    if not args.run:
        p.error("name a run folder (or --sign-test records)")
    try:
        run_experiment(Path(args.run), args.seeds, {k: VARIANTS[k] for k in args.only} if args.only else None,
                       progress=not args.no_progress, out_dir=args.out, judge=args.judge)
    except ConfigError as exc:
        print(f"static recipe: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
