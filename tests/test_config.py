import pytest

from edgedistill.configbase import ConfigError, dump
from edgedistill.recipe import load_recipe


def test_defaults_and_overrides():
    r = load_recipe(overrides=["train.epochs=1", "data.max_train=50", "methods.lora.lr=0.001"])
    assert r.train.epochs == 1 and r.data.max_train == 50
    assert r.methods["lora"].lr == 0.001 and r.methods["lora"].lora.r == 8   # merged over defaults
    assert r.method_names() == ["teacher", "odd", "even", "lora", "hybrid", "static"]     # tiny is opt-in


def test_tiny_student_is_opt_in_and_keeps_every_third_layer():
    r = load_recipe(overrides=["methods.tiny.enabled=true"])
    assert r.method_names() == ["teacher", "odd", "even", "tiny", "lora", "hybrid", "static"]
    assert r.methods["tiny"].layers == [2, 5]        # 1-based 3 and 6 of a 6-layer teacher
    with pytest.raises(ConfigError, match="methods.tiny.layers"):
        load_recipe(overrides={"methods": {"tiny": {"enabled": True, "layers": "middle"}}})


def test_layer_choice_students_are_opt_in():
    r = load_recipe(overrides=["methods.auto.enabled=true", "methods.bottom.enabled=true"])
    assert r.method_names() == ["teacher", "odd", "even", "auto", "bottom", "lora", "hybrid", "static"]
    assert (r.methods["auto"].layers, r.methods["bottom"].layers) == ("auto", "bottom")
    with pytest.raises(ConfigError, match="'top' is not odd, even, bottom, auto"):
        load_recipe(overrides={"methods": {"bottom": {"enabled": True, "layers": "top"}}})


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as e:
        load_recipe(overrides={"train": {"epochs": 0, "lr": -1, "bogus": 1}, "methods": {"odd": {"layers": "middle"}},
                               "data": {"max_length": 2}})
    msg = str(e.value)
    for part in ("epochs", "lr", "bogus", "middle", "max_length"):
        assert part in msg


def test_unknown_method_and_bad_type():
    with pytest.raises(ConfigError, match="unknown method"):
        load_recipe(overrides={"methods": {"quantum": {"layers": "odd"}}})
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_recipe(overrides=["train.batch_size=big"])


def test_recipe_round_trips_through_yaml(tmp_path):
    r = load_recipe(overrides=["run.name=x", "loss.hidden=1.0"])
    path = tmp_path / "r.yaml"
    path.write_text(dump(r))
    again = load_recipe(path)
    for section in ("run", "data", "teacher", "train", "loss", "methods"):
        assert getattr(again, section) == getattr(r, section)
    assert again.methods["hybrid"].lora.target_modules == r.methods["hybrid"].lora.target_modules


def test_missing_recipe_file_says_where_recipes_live(tmp_path):
    with pytest.raises(ConfigError, match="configs/"):
        load_recipe(tmp_path / "nope.yaml")


def test_float_fields_accept_what_yaml_reads_as_strings(tmp_path):
    # PyYAML reads 5e-5 (no dot before the exponent) as the string '5e-5'.
    path = tmp_path / "r.yaml"
    path.write_text("train: {lr: 5e-5, weight_decay: 1e-2}\nmethods: {lora: {lr: 5e-4}}\n")
    r = load_recipe(path)
    assert r.train.lr == 5e-5 and isinstance(r.train.lr, float) and r.train.weight_decay == 0.01
    assert r.methods["lora"].lr == 5e-4
    assert load_recipe(overrides=["train.lr=3e-5"]).train.lr == 3e-5
    from bench.config import load_bench_config
    assert load_bench_config({"probe_s": "1e-1"}).probe_s == 0.1
    with pytest.raises(ConfigError, match=r"train.lr: 'fast' is not float"):
        load_recipe(overrides=["train.lr=fast"])
    with pytest.raises(ConfigError, match="train.lr"):
        load_recipe(overrides=["train.lr=nan"])


def test_git_commit_is_dirty_for_code_edits_not_for_results(tmp_path):
    import subprocess

    from edgedistill.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.md").write_text("| a |\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path / "pkg")
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "results" / "table.md").write_text("| b |\n")          # a job rewrote its own output
    assert git_commit(tmp_path / "pkg") == clean
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path / "pkg") == clean + "-dirty"


def test_provenance_records_the_commit_the_process_started_from(monkeypatch):
    from edgedistill import provenance as prov

    monkeypatch.setattr(prov, "git_commit", lambda cwd=None: "f" * 40)  # HEAD moved while a long job ran
    assert prov.provenance()["git_commit"] == prov.STARTED_AT_COMMIT != "f" * 40


def test_provenance_records_the_thread_settings(monkeypatch):
    import torch

    from edgedistill.provenance import provenance

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert provenance()["threads"] == {"OMP_NUM_THREADS": "1", "torch": torch.get_num_threads()}


def test_a_methods_schedule_overrides_every_train_field_it_shares_and_inherits_the_rest(tmp_path):
    from edgedistill.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text("train: {epochs: 3, lr: 1.0e-4, warmup_ratio: 0.2, early_stopping_patience: 2}\n"
                    "methods: {lora: {lr: 1.0e-3, epochs: 10}}\n")
    recipe = load_recipe(path)
    lora, odd = recipe.method_train("lora"), recipe.method_train("odd")
    assert (lora.lr, lora.epochs, lora.warmup_ratio, lora.early_stopping_patience) == (1e-3, 10, 0.2, 2)
    assert (odd.lr, odd.epochs) == (1e-4, 3)
    assert recipe.train.lr == 1e-4                      # the shared section itself is left as it was
