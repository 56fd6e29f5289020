"""A method or baseline that fails is a recorded failure, not a crash: the run writes metrics.json and
results.md for everything that finished, says what failed plainly, exits 3, and a re-run retries
only what failed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("sklearn")

OFF = {m: {"enabled": False} for m in ("odd", "even", "lora", "hybrid", "static")}


def _recipe_file(tmp_path, teacher, csv, methods=None, **baselines):
    recipe = {"run": {"name": "f", "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")},
              "data": {"source": "file", "path": str(csv), "text_column": "text", "label_column": "label",
                       "max_length": 16},
              "teacher": {"model": str(teacher)}, "train": {"epochs": 1, "batch_size": 16},
              "methods": methods or OFF,
              "baselines": {"tfidf": True, "model2vec": False, "tfidf_c": [1.0], **baselines}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _train(argv) -> int:
    from edgedistill_cli.commands import main

    return main(["train", *argv, "--no-progress"])


def test_a_baseline_failing_its_check_is_recorded_and_only_it_is_retried(tmp_path, tiny_checkpoint, tiny_csv,
                                                                          monkeypatch, capsys):
    import distill.baselines as baselines
    from distill.failures import TRAIN_FAILED

    path = _recipe_file(tmp_path, tiny_checkpoint, tiny_csv)
    results, run = tmp_path / "results" / "f", tmp_path / "runs" / "f"
    with monkeypatch.context() as m:
        m.setattr(baselines, "PARITY_TOLERANCE", -1.0)      # the ONNX graph's parity check cannot pass
        assert _train([str(path)]) == TRAIN_FAILED
    err = capsys.readouterr().err
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if line.startswith("edgedistill train:")]
    assert len(said) == 1 and said[0] == err.strip().splitlines()[-1]     # one paragraph, the last word
    assert "tfidf: the tfidf ONNX graph differs from scikit-learn" in err and "retry only what failed" in err
    metrics = json.loads((results / "metrics.json").read_text())
    assert list(metrics["models"]) == ["teacher"] and metrics["baselines"] == {}
    assert metrics["failed"]["tfidf"]["kind"] == "baseline" and "differs from" in metrics["failed"]["tfidf"]["error"]
    table = (results / "results.md").read_text()
    assert "**Failed, not written**" in table and "| tfidf | baseline | the tfidf ONNX graph differs" in table
    record = json.loads((run / "failed" / "tfidf.json").read_text())
    assert "Traceback" in record["traceback"]                      # kept for whoever debugs it, never printed
    assert not (run / "artifacts" / "tfidf" / "onnx-fp32").exists()
    teacher_marker = run / "models" / "teacher" / "edgedistill.json"
    written = teacher_marker.stat().st_mtime_ns

    assert _train([str(path)]) == 0                                 # the check passes again
    out = capsys.readouterr().out
    assert "[teacher] complete checkpoint found" in out and teacher_marker.stat().st_mtime_ns == written
    metrics = json.loads((results / "metrics.json").read_text())
    assert list(metrics["baselines"]) == ["tfidf"] and metrics["failed"] == {}
    assert "Failed" not in (results / "results.md").read_text()
    assert not (run / "failed" / "tfidf.json").exists()


def test_a_failed_teacher_leaves_its_students_untrained_and_the_baselines_trained(tmp_path, tiny_checkpoint,
                                                                                   tiny_csv, monkeypatch, capsys):
    import distill.pipeline as pipeline
    from distill.pipeline import train_run
    from edgedistill.recipe import load_recipe

    def boom(name, *args, **kwargs):
        raise RuntimeError(f"{name} ran out of\nsomething")

    monkeypatch.setattr(pipeline, "train_method", boom)
    recipe = load_recipe(_recipe_file(tmp_path, tiny_checkpoint, tiny_csv, {**OFF, "odd": {"enabled": True}}))
    metrics = train_run(recipe, progress=False)
    assert list(metrics["failed"]) == ["teacher", "odd"] and list(metrics["baselines"]) == ["tfidf"]
    assert metrics["failed"]["teacher"]["error"] == "RuntimeError: teacher ran out of something"
    assert "distils from the fine-tuned teacher, which did not finish" in metrics["failed"]["odd"]["error"]
    assert "[teacher] FAILED, not written: RuntimeError" in capsys.readouterr().out
    assert json.loads((recipe.results_path / "metrics.json").read_text())["failed"] == metrics["failed"]

    # keep_going=False: the first failure is raised, after the results of what finished are written
    (recipe.results_path / "metrics.json").unlink()
    with pytest.raises(RuntimeError, match="teacher ran out"):
        train_run(recipe, progress=False, keep_going=False)
    assert (recipe.results_path / "metrics.json").is_file()


def test_what_the_data_or_recipe_rules_out_is_said_before_anything_trains(tmp_path):
    from conftest import LABELS, tiny_texts

    from distill.baselines import data_problems
    from distill.data import Dataset, Split
    from edgedistill.configbase import ConfigError
    from edgedistill.recipe import load_recipe

    texts, labels = tiny_texts(30)
    ids = np.array([LABELS.index(x) for x in labels])
    no_neutral = ids != 1
    split = Split([t for t, k in zip(texts, no_neutral) if k], ids[no_neutral])
    data = Dataset(split, Split(texts, ids), Split(texts, ids), LABELS)
    problems = data_problems(data, ["tfidf", "model2vec", "setfit"])
    assert len(problems) == 2 and problems[0].startswith("baselines.tfidf: the training split has no text of the "
                                                         "class(es) ['neutral']")
    assert "baselines.model2vec: false" in problems[1]
    with pytest.raises(ConfigError, match="tfidf_max_ngram: 3 must be 1 .* or 2"):
        load_recipe(overrides={"baselines": {"tfidf_max_ngram": 3}})


def test_run_says_a_training_failure_last_and_exits_3(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch, capsys):
    import distill.baselines as baselines
    from edgedistill_cli.commands import main

    monkeypatch.setattr(baselines, "PARITY_TOLERANCE", -1.0)
    path = _recipe_file(tmp_path, tiny_checkpoint, tiny_csv, {**OFF, "teacher": {"enabled": False}})
    assert main(["run", str(path), "--stages", "train", "--no-progress"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edgedistill run: 1 of the run's methods and baselines failed") and "tfidf" in err[-1]
    metrics = json.loads((tmp_path / "results" / "f" / "metrics.json").read_text())
    assert metrics["models"] == {} and list(metrics["failed"]) == ["tfidf"]     # nothing finished, still said
