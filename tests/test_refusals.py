"""Early, clear refusals where a command once did something else: an empty recipe, preset labels,
non-finite budgets, Ctrl-C, a missing library of the full install, --quick over real rows, bad
ports, counts and paths, advice naming a flag the command has."""
from __future__ import annotations

import json

import pytest
from test_bench_run import make_tiny_run


def test_an_empty_recipe_is_refused(tmp_path, capsys):
    from edgedistill_cli.commands import main

    for text in ("", "# only a comment\n", "{}\n"):
        (tmp_path / "empty.yaml").write_text(text)
        assert main(["train", str(tmp_path / "empty.yaml")]) == 2
        assert "is empty" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_labels_declared_for_a_preset_are_refused():
    from edgedistill.configbase import ConfigError
    from edgedistill.recipe import load_recipe

    with pytest.raises(ConfigError, match="only a data file"):
        load_recipe(overrides={"data": {"source": "tweet-sentiment", "labels": ["a", "b", "c", "d"]}})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_int8_budget_is_refused(value):
    from edgedistill.configbase import ConfigError
    from export.config import load_export_config

    with pytest.raises(ConfigError, match="max_f1_drop: .* is not a finite number"):
        load_export_config({"max_f1_drop": value})


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import distill.cli
    from edgedistill_cli.commands import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(distill.cli, "main", interrupted)
    assert main(["train", "x.yaml"]) == 130
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C)" in err and "Traceback" not in err


def test_a_missing_library_of_the_full_install_names_make_install(monkeypatch, capsys):
    import distill.cli
    from edgedistill_cli.commands import main

    def no_pandas(args):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    monkeypatch.setattr(distill.cli, "main", no_pandas)
    assert main(["train", "x.yaml"]) == 2
    assert "this command needs the full install (`make install`): pandas" in capsys.readouterr().err


def test_bad_ports_counts_and_paths_are_refused_before_work(tmp_path, capsys):
    from edgedistill_cli.commands import main

    assert main(["dashboard", "--port", "99999"]) == 2
    assert "--port 99999 is not a TCP port" in capsys.readouterr().err
    run = make_tiny_run(tmp_path, methods=("teacher",))
    assert main(["gpu-pack", "--run", str(run), "--max-mb", "-1"]) == 2
    assert "--max-mb -1" in capsys.readouterr().err and not (run / "gpu_pack").exists()
    afile = tmp_path / "a-file"
    afile.write_text("x")
    assert main(["bench", "--run", str(run), "--results", str(afile)]) == 2
    assert f"--results {afile} is a file" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text((run / "recipe.yaml").read_text())
    assert main(["layers", str(recipe), "--num-layers", "0"]) == 2
    assert "--num-layers 0" in capsys.readouterr().err


def test_quick_bench_writes_beside_the_real_rows(tmp_path, capsys):
    from edgedistill_cli.commands import main

    run = make_tiny_run(tmp_path, methods=("teacher",))
    real = tmp_path / "results" / "tiny"
    real.mkdir(parents=True)
    (real / "bench.json").write_text("real rows")
    main(["bench", "--run", str(run), "--quick", "--threads", "1", "--max-test", "10", "--runtimes", "pytorch",
          "--no-progress", "--set", "bench.include_bf16=false"])
    assert (real / "bench.json").read_text() == "real rows"
    assert (real / "quick" / "bench.json").is_file()


def test_advice_names_only_flags_the_command_has(tmp_path):
    from bench.schema import BenchFileError, load_or_new, read_document

    bad = tmp_path / "bench.json"
    bad.write_text(json.dumps({"macro_f1": 1}))
    with pytest.raises(BenchFileError) as err:
        load_or_new(bad, "tiny", force_new=None)          # `edgedistill run`: no --force-new
    assert "--force-new" not in str(err.value) and "cannot be merged into" in str(err.value)
    assert "--force-new" in str(pytest.raises(BenchFileError, load_or_new, bad, "tiny").value)
    bad.write_text("{not json")
    assert "merged" not in str(pytest.raises(BenchFileError, read_document, bad).value)
