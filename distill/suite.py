"""The generality suite: one recipe, several data sets and seeds, retained macro-F1 per method.

    python -m distill.suite configs/suite.yaml

The suite file names a base recipe, suite-wide overrides, the entries (each a set of data
overrides) and the seeds. Every (entry, seed) is a full ``train_run`` in its own run folder;
its compact result is written to ``<results_dir>/entries/<entry>-s<seed>.json`` as soon as it
finishes, so a killed suite resumes at the first unfinished (entry, seed), and a half-trained
one resumes at its first unfinished method. ``suite.json`` / ``suite.md`` aggregate whatever is
finished (mean +- std over seeds) and say which pairs are still missing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from distill.configbase import ConfigError, deep_merge, from_dict, parse_overrides
from distill.io import atomic_write_json, atomic_write_text
from distill.provenance import provenance

SCHEMA_VERSION = 1


@dataclass
class SuiteConfig:
    recipe: str                                   # base recipe YAML (the defaults under test)
    entries: dict[str, dict] = field(default_factory=dict)   # name -> recipe overrides (usually data)
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    overrides: dict = field(default_factory=dict)  # applied to every entry (sizing: max_length, pool size)
    runs_dir: str = "runs/suite"                  # checkpoints (git-ignored)
    results_dir: str = "results/suite"            # compact per-(entry, seed) rows and the tables

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
    from distill.config import load_recipe

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file {path} does not exist (see configs/suite.yaml)")
    raw = yaml.safe_load(path.read_text()) or {}
    cfg = from_dict(SuiteConfig, raw)
    base_over = deep_merge(cfg.overrides, parse_overrides(extra))
    recipes, errors = {}, []
    for entry, over in cfg.entries.items():
        for seed in cfg.seeds:
            run = {"run": {"name": f"{entry}-s{seed}", "seed": seed, "runs_dir": cfg.runs_dir,
                           "results_dir": str(Path(cfg.runs_dir) / "results")}}
            try:
                recipes[(entry, seed)] = load_recipe(cfg.recipe, deep_merge(deep_merge(base_over, over or {}), run))
            except ConfigError as exc:
                errors.append(f"entry {entry}: {exc}")
                break   # the seed changes only the run name and seed: one report per entry
    if errors:
        raise ConfigError("\n".join(errors))
    return cfg, recipes


def entry_row(metrics: dict, wall_s: float) -> dict:
    """The compact, committed record of one (entry, seed): per method test/validation F1 and compute."""
    models = metrics["models"]
    teacher = models["teacher"]
    t_f1 = teacher["test"]["macro_f1"]
    out = {}
    for name, m in models.items():
        c = m.get("compute", {})
        out[name] = {"test_macro_f1": m["test"]["macro_f1"], "retained": m["test"]["macro_f1"] / t_f1 if t_f1 else None,
                     "validation_macro_f1": m["validation"]["macro_f1"],
                     "test_per_class_f1": {k: v["f1"] for k, v in m["test"]["per_class"].items()},
                     "epochs": m.get("epochs"), "epochs_run": c.get("epochs_run"), "best_epoch": m.get("best_epoch"),
                     "lr": m.get("lr"), "layers": m.get("layers"), "train_examples": m.get("train_examples"),
                     "optimizer_steps": c.get("optimizer_steps"), "total_flops": c.get("total_flops"),
                     "wall_time_s": c.get("wall_time_s", m.get("wall_time_s"))}
    return {"schema_version": SCHEMA_VERSION, "run": metrics["run"], "data": metrics["data"], "wall_time_s": wall_s,
            "models": out, "provenance": metrics["provenance"]}


def _mean_std(xs: list[float]) -> dict:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def aggregate(cfg: SuiteConfig, rows: dict[tuple[str, int], dict]) -> dict:
    entries = {}
    for entry in cfg.entries:
        got = {s: rows[(entry, s)] for s in cfg.seeds if (entry, s) in rows}
        if not got:
            continue
        methods = list(next(iter(got.values()))["models"])
        per_method = {}
        for m in methods:
            rs = [r["models"][m] for r in got.values() if m in r["models"]]
            classes = list(rs[0]["test_per_class_f1"])
            per_method[m] = {"retained_test_macro_f1": _mean_std([r["retained"] for r in rs]),
                             "test_macro_f1": _mean_std([r["test_macro_f1"] for r in rs]),
                             "validation_macro_f1": _mean_std([r["validation_macro_f1"] for r in rs]),
                             "test_per_class_f1": {k: _mean_std([r["test_per_class_f1"][k] for r in rs]) for k in classes},
                             "epochs_run": [r["epochs_run"] for r in rs], "best_epoch": [r["best_epoch"] for r in rs],
                             "wall_time_s": _mean_std([r["wall_time_s"] for r in rs]),
                             "total_flops": _mean_std([r["total_flops"] for r in rs])}
        first = next(iter(got.values()))
        entries[entry] = {"seeds": sorted(got), "sizes": first["data"]["sizes"], "origin": first["data"].get("origin"),
                          "label_names": first["data"]["label_names"],
                          "extra_texts": first["data"].get("student_extra_texts"),
                          "wall_time_s": _mean_std([r["wall_time_s"] for r in got.values()]), "methods": per_method}
    missing = [f"{e}-s{s}" for e in cfg.entries for s in cfg.seeds if (e, s) not in rows]
    return {"schema_version": SCHEMA_VERSION, "recipe": cfg.recipe, "overrides": cfg.overrides, "seeds": cfg.seeds,
            "complete": not missing, "missing": missing, "entries": entries, "provenance": provenance()}


def suite_table(result: dict) -> str:
    status = "complete" if result["complete"] else f"PARTIAL: missing {', '.join(result['missing'])}"
    lines = [f"# Generality suite ({status})", "",
             f"Recipe `{result['recipe']}` with {result['overrides']}; seeds {result['seeds']}; commit "
             f"`{result['provenance']['git_commit']}`, {result['provenance']['hardware']['label']}. Retained = the method's "
             "test macro-F1 / the same seed's teacher test macro-F1; mean +- std over the seeds listed. Every model was "
             "selected on its validation split.", "",
             "| Entry | Seeds | Labelled train | Teacher test macro-F1 | Teacher epochs run (best) | Method | "
             "Retained % | Test macro-F1 | Per-class test F1 | Wall s (entry) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in result["entries"].items():
        t = e["methods"]["teacher"]
        teacher_epochs = ", ".join(f"{a}({b})" for a, b in zip(t["epochs_run"], t["best_epoch"]))
        for m, r in e["methods"].items():
            ret = r["retained_test_macro_f1"]
            pc = "; ".join(f"{k} {v['mean']:.3f}+-{v['std']:.3f}" for k, v in r["test_per_class_f1"].items())
            lines.append(f"| {name} | {len(e['seeds'])} | {e['sizes']['train']} | {t['test_macro_f1']['mean']:.4f} | "
                         f"{teacher_epochs} | {m} | {100 * ret['mean']:.1f} +- {100 * ret['std']:.1f} | "
                         f"{r['test_macro_f1']['mean']:.4f} +- {r['test_macro_f1']['std']:.4f} | {pc} | "
                         f"{e['wall_time_s']['mean']:.0f} |")
    return "\n".join(lines) + "\n"


def run_suite(path: str | Path, extra: list[str] | None = None, progress: bool = False,
              only: list[str] | None = None) -> dict:
    from distill.pipeline import train_run

    cfg, recipes = load_suite(path, extra)
    out = Path(cfg.results_dir)
    rows = {}
    for (entry, seed), recipe in recipes.items():
        row_path = out / "entries" / f"{entry}-s{seed}.json"
        if row_path.is_file():
            rows[(entry, seed)] = json.loads(row_path.read_text())
            continue
        if only and entry not in only:
            continue
        print(f"=== suite entry {entry}, seed {seed} ===", flush=True)
        t0 = time.perf_counter()
        metrics = train_run(recipe, progress=progress)
        rows[(entry, seed)] = entry_row(metrics, time.perf_counter() - t0)
        atomic_write_json(row_path, rows[(entry, seed)])
        write_tables(cfg, rows)
    return write_tables(cfg, rows)


def write_tables(cfg: SuiteConfig, rows: dict) -> dict:
    result = aggregate(cfg, rows)
    out = Path(cfg.results_dir)
    atomic_write_json(out / "suite.json", result)
    atomic_write_text(out / "suite.md", suite_table(result))
    return result


def main(argv=None) -> int:
    from distill.data import DataError
    from distill.models import ModelError
    from distill.pipeline import RunError

    p = argparse.ArgumentParser(prog="python -m distill.suite", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", help="suite YAML, e.g. configs/suite.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value for every entry (repeatable)")
    p.add_argument("--only", nargs="+", help="train only these entries (finished ones are still aggregated)")
    p.add_argument("--progress", action="store_true", help="progress bars")
    args = p.parse_args(argv)
    try:
        run_suite(args.suite, args.overrides, progress=args.progress, only=args.only)
    except (ConfigError, DataError, ModelError, RunError) as exc:
        print(f"suite: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
