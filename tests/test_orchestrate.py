"""``edgedistill run``: the whole recipe is checked before any work, and the later stages use the
recipe given and the run's one results folder."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import make_tiny_model, make_tokenizer
from test_bench_run import make_tiny_run


def _write(path, recipe: dict):
    path.write_text(yaml.safe_dump(recipe))
    return path


def _recipe(tmp_path, teacher, csv, **sections) -> dict:
    recipe = {"run": {"name": "checked", "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")},
              "data": {"source": "file", "path": str(csv), "text_column": "text", "label_column": "label",
                       "max_length": 16},
              "teacher": {"model": str(teacher)}, "train": {"epochs": 1, "batch_size": 8}}
    recipe.update(sections)
    return recipe


def test_run_reports_every_bad_section_before_any_work(tmp_path, tiny_checkpoint, tiny_csv):
    from edgedistill.configbase import ConfigError
    from edgedistill_cli.orchestrate import run_all

    path = _write(tmp_path / "r.yaml", _recipe(
        tmp_path, tiny_checkpoint, tiny_csv, methods={"odd": {"layers": [0, 9]}},
        export={"variants": ["onnx-fp32", "onnx-int4"]}, bench={"seq_lens": ["natural", 2]}))
    with pytest.raises(ConfigError) as err:
        run_all(str(path), progress=False)
    message = str(err.value)
    assert "methods.odd.layers: [0, 9]: teacher has 2 layers" in message
    assert "export.variants: unknown ['onnx-int4']" in message
    assert "bench.seq_lens: 2 is not 'natural'" in message
    assert "3 problem(s)" in message
    assert not (tmp_path / "runs").exists()                # nothing trained, nothing written


def test_a_student_as_deep_as_its_teacher_is_refused_up_front(tmp_path, tiny_csv):
    from distill.pipeline import train_run
    from edgedistill.configbase import ConfigError
    from edgedistill_cli.orchestrate import check_recipe

    teacher = tmp_path / "one-layer"
    tok = make_tokenizer(tmp_path / "vocab")
    make_tiny_model("bert", num_layers=1, vocab_size=len(tok)).save_pretrained(teacher)
    tok.save_pretrained(teacher)
    path = _write(tmp_path / "r.yaml", _recipe(tmp_path, teacher, tiny_csv))
    with pytest.raises(ConfigError, match="methods.odd: a student of 1 of the teacher's 1 layers is not smaller"):
        check_recipe(str(path))
    # `edgedistill train` alone checks before training the teacher too
    from edgedistill.recipe import load_recipe

    with pytest.raises(ConfigError, match="methods.even.layers"):
        train_run(load_recipe(path), progress=False)
    assert not (tmp_path / "runs" / "checked" / "models").exists()


def test_stages_after_training_use_the_recipe_given_and_one_results_folder(tmp_path, monkeypatch):
    import distill.pipeline
    from edgedistill_cli.orchestrate import run_all

    run = make_tiny_run(tmp_path, methods=("teacher",))
    stored = yaml.safe_load((run / "recipe.yaml").read_text())
    # A copy of the run under another name: its results must not land in the original's folder.
    copy = run.parent / "copy"
    shutil.copytree(run, copy)
    given = {**stored, "run": {**stored["run"], "name": "copy"},
             "bench": {"quick": True, "threads": [1], "seq_lens": [16], "runtimes": ["onnxruntime"]},
             "export": {"variants": ["onnx-fp32"], "parity_samples": 8}}
    path = _write(tmp_path / "given.yaml", given)
    wrote = []
    monkeypatch.setattr(distill.pipeline, "write_results", lambda recipe, data=None: wrote.append(recipe))
    run_all(str(path), stages=["export", "bench"], progress=False)
    assert len(wrote) == 1                        # the copy's results folder had no metrics.json
    results = tmp_path / "results"
    assert sorted(p.name for p in results.iterdir()) == ["copy"]
    export = json.loads((results / "copy" / "export.json").read_text())
    assert [a["artifact"] for a in export["artifacts"]] == ["teacher/onnx-fp32"]
    bench = json.loads((results / "copy" / "bench.json").read_text())
    (block,) = bench["machines"].values()
    assert block["bench_config"]["seq_lens"] == [16]             # the recipe given, not runs/copy/recipe.yaml
    assert {r["runtime"] for r in bench["rows"]} == {"onnxruntime"}
    assert yaml.safe_load((copy / "recipe.yaml").read_text())["bench"]["seq_lens"] == [16]
    # With one there, an export alone leaves it alone: it names the command that trained.
    (results / "copy" / "metrics.json").write_text("{}")
    run_all(str(path), stages=["export"], progress=False)
    assert len(wrote) == 1 and (results / "copy" / "metrics.json").read_text() == "{}"


def test_export_and_bench_alone_write_to_the_run_folders_results(tmp_path, capfd):
    from edgedistill.recipe import results_root_of
    from export.config import load_export_config
    from export.pipeline import export_run

    run = make_tiny_run(tmp_path, methods=("teacher",))
    copy = run.parent / "renamed"
    shutil.copytree(run, copy)
    capfd.readouterr()
    export_run(copy, load_export_config({"variants": ["onnx-fp32"], "parity_samples": 8}), log=lambda *a: None,
               progress=False)
    assert "export:" not in capfd.readouterr().err         # --no-progress: no bar
    assert (tmp_path / "results" / "renamed" / "export.json").is_file()
    assert not (tmp_path / "results" / "tiny").exists()
    assert results_root_of(copy) == tmp_path / "results" / "renamed"


def test_auto_layers_are_checked_for_depth_before_any_training(tmp_path):
    """`layers: auto` picks its layers after the teacher trains; its depth is still checked up front."""
    from distill.pipeline import method_problems
    from edgedistill.recipe import load_recipe

    ok = load_recipe(overrides={"methods": {"tiny": {"enabled": True, "layers": "auto", "num_layers": 2}}})
    assert method_problems(ok, ["tiny"]) == []
    deep = load_recipe(overrides={"methods": {"tiny": {"enabled": True, "layers": "auto", "num_layers": 6}}})
    assert any("not smaller than the teacher" in p for p in method_problems(deep, ["tiny"]))


def test_layer_ranges_and_max_length_are_listed_with_the_other_recipe_errors(tmp_path, tiny_checkpoint, tiny_csv):
    """One pass: a bad train field, a layer index past the teacher's depth and a max_length past its
    max_position_embeddings (128 in the tiny config) are reported together, before any work."""
    from edgedistill.configbase import ConfigError
    from edgedistill_cli.orchestrate import check_recipe

    recipe = _recipe(tmp_path, tiny_checkpoint, tiny_csv, methods={"odd": {"layers": [0, 9]}})
    recipe["train"]["epochs"] = 0
    recipe["data"]["max_length"] = 100000
    with pytest.raises(ConfigError) as err:
        check_recipe(str(_write(tmp_path / "r.yaml", recipe)))
    message = str(err.value)
    assert "train.epochs: 0 must be >= 1" in message
    assert "methods.odd.layers: [0, 9]: teacher has 2 layers" in message
    assert "data.max_length: 100000 tokens is more than the teacher's max_position_embeddings (128" in message
    assert "3 problem(s)" in message and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text, expected", [
    ("methods: [odd, even]\n", "methods: expected a mapping of method name -> settings"),
    ("train: 5\n", "train: 5 is not a mapping of epochs"),
    ("export: [onnx-fp32]\n", "export: expected a mapping of export settings"),
    ("methods:\n  odd:\n    layers: odd\n    layers: even\n", "line 4, column 5: the key 'layers' is written twice"),
    ("run: {name: [\n", "is not valid YAML: line 2"),
])
def test_a_recipe_of_the_wrong_shape_is_one_paragraph_and_exit_2(tmp_path, capsys, text, expected):
    from edgedistill_cli.commands import main

    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert main(["run", str(path), "--stages", "export", "bench"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgedistill run: ") and expected in err and "Traceback" not in err


def test_a_recipe_not_in_utf8_and_a_bad_set_value_are_named(tmp_path, capsys):
    from edgedistill_cli.commands import main

    path = tmp_path / "r.yaml"
    path.write_bytes("run:\n  name: caf\u00e9\n".encode("latin-1"))
    assert main(["run", str(path)]) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err
    path.write_text("run: {name: x}\n")
    for value in ("train.epochs=[1", "run.name=!!python/object/apply:os.system [ls]"):
        assert main(["run", str(path), "--set", value]) == 2
        err = capsys.readouterr().err
        assert f"--set '{value}'" in err and "not a plain YAML value" in err and "Traceback" not in err


def test_a_second_process_on_the_same_run_folder_is_told_who_holds_it(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    import subprocess
    import sys

    from edgedistill_cli.commands import main

    path = _write(tmp_path / "r.yaml", _recipe(tmp_path, tiny_checkpoint, tiny_csv))
    run_dir = tmp_path / "runs" / "checked"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom edgedistill.layout import run_lock\n"
         f"with run_lock({str(run_dir)!r}, ['edgedistill', 'run', 'first.yaml'], create=True):\n"
         "    print('held', flush=True)\n    time.sleep(120)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["run", str(path), "--stages", "train"]) == 2
        err = capsys.readouterr().err
        assert f"in use by another edgedistill process (pid {holder.pid} on " in err
        assert "edgedistill run first.yaml" in err and not (run_dir / "models").exists()
    finally:
        holder.kill()
        holder.wait()
    # the lock went with its process (kill -9): the next run takes it
    from edgedistill.layout import run_lock

    with run_lock(run_dir):
        assert json.loads((run_dir / ".lock.json").read_text())["pid"] > 0
