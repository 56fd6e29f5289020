"""End-to-end training of every method on a tiny random teacher, plus a 2-process Accelerate run."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.errors import RunError
from distill.pipeline import checkpoint_complete, train_run
from edgedistill.configbase import dump
from edgedistill.recipe import load_recipe

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
                    "hybrid": {"lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["query", "value"]}},
                    # the recipe's budget for the static student too, and a table as narrow as the tiny teacher
                    "static": {"epochs": 3, "early_stopping_patience": None, "static_dims": 8}},
        "baselines": {"model2vec_dims": 8, "model2vec_max_epochs": 2},
    }
    for k, v in extra.items():
        overrides.setdefault(k, {}).update(v)
    return load_recipe(overrides=overrides)


def test_every_method_trains_and_writes_results(tmp_path, tiny_checkpoint, tiny_csv):
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv)
    metrics = train_run(recipe, progress=False)
    assert list(metrics["models"]) == ["teacher", "odd", "even", "tiny", "lora", "hybrid", "static"]
    assert list(metrics["baselines"]) == ["tfidf", "model2vec"]
    assert all(b["kind"] == "baseline" for b in metrics["baselines"].values())
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

    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {source: nowhere}\nrun: {runs_dir: %s}\n" % (tmp_path / "runs"))
    r = subprocess.run([sys.executable, "-m", "edgedistill_cli", "train", str(bad)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Known presets" in r.stderr and "Traceback" not in r.stderr


# Run under torchrun by the test below: trains as `edgedistill train` does, and records on each
# rank the training examples of every batch and every file the process finalizes or starts writing.
RANK_PROBE = """
import json, os, sys, tempfile
out = sys.argv[1]
rank = os.environ.get("RANK", "0")
log = open(os.path.join(out, f"rank{rank}.jsonl"), "a", buffering=1)
record = lambda **kw: log.write(json.dumps(kw) + "\\n")

import distill.train as T
class Counting(T.tqdm):
    def __init__(self, *a, desc="", **k):
        super().__init__(*a, desc=desc, **k)
        self.label = desc

    def __iter__(self):
        for batch in super().__iter__():
            if "epoch" in self.label:
                record(kind="batch", desc=self.label, ids=batch["idx"].tolist())
            yield batch
T.tqdm = Counting
real_replace, real_mkdtemp = os.replace, tempfile.mkdtemp
def replace(src, dst, *a, **k):
    record(kind="write", path=str(dst))
    return real_replace(src, dst, *a, **k)
def mkdtemp(*a, **k):
    path = real_mkdtemp(*a, **k)
    record(kind="write", path=path)
    return path
os.replace, tempfile.mkdtemp = replace, mkdtemp

from edgedistill_cli.commands import main
sys.exit(main(["train", *sys.argv[2:]]))
"""


def no_dropout_checkpoint(tmp_path):
    """The tiny teacher without dropout: two processes and one then see the same computation."""

    from conftest import make_tiny_model, make_tokenizer

    folder = tmp_path / "teacher-ckpt"
    tok = make_tokenizer(tmp_path / "vocab")
    model = make_tiny_model("bert", vocab_size=len(tok))
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def torchrun(tmp_path, args, env_extra):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "rank_probe.py"
    script.write_text(RANK_PROBE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **env_extra}
    env.pop("ACCELERATE_USE_CPU", None) if "ACCELERATE_USE_CPU" not in env_extra else None
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), str(script), str(tmp_path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)


def rank_log(tmp_path, rank):
    path = tmp_path / f"rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
def test_two_cpu_processes_shard_the_batches_write_once_and_match_one_process(tmp_path, tiny_csv):
    """torchrun --nproc_per_node 2 with ACCELERATE_USE_CPU=true: gloo, two ranks.

    Two ranks at batch 8 take one optimizer step on the mean gradient of two batches; one process
    with grad_accum 2 steps on the same mean of the same two batches (accelerate hands rank r the
    batches r, r+2, ...). Without dropout the two runs compute the same thing: (g0 + g1) / 2 after
    the all-reduce equals g0 / 2 + g1 / 2 after accumulation bit for bit (halving is exact), and the
    weights came out identical here (largest difference 0.0). The 1e-4 allowed leaves room for
    math kernels that sum in another order elsewhere, and stays far below what a real fault
    moves: a learning-rate schedule that ended after half the steps gave 1.5e-2."""
    from safetensors.torch import load_file

    teacher = no_dropout_checkpoint(tmp_path)
    budget = {"epochs": 2, "batch_size": 8, "lr": 5e-3, "warmup_ratio": 0.0, "log_every": 2, "eval_batch_size": 32}
    two = tiny_recipe(tmp_path / "two", teacher, tiny_csv, train=budget)
    path = tmp_path / "two.yaml"
    path.write_text(dump(two))
    r = torchrun(tmp_path, [str(path), "--methods", "teacher", "odd", "--no-progress"], {"ACCELERATE_USE_CPU": "true"})
    assert r.returncode == 0, r.stderr[-3000:]

    logs = {rank: rank_log(tmp_path, rank) for rank in (0, 1)}
    train_ids = 96                                            # 120 rows, 80/10/10 split
    for method in ("teacher", "odd"):
        for epoch in (1, 2):
            desc = f"{method} epoch {epoch}/2"
            seen = {rank: [e["ids"] for e in log if e["kind"] == "batch" and e["desc"] == desc]
                    for rank, log in logs.items()}
            assert len(seen[0]) == len(seen[1]) == 6          # 12 batches of 8: half each
            ids = {rank: {i for batch in b for i in batch} for rank, b in seen.items()}
            assert not ids[0] & ids[1] and len(ids[0] | ids[1]) == train_ids
    written = {rank: [e["path"] for e in log if e["kind"] == "write"] for rank, log in logs.items()}
    run_files = [p for p in written[1] if str(tmp_path / "two") in p]
    assert run_files == [], run_files                           # rank 1 writes nothing
    assert any(p.endswith("metrics.json") for p in written[0])
    assert any(p.endswith(os.path.join("models", "odd")) for p in written[0])

    import torch

    one = tiny_recipe(tmp_path / "one", teacher, tiny_csv, train={**budget, "grad_accum": 2})
    # One thread, as each rank had (OMP_NUM_THREADS=1): another thread count sums in another order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_run(one, methods=["teacher", "odd"], progress=False)
    finally:
        torch.set_num_threads(threads)
    for method in ("teacher", "odd"):
        a = load_file(two.run_dir / "models" / method / "model.safetensors")
        b = load_file(one.run_dir / "models" / method / "model.safetensors")
        assert a.keys() == b.keys()
        worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
        assert worst < 1e-4, (method, worst)
    m2 = json.loads((two.results_path / "metrics.json").read_text())["models"]
    m1 = json.loads((one.results_path / "metrics.json").read_text())["models"]
    for method in ("teacher", "odd"):
        assert m2[method]["test"]["macro_f1"] == pytest.approx(m1[method]["test"]["macro_f1"])
        assert [e["val_loss"] for e in m2[method]["history"]["epochs"]] == pytest.approx(
            [e["val_loss"] for e in m1[method]["history"]["epochs"]], abs=1e-5)


@pytest.mark.slow
def test_several_processes_without_a_distributed_state_are_refused(tmp_path, tiny_csv):
    """A plain torchrun on CPU starts two processes that Accelerate does not connect: each would
    train a full copy and write the same files. Both must stop before any work, saying how to launch."""
    recipe = tiny_recipe(tmp_path, tmp_path / "unused-teacher", tiny_csv)
    path = tmp_path / "r.yaml"
    path.write_text(dump(recipe))
    r = torchrun(tmp_path, [str(path), "--no-progress"], {})
    assert r.returncode != 0
    assert r.stderr.count("2 processes were started") == 2 and "ACCELERATE_USE_CPU=true torchrun" in r.stderr
    assert str(ROOT / "distill") not in r.stderr                 # a message from each rank, not a traceback
    assert not (recipe.run_dir / "models").exists() and not (recipe.run_dir / "recipe.yaml").exists()


@pytest.mark.slow
def test_accelerate_launch_cpu_with_several_processes_warns_that_it_started_one(tmp_path):
    """`accelerate launch --cpu --num_processes 2` (no MPI hostfile) runs the script once; say so."""
    bad = tmp_path / "bad.yaml"                      # stops right after the launch check, at the data
    bad.write_text("data: {source: nowhere}\nrun: {runs_dir: %s}\n" % (tmp_path / "runs"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "edgedistill_cli", "train", str(bad)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    # One process printed it once (accelerate >= 1.16 echoes the child's stderr inside its own
    # error message, prefixed; only lines that start with the warning are the script's own).
    printed = [line for line in r.stderr.splitlines() if line.startswith("WARNING: `accelerate launch` was asked")]
    assert len(printed) == 1, r.stderr[-2000:]
    assert "ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2" in r.stderr and "Known presets" in r.stderr


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


def test_retrain_changed_retrains_only_the_changed_method(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    from distill.pipeline import changed_methods, prepare_run_dir

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})
    for m in ("even", "tiny", "lora", "hybrid"):
        recipe.methods[m].enabled = False
    train_run(recipe, progress=False)
    models = recipe.run_dir / "models"
    stamps = {m: (models / m / "edgedistill.json").stat().st_mtime_ns for m in ("teacher", "odd")}
    exported = recipe.run_dir / "artifacts" / "odd" / "onnx-fp32"
    exported.mkdir(parents=True)                # stands for an export built from the old odd weights

    changed = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})
    for m in ("even", "tiny", "lora", "hybrid"):
        changed.methods[m].enabled = False
    changed.methods["odd"].lr = 3e-4
    assert changed_methods(changed) == {"odd": ["method"]}
    with pytest.raises(RunError, match="odd model trained with different method.*--retrain-changed"):
        train_run(changed, progress=False)
    assert exported.is_dir()                    # a refused run changes nothing

    # the old checkpoint and its export go before the new recipe is recorded: a crash leaves no stale one
    assert prepare_run_dir(changed, retrain_changed=True) == ["odd"]
    assert not (models / "odd").exists() and not exported.parent.exists()
    assert (models / "teacher" / "edgedistill.json").stat().st_mtime_ns == stamps["teacher"]
    assert changed_methods(changed) == {}

    metrics = train_run(changed, progress=False, retrain_changed=True)
    assert metrics["models"]["odd"]["lr"] == 3e-4
    assert (models / "teacher" / "edgedistill.json").stat().st_mtime_ns == stamps["teacher"]
    assert "[teacher] complete checkpoint found" in capsys.readouterr().out
