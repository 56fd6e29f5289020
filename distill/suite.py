"""The generality suite: one recipe, several data sets and seeds, retained macro-F1 per method.

    edgedistill suite experiments/suite/suite.yaml                     every (entry, seed) in turn
    edgedistill suite experiments/suite/suite.yaml --scheduler local:2 on Dask workers (edgedistill.cluster)

The suite file names a base recipe, suite-wide overrides, the entries (each a set of data
overrides) and the seeds. Every (entry, seed) is a full ``train_run`` in its own run folder;
its compact result is written to ``<results_dir>/entries/<entry>-s<seed>.json`` as soon as it
finishes, so a killed suite resumes at the first unfinished (entry, seed), and a half-trained
one resumes at its first unfinished method. Each row carries a fingerprint of the resolved recipe
it was trained with, and one per method: after the suite file, the base recipe (or ``--set``) changes,
the rows whose methods changed are stale and the suite refuses to mix them with new ones until they are
retrained (``--rerun-stale``). Only the changed methods are retrained (a new hybrid schedule retrains the
hybrid, not the teacher and every student); where the run folder is gone (a fresh clone) the teacher is
retrained beside them, and the row's other methods are kept only if it reproduces the row's teacher exactly.
``suite.json`` / ``suite.md`` aggregate whatever is finished (mean +- std over seeds) and say which
pairs are still missing.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgedistill.configbase import ConfigError, deep_merge, from_dict, parse_overrides, to_dict
from edgedistill.io import atomic_write_json, atomic_write_text
from edgedistill.provenance import provenance
from edgedistill.targets import SUITE_RETAINED_PCT

SCHEMA_VERSION = 1


@dataclass
class SuiteConfig:
    recipe: str  # base recipe YAML (the defaults under test)
    entries: dict[str, dict] = field(default_factory=dict)  # name -> recipe overrides (usually data)
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    overrides: dict = field(default_factory=dict)  # applied to every entry (sizing: max_length, pool size)
    runs_dir: str = "runs/suite"  # checkpoints (git-ignored)
    results_dir: str = "results/suite"  # compact per-(entry, seed) rows and the tables

    def validate(self):
        errs = []
        if not self.entries:
            errs.append("entries: name at least one entry (name -> recipe overrides)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            errs.append(f"seeds: {self.seeds} must be a non-empty list of distinct integers")
        bad = [n for n in self.entries if not n or "/" in n]
        if bad:
            errs.append(f"entries: {bad} must be plain names")
        return errs


def load_suite(path: str | Path, extra: list[str] | None = None):
    """The suite config and every (entry, seed) recipe, all validated before any training."""
    from edgedistill.recipe import load_recipe

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist (see experiments/suite/suite.yaml)")
    raw = yaml.safe_load(path.read_text()) or {}
    cfg = from_dict(SuiteConfig, raw)
    base_over = deep_merge(cfg.overrides, parse_overrides(extra))
    recipes, errors = {}, []
    for entry, over in cfg.entries.items():
        for seed in cfg.seeds:
            run = {
                "run": {
                    "name": f"{entry}-s{seed}",
                    "seed": seed,
                    "runs_dir": cfg.runs_dir,
                    "results_dir": str(Path(cfg.runs_dir) / "results"),
                }
            }
            try:
                recipes[(entry, seed)] = load_recipe(cfg.recipe, deep_merge(deep_merge(base_over, over or {}), run))
            except ConfigError as exc:
                errors.append(f"entry {entry}: {exc}")
                break  # the seed changes only the run name and seed: one report per entry
    if errors:
        raise ConfigError("\n".join(errors))
    return cfg, recipes


def recipe_fingerprint(recipe) -> str:
    """SHA-256 of the settings that decide a pair's result; where its files go does not count."""
    settings = to_dict(recipe)
    settings.pop("source", None)
    for where in ("runs_dir", "results_dir"):
        settings.get("run", {}).pop(where, None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def row_path(cfg: SuiteConfig, entry: str, seed: int) -> Path:
    """Where one (entry, seed)'s compact result lives."""
    return Path(cfg.results_dir) / "entries" / f"{entry}-s{seed}.json"


def method_fingerprints(recipe) -> dict[str, str]:
    """Per enabled method, the fingerprint of the settings that shape its checkpoint."""
    from distill.pipeline import method_fingerprint

    return {m: method_fingerprint(recipe, m) for m in recipe.method_names()}


def _recorded_method_fingerprints(cfg: SuiteConfig, entry: str, seed: int, row: dict) -> dict[str, str] | None:
    """The per-method fingerprints a row was trained with. Rows written before they were recorded get
    them from their run folder's recipe, if that is provably the row's (same whole-recipe fingerprint)."""
    if "method_sha256" in row:
        return row["method_sha256"]
    from edgedistill import layout
    from edgedistill.recipe import load_recipe

    path = layout.recipe_file(Path(cfg.runs_dir) / f"{entry}-s{seed}")
    if not path.is_file():
        return None
    old = load_recipe(path)
    return method_fingerprints(old) if recipe_fingerprint(old) == row.get("recipe_sha256") else None


def read_rows(cfg: SuiteConfig, recipes: dict) -> dict[tuple[str, int], dict]:
    """Every finished row on disk for the suite's (entry, seed) pairs, current or stale."""
    paths = {key: row_path(cfg, *key) for key in recipes}
    return {key: json.loads(p.read_text()) for key, p in paths.items() if p.is_file()}


def stale_methods(cfg: SuiteConfig, recipes: dict, rows: dict | None = None) -> dict[Path, list[str]]:
    """Finished rows that are out of date, each with the methods to retrain (all of them when the row
    cannot tell which changed). A row whose methods all match is current even if other settings
    (export, bench) changed: those do not enter a suite row."""
    rows = read_rows(cfg, recipes) if rows is None else rows
    out = {}
    for (entry, seed), row in rows.items():
        recipe = recipes[(entry, seed)]
        if row.get("recipe_sha256") == recipe_fingerprint(recipe):
            continue
        now = method_fingerprints(recipe)
        was = _recorded_method_fingerprints(cfg, entry, seed, row)
        if was is None:
            out[row_path(cfg, entry, seed)] = list(now)
        elif (changed := [m for m in now if was.get(m) != now[m]]) or set(was) != set(now):
            out[row_path(cfg, entry, seed)] = changed
    return out


def current_rows(cfg: SuiteConfig, rows: dict, stale: dict) -> dict[tuple[str, int], dict]:
    """The rows already trained with the suite's current recipe, by (entry, seed)."""
    return {key: row for key, row in rows.items() if row_path(cfg, *key) not in stale}


def entry_row(metrics: dict, wall_s: float, fingerprint: str | None = None,
              method_sha256: dict[str, str] | None = None) -> dict:
    """The compact, committed record of one (entry, seed): per method test/validation F1 and compute."""
    models = metrics["models"]
    teacher = models["teacher"]
    t_f1 = teacher["test"]["macro_f1"]
    out = {}
    for name, m in models.items():
        c = m.get("compute", {})
        out[name] = {
            "test_macro_f1": m["test"]["macro_f1"],
            "retained": m["test"]["macro_f1"] / t_f1 if t_f1 else None,
            "validation_macro_f1": m["validation"]["macro_f1"],
            "test_per_class_f1": {k: v["f1"] for k, v in m["test"]["per_class"].items()},
            "epochs": m.get("epochs"),
            "epochs_run": c.get("epochs_run"),
            "best_epoch": m.get("best_epoch"),
            "lr": m.get("lr"),
            "layers": m.get("layers"),
            "train_examples": m.get("train_examples"),
            "optimizer_steps": c.get("optimizer_steps"),
            "total_flops": c.get("total_flops"),
            "wall_time_s": c.get("wall_time_s", m.get("wall_time_s")),
        }
    # What a user would run instead, on the same labelled split and test split (distill/baselines.py).
    for name, b in (metrics.get("baselines") or {}).items():
        out[name] = {
            "baseline": True,
            "test_macro_f1": b["test"]["macro_f1"],
            "retained": b["test"]["macro_f1"] / t_f1 if t_f1 else None,
            "validation_macro_f1": b["validation"]["macro_f1"],
            "test_per_class_f1": {k: v["f1"] for k, v in b["test"]["per_class"].items()},
            "epochs": None, "epochs_run": None, "best_epoch": None, "lr": None, "layers": None,
            "train_examples": b.get("train_examples"), "optimizer_steps": None, "total_flops": None,
            "wall_time_s": b.get("train_time_s"), "train_cpu_s": b.get("train_cpu_s"),
            "selected": b.get("selected"),
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "run": metrics["run"],
        "recipe_sha256": fingerprint,
        "method_sha256": method_sha256,
        "data": metrics["data"],
        "wall_time_s": wall_s,
        "models": out,
        "provenance": metrics["provenance"],
    }


def _mean_std(xs: list[float]) -> dict:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def pair_wall_s(row: dict) -> float:
    """A pair's wall time: its recorded time, or the sum of its methods' own times where that is
    larger. A row resumed after kills can record only part of what the killed processes spent; its
    methods' own times still add up to a lower bound on what the pair cost."""
    methods = sum(m.get("wall_time_s") or 0.0 for m in row["models"].values())
    return max(row.get("wall_time_s") or 0.0, methods)


def aggregate(cfg: SuiteConfig, rows: dict[tuple[str, int], dict]) -> dict:
    entries = {}
    # Each row records the machine that trained it; a suite finished on another box must say so,
    # since its wall times are then not one machine's.
    machines: dict[str, list[str]] = {}
    for entry in cfg.entries:
        got = {s: rows[(entry, s)] for s in cfg.seeds if (entry, s) in rows}
        if not got:
            continue
        for seed, row in got.items():
            label = ((row.get("provenance") or {}).get("hardware") or {}).get("label", "unrecorded machine")
            machines.setdefault(label, []).append(f"{entry}-s{seed}")
        methods = list(dict.fromkeys(m for r in got.values() for m in r["models"]))
        per_method = {}
        for m in methods:
            rs = [r["models"][m] for r in got.values() if m in r["models"]]
            classes = list(rs[0]["test_per_class_f1"])
            per_method[m] = {
                "baseline": bool(rs[0].get("baseline")),
                "retained_test_macro_f1": _mean_std([r["retained"] for r in rs]),
                "test_macro_f1": _mean_std([r["test_macro_f1"] for r in rs]),
                "validation_macro_f1": _mean_std([r["validation_macro_f1"] for r in rs]),
                "test_per_class_f1": {k: _mean_std([r["test_per_class_f1"][k] for r in rs]) for k in classes},
                "epochs_run": [r["epochs_run"] for r in rs],
                "best_epoch": [r["best_epoch"] for r in rs],
                "wall_time_s": _mean_std([r["wall_time_s"] for r in rs]),
                "total_flops": _mean_std([r["total_flops"] for r in rs]),
            }
        first = next(iter(got.values()))
        entries[entry] = {
            "seeds": sorted(got),
            "sizes": first["data"]["sizes"],
            "origin": first["data"].get("origin"),
            "label_names": first["data"]["label_names"],
            "extra_texts": first["data"].get("student_extra_texts"),
            "wall_time_s": _mean_std([pair_wall_s(r) for r in got.values()]),
            "methods": per_method,
        }
    missing = [f"{e}-s{s}" for e in cfg.entries for s in cfg.seeds if (e, s) not in rows]
    return {
        "schema_version": SCHEMA_VERSION,
        "recipe": cfg.recipe,
        "overrides": cfg.overrides,
        "entry_overrides": cfg.entries,
        "seeds": cfg.seeds,
        "complete": not missing,
        "missing": missing,
        "entries": entries,
        "machines": machines,
        "provenance": provenance(),
    }


def machines_text(machines: dict[str, list[str]]) -> str:
    """The machines that trained the suite's pairs, in words: 'A x2 (9 pairs), B x2 (1 pair: e-s3)'."""
    def one(label: str, pairs: list[str]) -> str:
        n = len(pairs)
        return f"{label} ({n} pair{'s' if n != 1 else ''}" + (f": {', '.join(pairs)})" if n <= 3 else ")")
    return ", ".join(one(k, v) for k, v in sorted(machines.items(), key=lambda kv: -len(kv[1])))


def suite_table(result: dict) -> str:
    status = "complete" if result["complete"] else f"PARTIAL: missing {', '.join(result['missing'])}"
    machines = result.get("machines") or {result["provenance"]["hardware"]["label"]: []}
    trained_on = machines_text(machines) if len(machines) > 1 else next(iter(machines))
    lines = [
        f"# Generality suite ({status})",
        "",
        f"Recipe `{result['recipe']}` with {result['overrides']}; seeds {result['seeds']}; tables at commit "
        f"`{result['provenance']['git_commit']}`; pairs trained on {trained_on}. Retained = the method's "
        "test macro-F1 / the same seed's teacher test macro-F1; mean +- std over the seeds listed. Every model was "
        "selected on its validation split.",
        "",
        "| Entry | Seeds | Labelled train | Teacher test macro-F1 | Teacher epochs run (best) | Method | "
        "Retained % | Target | Test macro-F1 | Per-class test F1 | Epochs run (best) | Wall s (method, mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for name, e in result["entries"].items():
        t = e["methods"]["teacher"]
        teacher_epochs = ", ".join(f"{a}({b})" for a, b in zip(t["epochs_run"], t["best_epoch"]))
        for m, r in e["methods"].items():
            ret = r["retained_test_macro_f1"]
            goal = SUITE_RETAINED_PCT.get(m)
            verdict = ""
            if goal is not None:
                met = 100 * ret["mean"] >= goal
                verdicts.append(met)
                verdict = f">= {goal:.0f}: {'met' if met else 'NOT met'}"
            pc = "; ".join(f"{k} {v['mean']:.3f}+-{v['std']:.3f}" for k, v in r["test_per_class_f1"].items())
            epochs = ("-" if r.get("baseline") else
                      ", ".join(f"{a}({b})" for a, b in zip(r["epochs_run"], r["best_epoch"])))
            label = f"{m} (baseline)" if r.get("baseline") else m
            lines.append(
                f"| {name} | {len(e['seeds'])} | {e['sizes']['train']} | {t['test_macro_f1']['mean']:.4f} | "
                f"{teacher_epochs} | {label} | {100 * ret['mean']:.1f} +- {100 * ret['std']:.1f} | {verdict} | "
                f"{r['test_macro_f1']['mean']:.4f} +- {r['test_macro_f1']['std']:.4f} | {pc} | {epochs} | "
                f"{r['wall_time_s']['mean']:.0f} |"
            )
    beats = static_vs_model2vec(result)
    if beats:
        verdicts += [b for _, _, b in beats]
        lines += ["", "The static student against the plain model2vec baseline (same seeds, test macro-F1 means): "
                  + "; ".join(f"{e} {d:+.4f} ({'beats' if b else 'does NOT beat'})" for e, d, b in beats) + "."]
    hours = sum(e["wall_time_s"]["mean"] * len(e["seeds"]) for e in result["entries"].values()) / 3600
    lines += [
        "",
        f"Targets met: {sum(verdicts)} of {len(verdicts)} (entry, method) means in this table"
        f"{'' if result['complete'] else ', with pairs still missing'}. Wall time of the finished pairs: "
        f"{hours:.1f} h on {'this machine' if len(machines) == 1 else 'those machines'}.",
    ]
    return "\n".join(lines) + "\n"


def static_vs_model2vec(result: dict) -> list[tuple[str, float, bool]]:
    """(entry, static minus model2vec mean test macro-F1, static is ahead) where both ran."""
    out = []
    for name, e in result["entries"].items():
        s, b = e["methods"].get("static"), e["methods"].get("model2vec")
        if s and b and s["test_macro_f1"]["mean"] is not None and b["test_macro_f1"]["mean"] is not None:
            d = s["test_macro_f1"]["mean"] - b["test_macro_f1"]["mean"]
            out.append((name, d, d > 0))
    return out


def _wall_units(examples: int, epochs: int, n_val: int, n_test: int) -> float:
    """A method's work in training-example units: its training passes plus the evaluation passes
    (validation after every epoch and once more for the best checkpoint, then test), a forward pass
    costing about a third of a training step."""
    return examples * epochs + (n_val * (epochs + 1) + n_test) / 3


def measured_costs(costs_from: str | Path) -> dict[str, float]:
    """Seconds per training example for each method, from a run on this machine: either a run's
    metrics.json (its training throughput) or a finished suite row (its wall time per method, evaluation
    included: the closer match, as it ran at the suite's own sequence length)."""
    doc = json.loads(Path(costs_from).read_text())
    models = doc["models"]
    if "wall_time_s" in doc:  # a suite row
        sizes = doc["data"]["sizes"]
        return {
            m: e["wall_time_s"] / _wall_units(e["train_examples"], e["epochs_run"], sizes["validation"], sizes["test"])
            for m, e in models.items()
            if e.get("epochs_run")
        }
    return {m: 1.0 / e["train_examples_per_s"] for m, e in models.items() if e.get("train_examples_per_s")}


def plan(path: str | Path, costs_from: str | Path, extra: list[str] | None = None) -> dict:
    """Projected wall time of the suite from measured per-example training costs.

    ``costs_from`` is a run on this machine (see ``measured_costs``): each method's seconds per
    training example times the examples and epochs each (entry, seed)
    will train, plus the teacher's cached pass over the students' texts and the evaluation passes
    (a forward pass costs about a third of a training step). Early stopping can only shorten it.
    """
    from distill.data import load_dataset
    from distill.pipeline import student_dataset
    from edgedistill.methods import students as student_methods

    cfg, recipes = load_suite(path, extra)
    sec = measured_costs(costs_from)
    out, total = {}, 0.0
    for entry in cfg.entries:
        recipe = recipes[(entry, cfg.seeds[0])]
        data = load_dataset(recipe.data)
        students, _ = student_dataset(recipe, data)
        n_lab, n_all = len(data.train), len(students.train)
        n_val, n_test = len(data.validation), len(data.test)
        methods, seconds = {}, 0.0
        for name in recipe.method_names():
            m = recipe.methods[name]
            epochs = m.epochs or recipe.train.epochs
            per = sec.get(name, sec.get("odd"))
            n = n_all if name in student_methods() else n_lab
            s_m = per * _wall_units(n, epochs, n_val, n_test)
            methods[name] = {"train_examples": n, "max_epochs": epochs, "seconds_per_example": per, "projected_s": s_m}
            seconds += s_m
        teacher_pass = sec["teacher"] * n_all / 3  # the teacher's one cached pass for the students
        seconds += teacher_pass
        out[entry] = {
            "labelled": n_lab,
            "student_texts": n_all,
            "validation": n_val,
            "test": n_test,
            "methods": methods,
            "teacher_pass_s": teacher_pass,
            "projected_s_per_seed": seconds,
            "projected_s": seconds * len(cfg.seeds),
        }
        total += seconds * len(cfg.seeds)
    remaining = remaining_work(cfg, recipes, out)
    result = {
        "costs_from": str(costs_from),
        "seeds": cfg.seeds,
        "entries": out,
        "projected_total_s": total,
        "remaining": remaining,
        "projected_remaining_s": sum(r["projected_s"] for r in remaining.values()),
        "note": "upper bound: every method runs its maximum epochs; early stopping shortens it",
    }
    for name, e in out.items():
        print(
            f"{name}: {e['labelled']} labelled + {e['student_texts'] - e['labelled']} teacher-labelled; "
            f"{e['projected_s_per_seed'] / 60:.0f} min per seed, "
            f"{e['projected_s'] / 60:.0f} min for {len(cfg.seeds)} seeds"
        )
    print(f"total: {total / 3600:.1f} h (upper bound, from {costs_from})")
    for pair, r in remaining.items():
        print(f"  to train now: {pair}: {', '.join(r['methods'])} ({r['why']}), {r['projected_s'] / 60:.0f} min")
    print(f"to train now (missing pairs, and stale ones with --rerun-stale): "
          f"{result['projected_remaining_s'] / 3600:.1f} h of it")
    return result


def remaining_work(cfg: SuiteConfig, recipes: dict, projected: dict) -> dict:
    """What a run of the suite would train now, per pair: a missing pair every method, a stale row (with
    ``--rerun-stale``) its changed methods, plus the teacher where the run folder lacks the kept ones'
    checkpoints (``folderless_retrain``); a current row nothing. ``projected``: plan's per-entry figures."""
    from edgedistill.methods import students as student_methods

    rows = read_rows(cfg, recipes)
    stale = stale_methods(cfg, recipes, rows)
    out = {}
    for (entry, seed), recipe in recipes.items():
        costs = projected[entry]["methods"]
        redo = stale.get(row_path(cfg, entry, seed))
        if (entry, seed) in rows and redo is None:
            continue
        # A changed method retrains; any other without a complete checkpoint in the run folder trains.
        done = [m for m in finished_methods(recipe) if m not in (redo or [])]
        if (entry, seed) not in rows:
            wanted, why = list(costs), "not trained yet"
        elif only := folderless_retrain(recipe, rows[(entry, seed)], redo):
            wanted, why = ["teacher", *only], f"stale ({', '.join(only)}); no run folder, so with the teacher"
        else:
            wanted, why = list(costs), f"stale ({', '.join(redo) or 'methods removed'})"
        methods = [m for m in wanted if m not in done]
        seconds = sum(costs[m]["projected_s"] for m in methods)
        if any(m in student_methods() for m in methods):
            seconds += projected[entry]["teacher_pass_s"]
        out[f"{entry}-s{seed}"] = {"methods": methods, "why": why, "projected_s": seconds}
    return out


def run_suite(
    path: str | Path,
    extra: list[str] | None = None,
    progress: bool = False,
    only: list[str] | None = None,
    rerun_stale: bool = False,
    seeds: list[int] | None = None,
    client=None,
) -> dict:
    """Train every unfinished (entry, seed) and aggregate. With a Dask ``client``
    (``edgedistill.cluster.connect``) each pair is a task needing one ``train`` resource, retried
    once; the rows come back here and are written exactly as a sequential run writes them, plus the
    worker that trained them. A pair that fails on the cluster is reported (``result["failed"]``)
    and the others go on; without a client an error stops the suite, as it always did."""
    from distill.baselines import library_problems
    from edgedistill import cluster

    cfg, recipes = load_suite(path, extra)
    out = Path(cfg.results_dir)
    check_selection(cfg, path, only, seeds)
    on_disk = read_rows(cfg, recipes)
    stale = stale_methods(cfg, recipes, on_disk)
    if stale and not rerun_stale:
        which = "; ".join(f"{p.name}: {', '.join(ms) or 'methods removed'}" for p, ms in sorted(stale.items()))
        raise ConfigError(
            f"{len(stale)} finished row(s) were trained with other settings than {path} now gives ({which}; in "
            f"{out / 'entries'}); mixing them would average two recipes. Retrain them with --rerun-stale (only "
            "those methods, where the run folder is kept), or restore the old settings. Nothing was trained."
        )
    rows = current_rows(cfg, on_disk, stale)
    todo = {}
    for (entry, seed), recipe in recipes.items():
        if (entry, seed) in rows or (only and entry not in only) or (seeds and seed not in seeds):
            continue
        redo = stale.get(row_path(cfg, entry, seed))
        todo[f"{entry}-s{seed}"] = (recipe, None if redo is None else on_disk[(entry, seed)], redo,
                                    progress and client is None)
    if client is None:
        # Every pair's libraries before the first trains (a cluster's workers check their own).
        missing = sorted({f"entry {name.rsplit('-s', 1)[0]}: {p}" for name, (recipe, *_) in todo.items()
                          for p in library_problems(recipe.method_names() + recipe.baselines.enabled())})
        if missing:
            raise ConfigError("\n".join(missing) + "\nNothing was trained.")
    keys = {f"{entry}-s{seed}": (entry, seed) for entry, seed in recipes}
    outcomes = cluster.run(client, train_pair, todo, "train")
    failed = []
    for done in outcomes:
        if not done.ok:
            failed.append({"pair": done.name, "worker": done.worker, "error": done.error})
            print(f"suite: {done.name} FAILED on {done.where()}: {done.error}", file=sys.stderr, flush=True)
            continue
        row = done.value
        if done.worker:
            # The command that produced the row is this one; the worker that trained it is recorded beside it.
            row["provenance"] = {**row["provenance"], "command": " ".join(sys.argv)}
            row["worker"] = done.worker
            print(f"suite: {done.name} done on {done.where()}", flush=True)
        rows[keys[done.name]] = row
        atomic_write_json(row_path(cfg, *keys[done.name]), row)
        write_tables(cfg, rows)
    return {**write_tables(cfg, rows), "failed": failed}


def train_pair(recipe, stale_row: dict | None = None, stale: list[str] | None = None, progress: bool = False) -> dict:
    """Train one (entry, seed) in its run folder and return its row (the caller writes it).

    ``stale_row``: the finished row it replaces, trained with other settings; ``stale``: its methods
    to retrain (see ``stale_methods``; the row's time accounts for them). A pair a killed suite left
    half-trained resumes at its first unfinished method; its run folder may hold methods an older
    recipe trained: those are retrained, the rest kept."""
    from distill.pipeline import changed_methods, train_run

    print(f"=== suite entry {recipe.run.name.rsplit('-s', 1)[0]}, seed {recipe.run.seed}"
          f"{f' (stale row: retraining {stale})' if stale_row is not None else ''} ===", flush=True)
    redo = changed_methods(recipe)
    done_before = [m for m in finished_methods(recipe) if m not in redo]
    t0 = time.perf_counter()
    if only := folderless_retrain(recipe, stale_row, stale):
        # The kept methods' checkpoints are gone (a fresh clone): train the stale ones beside a retrained
        # teacher, and keep the row's other methods only if that teacher reproduces the row's own.
        print(f"{recipe.run.name}: the run folder lacks the kept methods' checkpoints; retraining the teacher "
              f"(it must reproduce its row) and {', '.join(only)}", flush=True)
        # The teacher always: a kept entry's retained share and a new one's must be against the same teacher.
        metrics = train_run(recipe, methods=["teacher", *only], progress=progress, retrain_changed=True)
        raise_failed(recipe, metrics)
        wall = time.perf_counter() - t0
        row = entry_row(metrics, wall, recipe_fingerprint(recipe), method_fingerprints(recipe))
        if teacher_scores(row["models"]["teacher"]) == teacher_scores(stale_row["models"]["teacher"]):
            # Checkpoints a killed retraining finished before this process: their time is this retraining's too.
            spent = wall + sum(row["models"][m]["wall_time_s"] or 0.0 for m in done_before if m in row["models"])
            return keep_unchanged(stale_row, row, spent, only, recipe.method_names() + recipe.baselines.enabled())
        print(f"{recipe.run.name}: the retrained teacher does not reproduce its row (test macro-F1 "
              f"{metrics['models']['teacher']['test']['macro_f1']:.4f} against "
              f"{stale_row['models']['teacher']['test_macro_f1']:.4f}, or another validation or per-class score); "
              "its other methods distilled from another teacher, so the whole pair is retrained", flush=True)
    metrics = train_run(recipe, progress=progress, retrain_changed=True)
    wall = time.perf_counter() - t0
    raise_failed(recipe, metrics)
    # Only the methods the recipe enables: a checkpoint of one disabled since stays in the run folder.
    metrics = {**metrics, "models": {m: e for m, e in metrics["models"].items() if m in recipe.method_names()}}
    row = entry_row(metrics, wall, recipe_fingerprint(recipe), method_fingerprints(recipe))
    # Methods an earlier, killed process finished for this row: the pair's time is this call's plus
    # theirs. A stale row's methods kept unchanged are not among them: their time is in the old row.
    earlier = [m for m in done_before
               if stale_row is None or row["models"].get(m) != stale_row["models"].get(m)]
    spent = wall + sum(row["models"][m]["wall_time_s"] or 0.0 for m in earlier)
    row["wall_time_s"] = spent
    if stale_row is not None:
        row = _account_retrain(stale_row, row, spent)
    if earlier:
        row["resumed"] = {"methods_trained_before": earlier, "wall_time_s_this_process": wall}
    return row


def raise_failed(recipe, metrics: dict) -> None:
    """No row for a pair with a method missing; its run folder keeps what finished for the retry."""
    if metrics.get("failed"):
        from distill.errors import RunError
        from distill.failures import summary

        raise RunError(f"{recipe.run.name}: {summary(metrics['failed'])}")


def folderless_retrain(recipe, stale_row: dict | None, stale: list[str] | None) -> list[str]:
    """The stale methods to train alone, when a stale row's other methods are current but their
    checkpoints are not in the run folder (empty: the usual path). The teacher is retrained with them;
    a stale teacher, or a row with nothing stale, retrains the whole pair as before."""
    if stale_row is None or not stale or "teacher" in stale:
        return []
    kept = [m for m in recipe.method_names() if m not in stale]
    done = set(finished_methods(recipe))
    if all(m in done for m in kept) or any(m not in stale_row["models"] for m in kept):
        return []
    return [m for m in recipe.method_names() if m in stale]


def teacher_scores(entry: dict) -> dict:
    """What a row says of its teacher's predictions (test, validation, per class): equal on every field, the
    retrained teacher reproduces the row's."""
    return {k: entry[k] for k in ("test_macro_f1", "validation_macro_f1", "test_per_class_f1")}


def keep_unchanged(old: dict, new: dict, wall_s: float, retrained: list[str], names: list[str]) -> dict:
    """A stale row whose ``retrained`` methods were trained beside a teacher that reproduced the row's:
    the entries of its other ``names`` (methods and baselines the recipe enables) are the old row's, the
    teacher's included; the row's time is the old one, less the replaced methods' own, plus this
    retraining's (``wall_s``) without the teacher's second training, which the retraining record keeps."""
    models = {m: (new["models"][m] if m in retrained else e) for m, e in old["models"].items() if m in names}
    models |= {m: new["models"][m] for m in retrained if m not in models}
    again = new["models"]["teacher"]["wall_time_s"] or 0.0
    row = _account_retrain(old, {**new, "models": models}, wall_s)
    row["wall_time_s"] -= again
    row["retrained"][-1]["teacher_reproduced_s"] = again
    return row


def check_selection(cfg: SuiteConfig, path, only: list[str] | None, seeds: list[int] | None) -> None:
    """--only / --seeds name entries and seeds the suite file has: a typo would otherwise train nothing."""
    errs = []
    if bad := [e for e in only or [] if e not in cfg.entries]:
        errs.append(f"--only {', '.join(bad)}: not an entry of {path} (entries: {', '.join(cfg.entries)})")
    if bad := [s for s in seeds or [] if s not in cfg.seeds]:
        errs.append(f"--seeds {', '.join(map(str, bad))}: not a seed of {path} (seeds: {cfg.seeds})")
    if errs:
        raise ConfigError("; ".join(errs) + ". Nothing was trained.")


def finished_methods(recipe) -> list[str]:
    """The recipe's methods whose checkpoints are already complete in its run folder."""
    from distill.pipeline import model_dir
    from edgedistill.layout import checkpoint_complete

    return [m for m in recipe.method_names() if checkpoint_complete(model_dir(recipe, m))]


def _account_retrain(old: dict, new: dict, wall_s: float) -> dict:
    """A row where some methods were retrained (``wall_s``: their time, in this process and any
    killed one before it): its wall time is the old row's, less the replaced methods' own time, plus
    this retraining; which methods were retrained (and when) is recorded."""
    kept = [m for m, e in new["models"].items() if m in old["models"] and e == old["models"][m]]
    redone = [m for m in new["models"] if m not in kept]
    if kept:
        replaced = sum(old["models"][m]["wall_time_s"] or 0.0 for m in redone if m in old["models"])
        new["wall_time_s"] = old["wall_time_s"] - replaced + wall_s
    new["retrained"] = [*old.get("retrained", []),
                        {"methods": redone, "wall_time_s": wall_s, "git_commit": new["provenance"]["git_commit"]}]
    return new


def write_finished_tables(path: str | Path, extra: list[str] | None = None) -> dict:
    """The tables from the rows already finished with the suite's current recipe; nothing is trained."""
    cfg, recipes = load_suite(path, extra)
    rows = read_rows(cfg, recipes)
    return write_tables(cfg, current_rows(cfg, rows, stale_methods(cfg, recipes, rows)))


def write_tables(cfg: SuiteConfig, rows: dict) -> dict:
    result = aggregate(cfg, rows)
    out = Path(cfg.results_dir)
    atomic_write_json(out / "suite.json", result)
    atomic_write_text(out / "suite.md", suite_table(result))
    if result["entries"]:
        plot_retained(result, out / "retained.png")
    return result


def plot_retained(result: dict, path: Path) -> None:
    """Retained test macro-F1 per entry and method (mean +- std over seeds), the targets as ticks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgedistill.methods import COLOURS, TEACHER, rank

    entries = list(result["entries"])
    methods = sorted({m for e in result["entries"].values() for m in e["methods"] if m != TEACHER}, key=rank)
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 + 1.9 * len(entries)), 4.0))
    for i, m in enumerate(methods):
        xs, ys, errs = [], [], []
        for j, name in enumerate(entries):
            r = result["entries"][name]["methods"].get(m)
            if r and r["retained_test_macro_f1"]["mean"] is not None:
                xs.append(j + (i - (len(methods) - 1) / 2) * width)
                ys.append(100 * r["retained_test_macro_f1"]["mean"])
                errs.append(100 * r["retained_test_macro_f1"]["std"])
        ax.bar(xs, ys, width, yerr=errs, capsize=2, label=m, color=COLOURS.get(m, "#7f8c8d"))
        goal = SUITE_RETAINED_PCT.get(m)
        if goal is not None:
            ax.scatter(xs, [goal] * len(xs), marker="_", s=120, color="black", zorder=3)
    ax.axhline(100, color="black", linewidth=0.6)
    ax.set_xticks(range(len(entries)))
    ax.set_xticklabels([f"{n}\n({len(result['entries'][n]['seeds'])} seeds)" for n in entries])
    low = min([b.get_height() for b in ax.patches] + [90.0])
    ax.set_ylim(max(0.0, low - 3), None)
    ax.set_ylabel("% of the teacher's\ntest macro-F1")
    ax.set_title("Retained test macro-F1, black ticks: targets" + ("" if result["complete"] else " (partial)"),
                 fontsize=10)
    ax.legend(ncol=len(methods), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
