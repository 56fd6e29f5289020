"""The shared ground floor: light imports, one method registry, one run layout, one target."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_registry_layout_and_runtimes_import_without_heavy_libraries():
    code = ("import sys, edgedistill.methods, edgedistill.layout, edgedistill.targets, edgedistill.runtime, "
            "edgedistill.predictor; print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_one_method_registry_drives_every_list():
    from edgedistill import methods
    from edgedistill.recipe import default_methods

    assert methods.ORDER == ("teacher", "odd", "even", "auto", "bottom", "tiny", "lora", "hybrid", "static")
    assert set(default_methods()) == set(methods.ORDER)
    assert methods.students() == ("odd", "even", "auto", "bottom", "tiny", "hybrid", "static")
    assert methods.layer_students() == ("odd", "even", "auto", "bottom", "tiny", "hybrid")
    assert [n for n in methods.ORDER if methods.uses_lora(n)] == ["lora", "hybrid"]
    assert {m.kind for m in methods.METHODS.values()} == {"pretrained", "teacher_layers", "static"}
    assert tuple(methods.BASELINES) == ("tfidf", "model2vec", "setfit")
    assert not set(methods.BASELINES) & set(methods.ORDER)
    assert len(set(methods.COLOURS.values())) == len(methods.ORDER) + len(methods.BASELINES)
    assert methods.rank("hybrid") == 7 and methods.rank("tfidf") == len(methods.ORDER)
    assert methods.rank("mystery") == len(methods.ORDER) + len(methods.BASELINES)
    from dashboard.charts import METHOD_COLORS

    assert METHOD_COLORS is methods.COLOURS


def test_layout_lists_folders_in_registry_order_and_skips_temporaries(tmp_path):
    from edgedistill import layout

    run = tmp_path / "runs" / "r"
    for m in ("odd", "teacher", "hybrid", ".odd.x.partial"):
        (layout.model_dir(run, m)).mkdir(parents=True)
    for m, v in (("odd", "onnx-fp32"), ("teacher", "openvino-int8"), ("teacher", "onnx-fp32")):
        layout.artifact_dir(run, m, v).mkdir(parents=True)
    assert [p.name for p in layout.model_folders(run)] == ["teacher", "odd", "hybrid"]
    assert [f"{p.parent.name}/{p.name}" for p in layout.artifact_folders(run)] == [
        "teacher/onnx-fp32", "teacher/openvino-int8", "odd/onnx-fp32"]
    (layout.model_dir(run, "teacher") / layout.CHECKPOINT_MARKER).write_text(json.dumps({"schema_version": 1}))
    (layout.model_dir(run, "odd") / layout.CHECKPOINT_MARKER).write_text("{not json")
    assert layout.checkpoint_complete(layout.model_dir(run, "teacher"))
    assert not layout.checkpoint_complete(layout.model_dir(run, "odd"))
    assert layout.results_dir("results", run) == Path("results") / "r"


def test_good_enough_means_the_same_in_bench_and_dashboard():
    from bench.reporting.report import RETAINED_GOAL
    from dashboard.pareto import best_per_goal
    from edgedistill.targets import RETAINED_PCT, good_enough

    assert RETAINED_GOAL == RETAINED_PCT == 99.0
    teacher = 0.80
    df = pd.DataFrame({"point": ["t", "a", "b"], "macro_f1": [teacher, 0.7921, 0.7919],
                       "latency_p50_ms": [10.0, 5.0, 1.0], "size_mb": [90.0, 20.0, 10.0]})
    retained = 100 * df["macro_f1"] / teacher
    qualifying = [p for p, r in zip(df["point"], retained) if good_enough(r)]
    assert qualifying == ["t", "a"]
    best = best_per_goal(df, teacher)
    assert best["fastest_1pct"]["point"] == "a" and best["smallest"]["point"] == "a"
    assert best["fastest_3pct"]["point"] == "b"     # 98.99% of the teacher: within 3%, not within 1%
    from edgedistill.targets import WITHIN_1PCT, WITHIN_3PCT

    assert (WITHIN_1PCT, WITHIN_3PCT) == (99.0, 97.0)


def test_dashboard_reads_the_benchs_steadiness():
    from bench.reporting.report import steadiness
    from dashboard.data import _steadiness

    block = {"bandwidth_gbs": {"k1": [7.5, 8.0], "k2": [9.0, 8.1]},
             "repeats": {"k1": [1.0, 1.05], "k2": [1.0, 1.5], "k3": [2.0]}}
    assert steadiness(block) == {"bandwidth_gbs": (7.5, 9.0), "passes_within_10pct": (1, 2)}
    assert _steadiness(block) == {"bandwidth_gbs": "7.5 to 9.0", "passes_within_10pct": "1 of 2"}
    assert steadiness({}) == {"bandwidth_gbs": None, "passes_within_10pct": None}


def test_every_shipped_recipe_validates_as_a_whole():
    """configs/ holds the recipes a user starts from: each must pass the check `edgedistill run` makes
    before any work (the model-reading layer check only where the teacher ships with the package)."""
    import yaml

    from edgedistill_cli.orchestrate import check_recipe

    recipes = sorted((ROOT / "configs").glob("*.yaml"))
    assert recipes, "configs/ holds no recipe"
    for path in recipes:
        packaged = (yaml.safe_load(path.read_text()).get("teacher") or {}).get("model") == "packaged-minilm"
        stages = ("train", "export", "bench") if packaged else ("export", "bench")
        recipe, export_cfg, bench_cfg = check_recipe(str(path), stages=stages)
        assert recipe.run.name and export_cfg is not None and bench_cfg is not None, path


def test_the_import_contract_covers_every_installed_package():
    """The floors in pyproject.toml name every top-level package setuptools installs, each on one floor,
    so a new package cannot sit outside the contract."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    installed = {p.split(".")[0] for p in project["tool"]["setuptools"]["packages"]}
    linter = project["tool"]["importlinter"]
    contracts = {c["id"]: c for c in linter["contracts"]}
    floors = contracts["floors"]["layers"]
    assert set(linter["root_packages"]) == installed
    assert sorted(floors) == sorted(installed)
    assert set(contracts["rooms"]["ancestors"]) == installed
    assert floors[0] == "edgedistill_cli" and floors[-1] == "edgedistill"


def test_every_bench_module_sits_in_one_of_its_rooms():
    """bench's room contract names every module and subpackage of bench, and setuptools installs every
    subpackage, so a new flat file or an uninstalled room fails here, not on a user's machine."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    rooms = next(c for c in project["tool"]["importlinter"]["contracts"] if c["id"] == "bench-rooms")
    named = {part.strip() for layer in rooms["layers"] for part in layer.split("|")}
    bench = ROOT / "bench"
    present = {p.stem for p in bench.glob("*.py") if p.stem != "__init__"}
    present |= {p.parent.name for p in bench.glob("*/__init__.py")}
    assert present == named
    packages = set(project["tool"]["setuptools"]["packages"])
    subpackages = {".".join(p.parent.relative_to(ROOT).parts) for p in bench.rglob("__init__.py")}
    assert subpackages <= packages


@pytest.mark.parametrize("command, config, field, flag", [
    ("bench", "bench.config.BenchConfig", "min_rounds", "--min-rounds"),
    ("bench", "bench.config.BenchConfig", "seq_lens", "--seq-lens"),
    ("export", "export.config.ExportConfig", "parity_samples", "--parity-samples"),
])
def test_cli_help_reads_the_config_default(monkeypatch, command, config, field, flag):
    """A flag's help shows the stage config's own default: change the dataclass default and the help follows."""
    import argparse
    import importlib

    module, name = config.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    f = cls.__dataclass_fields__[field]
    monkeypatch.setattr(f, "default", 4242)
    monkeypatch.setattr(f, "default_factory", dataclasses.MISSING)
    parser = argparse.ArgumentParser()
    importlib.import_module(f"{command}.cli").add_arguments(parser)
    action = next(a for a in parser._actions if flag in a.option_strings)
    assert "4242" in action.help
