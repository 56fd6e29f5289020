"""Bring your own model: a fine-tuned classifier used as the teacher as it is (teacher.fine_tune: false)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import LABELS, tiny_texts

from distill.pipeline import train_run
from edgedistill.checkpoint import ModelError
from edgedistill.recipe import ConfigError, load_recipe


def byo_recipe(tmp_path, model, csv, labels=None, **methods):
    data = {"source": "file", "path": str(csv), "text_column": "text", "label_column": "label", "max_length": 16}
    if labels:
        data["labels"] = labels
    return load_recipe(overrides={
        "run": {"name": "byo", "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")},
        "data": data, "teacher": {"model": str(model), "fine_tune": False},
        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 32, "log_every": 2},
        "methods": {"odd": {"enabled": False}, "even": {"enabled": False}, "lora": {"enabled": False},
                    "hybrid": {"enabled": False}, **methods}})


def given_probs(folder, texts):
    """Class probabilities of a save_pretrained classifier, straight from transformers."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        return torch.softmax(model(**tok(texts, padding=True, truncation=True, max_length=16,
                                         return_tensors="pt")).logits, -1).numpy()


def test_given_classifier_is_evaluated_saved_unchanged_and_distilled(tmp_path, tiny_checkpoint, tiny_csv):
    from transformers import AutoModelForSequenceClassification

    from edgedistill.runtime import RUNTIMES
    from export.config import load_export_config
    from export.pipeline import export_run

    recipe = byo_recipe(tmp_path, tiny_checkpoint, tiny_csv, odd={"enabled": True, "layers": "odd"})
    metrics = train_run(recipe, progress=False)
    teacher = metrics["models"]["teacher"]
    assert teacher["fine_tuned"] is False and teacher["source"] == str(tiny_checkpoint)
    assert teacher["epochs"] == 0 and teacher["params_trainable"] == 0 and teacher["test"]["n"] > 0
    assert metrics["models"]["odd"]["layers"] == [0]
    saved = tmp_path / "runs" / "byo" / "models" / "teacher"
    original = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint).state_dict()
    copy = AutoModelForSequenceClassification.from_pretrained(saved).state_dict()
    assert original.keys() == copy.keys() and all(torch.equal(original[k], copy[k]) for k in original)
    assert "not trained" in (tmp_path / "results" / "byo" / "results.md").read_text()

    # Export works on it unchanged, and the artifact reproduces the recorded test metrics' inputs.
    export_run(tmp_path / "runs" / "byo", load_export_config({"models": ["teacher"], "variants": ["onnx-fp32"],
                                                               "parity_samples": 8}), log=lambda *a: None)
    art = tmp_path / "runs" / "byo" / "artifacts" / "teacher" / "onnx-fp32"
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["label_names"] == LABELS
    assert manifest["macro_f1_source"] == pytest.approx(teacher["test"]["macro_f1"], abs=1e-9)
    texts = tiny_texts(6, seed=5)[0]
    a = RUNTIMES["onnxruntime"].load(art).predict(texts).probs
    assert abs(a - given_probs(tiny_checkpoint, texts)).max() < 1e-4


def test_label_set_mismatch_lists_both_sets_before_any_compute(tmp_path, tiny_checkpoint):
    texts, labels = tiny_texts(60)
    names = {"negative": "bad", "neutral": "meh", "positive": "good"}
    csv = tmp_path / "other.csv"
    pd.DataFrame({"text": texts, "label": [names[x] for x in labels]}).to_csv(csv, index=False)
    recipe = byo_recipe(tmp_path, tiny_checkpoint, csv)
    with pytest.raises(ModelError) as err:
        train_run(recipe, progress=False)
    msg = str(err.value)
    assert "['negative', 'neutral', 'positive']" in msg and "'bad'" in msg and "'meh'" in msg and "'good'" in msg
    assert not (tmp_path / "runs" / "byo").exists()       # nothing written, nothing loaded


def test_same_labels_in_another_order_permute_the_head(tmp_path, tiny_checkpoint, tiny_csv):
    from edgedistill.runtime import RUNTIMES

    order = ["positive", "negative", "neutral"]
    recipe = byo_recipe(tmp_path, tiny_checkpoint, tiny_csv, labels=order)
    metrics = train_run(recipe, progress=False)
    assert metrics["data"]["label_names"] == order
    texts = tiny_texts(6, seed=7)[0]
    given = given_probs(tiny_checkpoint, texts)
    rt = RUNTIMES["pytorch"].load(tmp_path / "runs" / "byo" / "models" / "teacher")
    assert rt.label_names == order
    assert abs(given[:, [LABELS.index(n) for n in order]] - rt.predict(texts).probs).max() < 1e-5


def test_lora_needs_a_pretrained_backbone(tmp_path, tiny_checkpoint, tiny_csv):
    with pytest.raises(ConfigError, match="methods.lora"):
        byo_recipe(tmp_path, tiny_checkpoint, tiny_csv, lora={"enabled": True})


def test_export_cli_takes_a_model_and_data_directly(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    import edgedistill_cli.commands as edgedistill

    argv = ["export", "--model", str(tiny_checkpoint), "--data", str(tiny_csv), "--text-column", "text",
            "--label-column", "label", "--name", "mine", "--runs-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--variants", "onnx-fp32", "--parity-samples", "8"]
    assert edgedistill.main(argv) == 0
    run = tmp_path / "runs" / "mine"
    assert (run / "artifacts" / "teacher" / "onnx-fp32" / "manifest.json").is_file()
    assert json.loads((tmp_path / "results" / "mine" / "metrics.json").read_text())["models"]["teacher"][
        "fine_tuned"] is False
    assert edgedistill.main(["export", "--model", str(tiny_checkpoint)]) == 2
    assert "--model needs --data" in capsys.readouterr().err


def _unsafe_pickle(folder):
    """save_pretrained as pytorch_model.bin, plus an object torch's weights_only loader refuses."""
    import collections
    import os

    class Unsafe:
        def __reduce__(self):
            return (os.getpid, ())

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    state = collections.OrderedDict(model.state_dict())
    state["extra"] = Unsafe()
    torch.save(state, folder / "pytorch_model.bin")


def test_a_refused_pickle_says_unsafe_and_how_to_convert(tmp_path, tiny_checkpoint, tiny_csv):
    import shutil

    model = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint, model)
    _unsafe_pickle(model)
    # Refused when the recipe is checked, before any data or weights are read.
    with pytest.raises((ModelError, ConfigError)) as err:
        train_run(byo_recipe(tmp_path, model, tiny_csv), progress=False)
    msg = str(err.value)
    assert "pytorch_model.bin was refused as unsafe" in msg and "safetensors" in msg and "from_tf" not in msg
    assert "weights_only=False" in msg and "only if you trust" in msg


def test_a_truncated_safetensors_is_named_before_any_compute(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    import shutil

    import edgedistill_cli.commands as edgedistill

    model = tmp_path / "cut"
    shutil.copytree(tiny_checkpoint, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConfigError, match="model.safetensors is truncated or damaged"):
        train_run(byo_recipe(tmp_path, model, tiny_csv), progress=False)
    argv = ["export", "--model", str(model), "--data", str(tiny_csv), "--text-column", "text", "--label-column",
            "label", "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results")]
    assert edgedistill.main(argv) == 2
    err = capsys.readouterr().err
    assert "model.safetensors is truncated or damaged" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "cut" / "models").exists()


def test_export_model_honours_the_evaluation_cap(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch):
    import distill.train
    import edgedistill_cli.commands as edgedistill

    seen, real = [], distill.train.predict_logits
    monkeypatch.setattr(distill.train, "predict_logits", lambda m, t, split, *a: seen.append(len(split)) or
                        real(m, t, split, *a))
    argv = ["export", "--model", str(tiny_checkpoint), "--data", str(tiny_csv), "--text-column", "text",
            "--label-column", "label", "--name", "capped", "--runs-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--variants", "onnx-fp32", "--parity-samples", "4",
            "--eval-samples", "6"]
    assert edgedistill.main(argv) == 0
    assert seen == [6, 6]                                # validation and test, each capped
    meta = json.loads((tmp_path / "runs" / "capped" / "models" / "teacher" / "edgedistill.json").read_text())
    assert meta["eval_samples"] == {"validation": 6, "test": 6}
