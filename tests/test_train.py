"""End-to-end training of every method on a tiny random teacher, plus a 2-process Accelerate run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.config import load_recipe
from distill.configbase import dump
from distill.pipeline import RunError, checkpoint_complete, train_run

ROOT = Path(__file__).resolve().parents[1]


def tiny_recipe(tmp_path, teacher, csv, **extra):
    overrides = {
        "run": {"name": "tiny", "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")},
        "data": {"source": "file", "path": str(csv), "text_column": "text", "label_column": "label", "max_length": 16},
        "teacher": {"model": str(teacher)},
        "train": {"epochs": 3, "batch_size": 8, "lr": 5e-3, "warmup_ratio": 0.0, "log_every": 2, "eval_batch_size": 32},
        "loss": {"ce": 1.0, "kl": 1.0, "hidden": 1.0, "temperature": 2.0},
        "methods": {"tiny": {"enabled": True, "layers": [1]},
                    "lora": {"lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["query", "value"]}},
                    "hybrid": {"lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["query", "value"]}}},
    }
    for k, v in extra.items():
        overrides.setdefault(k, {}).update(v)
    return load_recipe(overrides=overrides)


def test_every_method_trains_and_writes_results(tmp_path, tiny_checkpoint, tiny_csv):
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv)
    metrics = train_run(recipe, progress=False)
    assert list(metrics["models"]) == ["teacher", "odd", "even", "tiny", "lora", "hybrid"]
    m = metrics["models"]
    assert m["odd"]["layers"] == [0] and m["even"]["layers"] == [1] and m["tiny"]["layers"] == [1]
    assert m["lora"]["params_trainable"] < m["lora"]["params_total"]
    assert m["teacher"]["params_trainable"] == m["teacher"]["params_total"]
    for name, entry in m.items():
        assert set(entry["test"]["per_class"]) == {"negative", "neutral", "positive"}
        assert entry["test"]["n"] == 12 and entry["validation"]["n"] == 12
        assert len(entry["history"]["epochs"]) == 3 and entry["history"]["steps"]
        assert entry["epochs"] == 3 and entry["batch_size"] == 8        # one budget for all
        folder = recipe.run_dir / "models" / name
        assert checkpoint_complete(folder) and (folder / "tokenizer.json").is_file()
    assert (recipe.run_dir / "models" / "lora" / "adapter" / "adapter_config.json").is_file()
    assert not (recipe.run_dir / "models" / "lora" / "adapter_config.json").exists()   # merged model beside it
    # the teacher actually learnt the (easy) task
    assert m["teacher"]["test"]["accuracy"] > 0.5
    out = recipe.results_path
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["schema_version"] == 1 and saved["provenance"]["hardware"]["machine_id"]
    table = (out / "results.md").read_text()
    assert "| hybrid |" in table and "Macro-F1" in table and "negative F1" in table
    assert (out / "plots" / "training_curves.png").stat().st_size > 1000
    assert (out / "plots" / "confusion_matrices.png").stat().st_size > 1000
    assert yaml.safe_load((recipe.run_dir / "recipe.yaml").read_text())["run"]["name"] == "tiny"

    # resuming skips complete methods; a changed budget is refused unless forced
    before = (recipe.run_dir / "models" / "odd" / "edgedistill.json").stat().st_mtime_ns
    train_run(recipe, methods=["odd"], progress=False)
    assert (recipe.run_dir / "models" / "odd" / "edgedistill.json").stat().st_mtime_ns == before
    with pytest.raises(RunError, match="different train"):
        train_run(tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1}), progress=False)


def test_cli_reports_bad_input_without_traceback(tmp_path):
    from edgedistill import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {source: nowhere}\nrun: {runs_dir: %s}\n" % (tmp_path / "runs"))
    r = subprocess.run([sys.executable, "-c", "import sys, edgedistill; sys.exit(edgedistill.main())", "train", str(bad)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Known presets" in r.stderr and "Traceback" not in r.stderr


def test_two_process_cpu_run_through_accelerate(tmp_path, tiny_checkpoint, tiny_csv):
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})
    path = tmp_path / "recipe.yaml"
    path.write_text(dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29533",
           str(ROOT / "edgedistill.py"), "train", str(path), "--methods", "teacher", "odd", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((recipe.results_path / "metrics.json").read_text())
    assert set(metrics["models"]) == {"teacher", "odd"}
    # each of the two processes saw half of each batch: the examples seen add up to the split
    assert r.stdout.count("test macro-F1") == 2   # printed once per method, by the main process only


def test_training_is_reproducible_whatever_ran_before(tmp_path, tiny_checkpoint, tiny_csv):
    """The teacher's new classification head is random: it must come from the run's seed, not from
    whatever state the global random generators were left in."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertForSequenceClassification

    # an encoder without a classification head, like the packaged MiniLM
    encoder = tmp_path / "encoder"
    BertForSequenceClassification.from_pretrained(tiny_checkpoint).bert.save_pretrained(encoder)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(encoder)
    results = []
    for i, noise in enumerate((3, 17)):
        torch.manual_seed(noise)
        torch.rand(noise)                                   # leave the generators somewhere else each time
        recipe = tiny_recipe(tmp_path / f"r{i}", encoder, tiny_csv, train={"epochs": 1})
        metrics = train_run(recipe, methods=["teacher"], progress=False)
        weights = load_file(recipe.run_dir / "models" / "teacher" / "model.safetensors")
        results.append((metrics["models"]["teacher"]["test"], weights))
    (test_a, w_a), (test_b, w_b) = results
    assert test_a == test_b
    assert w_a.keys() == w_b.keys() and all(torch.equal(w_a[k], w_b[k]) for k in w_a)


def test_training_removes_partial_checkpoints_of_a_killed_run(tmp_path, tiny_checkpoint, tiny_csv):
    import socket

    from distill.pipeline import prepare_run_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                            # a process id that no longer runs
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv)
    models = recipe.run_dir / "models"
    killed = models / f".teacher.pid{dead.pid}@{socket.gethostname()}.k9k9k9.partial"
    killed.mkdir(parents=True)
    (killed / "model.safetensors").write_bytes(b"half")
    other_host = models / f".odd.pid{dead.pid}@another-machine.k9k9k9.partial"   # a shared disk: not ours to judge
    other_host.mkdir()
    prepare_run_dir(recipe)
    assert not killed.exists() and other_host.exists()
