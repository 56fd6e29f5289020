"""The generality suite end to end on a tiny teacher and tiny data: rows, aggregation, resume."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import suite_main as main

from distill.suite import load_suite, recipe_fingerprint, run_suite
from edgedistill.configbase import ConfigError, dump


def _suite(tmp_path, tiny_checkpoint, tiny_csv, entries=None, seeds=(1, 2)):
    from test_train import tiny_recipe

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 2, "early_stopping_patience": 1})
    for m in ("even", "tiny", "lora"):
        recipe.methods[m].enabled = False
    (tmp_path / "recipe.yaml").write_text(dump(recipe))
    spec = {
        "recipe": str(tmp_path / "recipe.yaml"),
        "seeds": list(seeds),
        "runs_dir": str(tmp_path / "suite-runs"),
        "results_dir": str(tmp_path / "suite"),
        "overrides": {"data": {"max_length": 12}},
        "entries": entries or {"capped": {"data": {"max_train": 60, "unlabeled": "rest-of-train"}}},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_tiny_suite_aggregates_over_seeds_and_resumes(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    path = _suite(tmp_path, tiny_checkpoint, tiny_csv)
    result = run_suite(path)
    assert result["complete"] and result["missing"] == []
    capped = result["entries"]["capped"]
    assert capped["seeds"] == [1, 2] and capped["sizes"]["train"] == 60
    assert capped["extra_texts"]["unlabeled"] > 0
    odd = capped["methods"]["odd"]
    # the static student and the cheap peer baselines run on every entry
    assert set(capped["methods"]) == {"teacher", "odd", "hybrid", "static", "tfidf", "model2vec"}
    assert capped["methods"]["tfidf"]["baseline"] and not capped["methods"]["static"]["baseline"]
    assert capped["methods"]["model2vec"]["retained_test_macro_f1"]["n"] == 2
    assert odd["retained_test_macro_f1"]["n"] == 2 and odd["retained_test_macro_f1"]["std"] >= 0
    assert capped["methods"]["teacher"]["retained_test_macro_f1"]["mean"] == pytest.approx(1.0)
    assert set(odd["test_per_class_f1"]) == {"negative", "neutral", "positive"}
    rows = json.loads((tmp_path / "suite" / "entries" / "capped-s2.json").read_text())
    assert rows["models"]["odd"]["retained"] == pytest.approx(
        rows["models"]["odd"]["test_macro_f1"] / rows["models"]["teacher"]["test_macro_f1"]
    )
    table = (tmp_path / "suite" / "suite.md").read_text()
    assert "| capped | 2 | 60 |" in table and "| tfidf (baseline) |" in table
    assert "The static student against the plain model2vec baseline" in table
    assert (tmp_path / "suite" / "retained.png").read_bytes()[:4] == b"\x89PNG"

    # a killed suite resumes: finished pairs are not retrained, a missing one is
    kept = (tmp_path / "suite" / "entries" / "capped-s1.json").stat().st_mtime_ns
    (tmp_path / "suite" / "entries" / "capped-s2.json").unlink()
    partial = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert partial["complete"]
    assert main([str(path), "--tables"]) == 0          # re-aggregates what is finished, trains nothing
    tables = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert tables["missing"] == ["capped-s2"] and not (tmp_path / "suite" / "entries" / "capped-s2.json").exists()
    # a selection names what the suite file has, and trains only that
    assert main([str(path), "--only", "capeed", "--seeds", "7"]) == 2
    err = capsys.readouterr().err
    assert "--only capeed: not an entry" in err and "(entries: capped)" in err and "--seeds 7: not a seed" in err
    assert main([str(path), "--seeds", "1"]) == 0
    assert not (tmp_path / "suite" / "entries" / "capped-s2.json").exists()
    again = run_suite(path)
    assert again["complete"] and (tmp_path / "suite" / "entries" / "capped-s2.json").is_file()
    assert (tmp_path / "suite" / "entries" / "capped-s1.json").stat().st_mtime_ns == kept

    # a half-trained pair resumes at its first unfinished method; its time counts what the earlier process spent
    (tmp_path / "suite" / "entries" / "capped-s2.json").unlink()
    shutil.rmtree(tmp_path / "suite-runs" / "capped-s2" / "models" / "hybrid")
    # ... and a method an older recipe trained there is retrained, not refused
    spec = yaml.safe_load(path.read_text())
    spec["overrides"]["methods"] = {"odd": {"lr": 3e-4}}
    path.write_text(yaml.safe_dump(spec))
    (tmp_path / "suite" / "entries" / "capped-s1.json").unlink()
    shutil.rmtree(tmp_path / "suite-runs" / "capped-s1")
    run_suite(path, only=["capped"])
    row = json.loads((tmp_path / "suite" / "entries" / "capped-s2.json").read_text())
    # static, after hybrid in the registry, was finished too and is kept
    assert row["resumed"]["methods_trained_before"] == ["teacher", "static"] and row["models"]["odd"]["lr"] == 3e-4
    earlier = row["models"]["teacher"]["wall_time_s"] + row["models"]["static"]["wall_time_s"]
    assert row["wall_time_s"] == pytest.approx(row["resumed"]["wall_time_s_this_process"] + earlier)


def test_rows_of_another_recipe_are_refused_until_retrained(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    path = _suite(tmp_path, tiny_checkpoint, tiny_csv, seeds=[1])
    spec = yaml.safe_load(path.read_text())
    run_suite(path)
    row = tmp_path / "suite" / "entries" / "capped-s1.json"
    first = json.loads(row.read_text())
    assert len(first["recipe_sha256"]) == 64
    # where the files go is not part of the recipe; the seed is
    _, recipes = load_suite(path)
    recipe = recipes[("capped", 1)]
    fp = recipe_fingerprint(recipe)
    recipe.run.runs_dir, recipe.run.results_dir = "elsewhere", "elsewhere/results"
    assert recipe_fingerprint(recipe) == fp == first["recipe_sha256"]
    recipe.run.seed = 2
    assert recipe_fingerprint(recipe) != fp

    spec["overrides"]["train"] = {"epochs": 1}          # the suite file changes after a pair finished
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="capped-s1.json.*--rerun-stale"):
        run_suite(path)
    assert main([str(path)]) == 2 and "other settings" in capsys.readouterr().err
    assert json.loads(row.read_text()) == first              # nothing retrained, nothing rewritten
    result = run_suite(path, rerun_stale=True)
    again = json.loads(row.read_text())
    assert again["recipe_sha256"] != first["recipe_sha256"] and result["complete"]
    assert again["models"]["teacher"]["epochs_run"] == 1

    # a retraining killed half-way resumes; the row's time counts what the killed process spent
    row.write_text(json.dumps(first))
    shutil.rmtree(tmp_path / "suite-runs" / "capped-s1" / "models" / "hybrid")
    run_suite(path, rerun_stale=True)
    resumed = json.loads(row.read_text())
    before = resumed["resumed"]["methods_trained_before"]
    assert "teacher" in before and "hybrid" not in before
    spent = resumed["resumed"]["wall_time_s_this_process"] + sum(resumed["models"][m]["wall_time_s"] for m in before)
    assert resumed["wall_time_s"] == pytest.approx(spent)
    assert resumed["retrained"][-1]["wall_time_s"] == pytest.approx(spent)


def test_a_missing_library_stops_the_suite_before_any_pair_trains(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch):
    import distill.baselines as baselines

    path = _suite(tmp_path, tiny_checkpoint, tiny_csv, seeds=[1])
    monkeypatch.setitem(baselines.LIBRARIES, "tfidf", ("no_such_library", "pip install it"))
    with pytest.raises(ConfigError, match="(?s)entry capped: baselines.tfidf: needs no_such_library.*Nothing was"):
        run_suite(path)
    assert not (tmp_path / "suite-runs").exists()


def test_suite_entries_validated_before_training(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    path = _suite(
        tmp_path,
        tiny_checkpoint,
        tiny_csv,
        entries={"ok": {}, "bad": {"data": {"unlabeled": "rest-of-train"}, "methods": {"odd": {"lr": -1}}}},
    )
    with pytest.raises(ConfigError, match="(?s)entry bad.*rest-of-train needs data.max_train"):
        load_suite(path)
    assert main([str(path)]) == 2 and "methods.odd.lr" in capsys.readouterr().err
    assert not (tmp_path / "suite-runs").exists()  # nothing trained


def test_plan_projects_time_from_measured_throughput(tmp_path, tiny_checkpoint, tiny_csv):
    from distill.suite import plan

    path = _suite(tmp_path, tiny_checkpoint, tiny_csv)
    costs = tmp_path / "metrics.json"
    costs.write_text(
        json.dumps(
            {
                "models": {
                    "teacher": {"train_examples_per_s": 10.0},
                    "odd": {"train_examples_per_s": 20.0},
                    "hybrid": {"train_examples_per_s": 25.0},
                }
            }
        )
    )
    result = plan(path, costs)
    # nothing trained yet: every pair, every method is still to train
    assert result["projected_remaining_s"] == pytest.approx(result["projected_total_s"])
    assert result["remaining"]["capped-s2"]["methods"] == ["teacher", "odd", "hybrid", "static"]
    capped = result["entries"]["capped"]
    assert capped["labelled"] == 60 and capped["student_texts"] > 60
    odd = capped["methods"]["odd"]
    assert odd["projected_s"] == pytest.approx(0.05 * (capped["student_texts"] * 2 + (12 * 3 + 12) / 3))
    assert result["projected_total_s"] == pytest.approx(sum(e["projected_s"] for e in result["entries"].values()))
    assert not (tmp_path / "suite-runs").exists()  # planning trains nothing


def test_plan_costs_from_a_suite_row_count_its_evaluation_passes(tmp_path):
    from distill.suite import measured_costs

    row = {
        "wall_time_s": 100.0,
        "data": {"sizes": {"train": 200, "validation": 30, "test": 60}},
        "models": {
            "teacher": {"train_examples": 200, "epochs_run": 4, "wall_time_s": 90.0},
            "odd": {"train_examples": 300, "epochs_run": 2, "wall_time_s": 33.0},
            "tiny": {"train_examples": 300, "epochs_run": 0, "wall_time_s": 0.0},  # skipped: no cost to read
        },
    }
    path = tmp_path / "tweets-2k-s1.json"
    path.write_text(json.dumps(row))
    sec = measured_costs(path)
    # 4 training passes over 200 texts, 5 validation passes over 30 and one test pass over 60 at a third each
    assert sec["teacher"] == pytest.approx(90.0 / (800 + (150 + 60) / 3))
    assert sec["odd"] == pytest.approx(33.0 / (600 + (90 + 60) / 3))
    assert set(sec) == {"teacher", "odd"}


def test_schedule_ablation_reuses_one_teacher_and_records_validation(tmp_path, tiny_checkpoint, tiny_csv):
    from schedule_ablation import run_variants
    from test_train import tiny_recipe

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})
    (tmp_path / "recipe.yaml").write_text(dump(recipe))
    variants = {
        "base": {},
        "pool-lr": {
            "data": {"max_train": 60, "unlabeled": "rest-of-train"},
            "methods": {"odd": {"lr": 1e-2, "epochs": 2}},
        },
    }
    out = tmp_path / "ablation"
    result = run_variants(str(tmp_path / "recipe.yaml"), variants, "odd", overrides=["data.max_train=60"], out_dir=out)
    rows = result["variants"]
    assert list(rows) == ["base", "pool-lr"] and rows["pool-lr"]["lr"] == 1e-2
    assert rows["pool-lr"]["extra_texts"]["unlabeled"] > 0 and not rows["base"]["extra_texts"]
    assert len(rows["pool-lr"]["validation_history"]) == rows["pool-lr"]["compute"]["epochs_run"] == 2
    assert result["teacher"]["epochs"] == 1 and "| pool-lr |" in (out / "variants.md").read_text()
    assert (out / recipe.run.name / "metrics.json").is_file()  # the teacher's own results, beside the variants
    stamp = (out / "variants.json").stat().st_mtime_ns
    run_variants(str(tmp_path / "recipe.yaml"), variants, "odd", overrides=["data.max_train=60"], out_dir=out)
    assert (out / "variants.json").stat().st_mtime_ns == stamp  # finished variants are not retrained


def test_schedule_ablation_trains_each_method_on_what_the_pipeline_gives_it(tmp_path, tiny_checkpoint, tiny_csv):
    """LoRA has no teacher in its loss: it learns from the labelled texts only, here as in a run."""
    from schedule_ablation import run_variants
    from test_train import tiny_recipe

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})
    (tmp_path / "recipe.yaml").write_text(dump(recipe))
    over = ["data.max_train=60", "data.unlabeled=rest-of-train"]
    out = tmp_path / "ablation"
    lora = run_variants(str(tmp_path / "recipe.yaml"), {"base": {}}, "lora", overrides=over, out_dir=out)
    odd = run_variants(str(tmp_path / "recipe.yaml"), {"base": {}}, "odd", overrides=over, out_dir=tmp_path / "odd")
    assert lora["variants"]["base"]["compute"]["examples_seen"] == 60 and not lora["variants"]["base"]["extra_texts"]
    assert odd["variants"]["base"]["compute"]["examples_seen"] > 60 and odd["variants"]["base"]["extra_texts"]


def test_schedule_ablation_spec_without_variants_is_refused_before_training(tmp_path, capsys):
    from schedule_ablation import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("recipe: configs/quickstart.yaml\nmethod: lora\n")
    assert main([str(spec)]) == 2
    err = capsys.readouterr().err
    assert "spec.yaml: missing variants" in err


def test_suite_table_judges_each_mean_against_its_target():
    from distill.suite import suite_table

    def method(retained, wall):
        one = {"mean": retained, "std": 0.01, "n": 3}
        return {"retained_test_macro_f1": one, "test_macro_f1": {"mean": 0.7 * retained, "std": 0.0},
                "test_per_class_f1": {"a": {"mean": 0.5, "std": 0.0}}, "epochs_run": [3, 3, 3],
                "best_epoch": [2, 3, 3], "wall_time_s": {"mean": wall}}

    result = {
        "complete": False, "missing": ["e-s3"], "recipe": "r.yaml", "overrides": {}, "seeds": [1, 2, 3],
        "provenance": {"git_commit": "abc", "hardware": {"label": "cpu"}},
        "entries": {"e": {"seeds": [1, 2], "sizes": {"train": 2000}, "wall_time_s": {"mean": 1800.0},
                          "methods": {"teacher": method(1.0, 100), "odd": method(0.985, 50),
                                      "lora": method(0.94, 80), "auto": method(0.97, 40)}}},
    }
    table = suite_table(result)
    assert "| odd | 98.5 +- 1.0 | >= 98: met |" in table
    assert "| lora | 94.0 +- 1.0 | >= 95: NOT met |" in table
    assert "| auto | 97.0 +- 1.0 |  |" in table          # a comparison, not a target
    assert "Targets met: 1 of 2" in table and "with pairs still missing" in table
    assert "finished pairs: 1.0 h" in table                 # 2 seeds x 1800 s


def test_readme_suite_block_is_written_between_its_markers(tmp_path):
    from tools.readme_results import main

    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "suite.md").write_text("# Generality suite (complete)\n\n| Entry |\n|---|\n| e |\n")
    readme = tmp_path / "README.md"
    readme.write_text("before\n<!-- suite:start -->\nold\n<!-- suite:end -->\nafter\n")
    assert main(["--run", "suite", "--results", str(tmp_path), "--section", "suite", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("before\n<!-- suite:start -->\nGenerality suite (complete)")
    assert "| e |\n<!-- suite:end -->\nafter\n" in text


def test_a_changed_method_retrains_only_that_method(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    from distill.suite import stale_methods

    path = _suite(tmp_path, tiny_checkpoint, tiny_csv, seeds=[1])
    spec = yaml.safe_load(path.read_text())
    run_suite(path)
    row = tmp_path / "suite" / "entries" / "capped-s1.json"
    models = tmp_path / "suite-runs" / "capped-s1" / "models"
    first = json.loads(row.read_text())
    assert set(first["method_sha256"]) == {"teacher", "odd", "hybrid", "static"}
    stamps = {m: (models / m / "edgedistill.json").stat().st_mtime_ns for m in ("teacher", "odd", "hybrid")}

    # settings no suite row depends on do not make a row stale
    spec["overrides"]["export"] = {"parity_samples": 7}
    path.write_text(yaml.safe_dump(spec))
    cfg, recipes = load_suite(path)
    assert stale_methods(cfg, recipes) == {}

    # rows written before per-method fingerprints were recorded get them from their run folder's recipe
    legacy = {k: v for k, v in first.items() if k != "method_sha256"}
    row.write_text(json.dumps(legacy))
    spec["overrides"]["methods"] = {"hybrid": {"lr": 1.0e-3}}
    path.write_text(yaml.safe_dump(spec))
    cfg, recipes = load_suite(path)
    assert stale_methods(cfg, recipes) == {row: ["hybrid"]}
    with pytest.raises(ConfigError, match="capped-s1.json: hybrid"):
        run_suite(path)

    result = run_suite(path, rerun_stale=True)
    again = json.loads(row.read_text())
    assert result["complete"] and "retraining ['hybrid']" in capsys.readouterr().out
    assert again["models"]["hybrid"]["lr"] == 1.0e-3 and first["models"]["hybrid"]["lr"] != 1.0e-3
    assert again["models"]["odd"] == first["models"]["odd"] and again["models"]["teacher"] == first["models"]["teacher"]
    for m in ("teacher", "odd"):
        assert (models / m / "edgedistill.json").stat().st_mtime_ns == stamps[m]
    assert (models / "hybrid" / "edgedistill.json").stat().st_mtime_ns != stamps["hybrid"]
    (redo,) = again["retrained"]
    assert redo["methods"] == ["hybrid"]
    expected = first["wall_time_s"] - first["models"]["hybrid"]["wall_time_s"] + redo["wall_time_s"]
    assert again["wall_time_s"] == pytest.approx(expected)
    assert stale_methods(*load_suite(path)) == {}

    # without its run folder a stale row cannot tell which checkpoints are current: it retrains whole
    shutil.rmtree(tmp_path / "suite-runs" / "capped-s1")
    row.write_text(json.dumps({k: v for k, v in again.items() if k != "method_sha256"} | {"recipe_sha256": "old"}))
    cfg, recipes = load_suite(path)
    assert stale_methods(cfg, recipes) == {row: ["teacher", "odd", "hybrid", "static"]}


def test_a_stale_method_without_its_run_folder_retrains_beside_a_reproduced_teacher(tmp_path, tiny_checkpoint,
                                                                                    tiny_csv, capsys):
    """A fresh clone has the rows but no checkpoints: a changed static student retrains with the teacher
    alone, and the other methods' entries stay only while that teacher scores exactly what the row's did."""
    from distill.suite import plan

    path = _suite(tmp_path, tiny_checkpoint, tiny_csv, seeds=[1])
    spec = yaml.safe_load(path.read_text())
    run_suite(path)
    row = tmp_path / "suite" / "entries" / "capped-s1.json"
    first = json.loads(row.read_text())
    models = tmp_path / "suite-runs" / "capped-s1" / "models"
    shutil.rmtree(tmp_path / "suite-runs")
    spec["overrides"]["methods"] = {"static": {"lr": 0.02}}
    path.write_text(yaml.safe_dump(spec))
    costs = tmp_path / "metrics.json"
    costs.write_text(json.dumps({"models": {m: {"train_examples_per_s": 10.0} for m in ("teacher", "odd", "hybrid")}}))
    projected = plan(path, costs)
    (todo,) = projected["remaining"].values()
    assert todo["methods"] == ["teacher", "static"] and "no run folder" in todo["why"]
    per = projected["entries"]["capped"]["methods"]
    teacher_pass = projected["entries"]["capped"]["projected_s_per_seed"] - sum(m["projected_s"] for m in per.values())
    assert todo["projected_s"] == pytest.approx(per["teacher"]["projected_s"] + per["static"]["projected_s"]
                                                + teacher_pass)
    run_suite(path, rerun_stale=True)
    again = json.loads(row.read_text())
    assert "retraining the teacher (it must reproduce its row) and static" in capsys.readouterr().out
    assert sorted(p.name for p in models.iterdir()) == ["static", "teacher"]      # odd and hybrid not retrained
    assert again["models"]["static"]["lr"] == 0.02 != first["models"]["static"]["lr"]
    for m in ("teacher", "odd", "hybrid", "tfidf", "model2vec"):
        assert again["models"][m] == first["models"][m]
    (redo,) = again["retrained"]
    assert redo["methods"] == ["static"] and 0 < redo["teacher_reproduced_s"] < redo["wall_time_s"]
    expected = (first["wall_time_s"] - first["models"]["static"]["wall_time_s"] + redo["wall_time_s"]
                - redo["teacher_reproduced_s"])
    assert again["wall_time_s"] == pytest.approx(expected)
    assert stale_methods_of(path) == {} and plan(path, costs)["remaining"] == {}

    # a teacher that does not reproduce the row's: its students came from another teacher, so all retrain
    shutil.rmtree(tmp_path / "suite-runs")
    spec["overrides"]["methods"] = {"static": {"lr": 0.03}}
    path.write_text(yaml.safe_dump(spec))
    other = json.loads(json.dumps(again))
    other["models"]["teacher"]["test_macro_f1"] += 0.01
    row.write_text(json.dumps(other))
    run_suite(path, rerun_stale=True)
    assert "does not reproduce its row" in capsys.readouterr().out
    assert {"odd", "hybrid", "static", "teacher"} <= {p.name for p in models.iterdir()}
    whole = json.loads(row.read_text())
    assert whole["models"]["teacher"]["test_macro_f1"] == first["models"]["teacher"]["test_macro_f1"]
    assert whole["retrained"][-1]["methods"] == list(whole["models"])       # every entry is this retraining's


def stale_methods_of(path):
    from distill.suite import stale_methods

    return stale_methods(*load_suite(path))


def test_a_pair_costs_at_least_what_its_methods_took():
    """A row that recorded only its last process (an old resumed pair) is counted by its methods' times."""
    from distill.suite import pair_wall_s

    row = {"wall_time_s": 100.0, "models": {"teacher": {"wall_time_s": 90.0}, "odd": {"wall_time_s": 33.0},
                                            "tfidf": {"baseline": True, "wall_time_s": None}}}
    assert pair_wall_s(row) == 123.0
    row["wall_time_s"] = 130.0                 # loading, evaluation and the pool pass between methods
    assert pair_wall_s(row) == 130.0


def test_a_suite_trained_on_two_machines_names_both():
    """Rows record the machine that trained them; the tables must not credit them all to one box."""
    from distill.suite import machines_text, suite_table
    from tools.readme_results import provenance

    one = {"mean": 1.0, "std": 0.0, "n": 2}
    teacher = {"retained_test_macro_f1": one, "test_macro_f1": {"mean": 0.7, "std": 0.0},
               "test_per_class_f1": {"a": {"mean": 0.5, "std": 0.0}}, "epochs_run": [3, 3], "best_epoch": [2, 3],
               "wall_time_s": {"mean": 100.0}}
    result = {
        "complete": True, "missing": [], "recipe": "r.yaml", "overrides": {}, "seeds": [1, 2, 3, 4],
        "provenance": {"git_commit": "abc", "hardware": {"label": "tables-box"}},
        "machines": {"box-b": ["e-s4"], "box-a": ["e-s1", "e-s2", "e-s3"]},
        "entries": {"e": {"seeds": [1, 2, 3, 4], "sizes": {"train": 2000}, "wall_time_s": {"mean": 900.0},
                          "methods": {"teacher": teacher}}},
    }
    assert machines_text(result["machines"]) == "box-a (3 pairs: e-s1, e-s2, e-s3), box-b (1 pair: e-s4)"
    table = suite_table(result)
    assert "pairs trained on box-a (3 pairs: e-s1, e-s2, e-s3), box-b (1 pair: e-s4)" in table
    assert "tables-box" not in table and "1.0 h on those machines" in table
    head = provenance("suite", "suite", None, Path("experiments"),
                      [("Tables", {"command": "edgedistill suite s.yaml --tables", "git_commit": "abc",
                                   "hardware": {"label": "tables-box"}})], trained_on="box-a (3 pairs)")
    assert "All on" not in head and "on tables-box" in head and "Trained on box-a (3 pairs)." in head

    result["machines"] = {"box-a": ["e-s1", "e-s2", "e-s3", "e-s4"]}
    table = suite_table(result)
    assert "pairs trained on box-a." in table and "1.0 h on this machine" in table


def test_the_committed_suite_rows_are_current_with_the_committed_recipe(monkeypatch):
    """The suite refuses to average rows of two recipes: what is committed must be one recipe's, and an
    option added since, left off, must not make them stale."""
    from distill.suite import stale_methods

    monkeypatch.chdir(Path(__file__).resolve().parents[1])        # the suite file's paths are the repository's
    cfg, recipes = load_suite("experiments/suite/suite.yaml")
    assert len(recipes) == 12 and stale_methods(cfg, recipes) == {}
