"""The shared runtime interface on tiny checkpoints: encoding, PyTorch runtime, predictor errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LABELS, make_tiny_model, make_tokenizer


def finish_checkpoint(folder, method="odd", max_length=16):
    """Mark a save_pretrained folder complete the way training does (edgedistill.json last)."""
    (folder / "edgedistill.json").write_text(json.dumps({
        "schema_version": 1, "method": method, "label_names": LABELS, "layers": None, "lora": None,
        "recipe": {"data": {"max_length": max_length}}}))
    return folder


def test_encoder_truncates_pads_and_knows_its_inputs(tiny_checkpoint):
    from edgedistill.runtime import TextEncoder

    long_text = " ".join(["good movie"] * 40)
    enc = TextEncoder(tiny_checkpoint, max_length=16, input_names=("input_ids", "attention_mask"))
    batch = enc(["good", long_text])
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"].dtype == np.int64
    assert batch["attention_mask"][0].sum() == 3                    # [CLS] good [SEP], then padding
    fixed = enc(["good", long_text], pad_to=8)
    assert fixed["input_ids"].shape == (2, 8) and fixed["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert enc(["good"], pad_to=64)["input_ids"].shape == (1, 64)  # longer than max_length on request
    with_types = TextEncoder(tiny_checkpoint, 16, ("input_ids", "attention_mask", "token_type_ids"))(["good"])
    assert with_types["token_type_ids"].tolist() == [[0, 0, 0]]
    # one text takes the single-text path; it truncates and encodes as the batch path does
    for text in ("good", long_text):
        one, pair = enc([text]), enc([text, text])
        assert all((one[k] == pair[k][:1]).all() for k in one) and one["input_ids"].shape[1] <= 16


def test_torch_runtime_matches_transformers(tiny_checkpoint):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgedistill.predictor import load_predictor

    finish_checkpoint(tiny_checkpoint)
    rt = load_predictor(tiny_checkpoint, threads=1)
    texts = ["good movie", "i hate this awful day", "the food was fine"]
    model = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint).eval()
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    with torch.no_grad():
        expected = model(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(rt.forward(rt.encode(texts)), expected, atol=1e-5)
    pred = rt.predict(texts)
    assert pred.probs.shape == (3, 3) and np.allclose(pred.probs.sum(1), 1, atol=1e-5)
    assert pred.labels == [LABELS[i] for i in pred.label_ids]
    info = rt.describe()
    assert info["runtime"] == "pytorch" and info["precision"] == "fp32" and info["size_bytes"] > 0
    assert rt.encode(texts, pad_to=12)["input_ids"].shape == (3, 12)


def test_torch_runtime_leaves_out_inputs_the_model_does_not_take(tmp_path):
    from edgedistill.runtime import TorchRuntime

    tok = make_tokenizer(tmp_path / "vocab")
    folder = tmp_path / "distil"
    make_tiny_model("distilbert", vocab_size=len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    rt = TorchRuntime.load(finish_checkpoint(folder), threads=1, precision="bf16")
    assert "token_type_ids" not in rt.encode(["good"])
    assert rt.forward(rt.encode(["good", "bad day"])).dtype == np.float32
    assert rt.describe()["precision"] == "bf16"


def test_predictor_errors_name_the_problem(tmp_path, tiny_checkpoint):
    from edgedistill.predictor import load_predictor
    from edgedistill.runtime import ArtifactError, OrtRuntime

    with pytest.raises(ArtifactError, match="does not exist"):
        load_predictor(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="unfinished export"):
        load_predictor(tmp_path / "empty")
    with pytest.raises(ArtifactError, match="edgedistill.json"):   # a checkpoint whose training did not finish
        load_predictor(tiny_checkpoint)
    (tmp_path / "empty" / "model.onnx").write_bytes(b"")
    with pytest.raises(ArtifactError, match="no manifest.json"):
        OrtRuntime.load(tmp_path / "empty")
    with pytest.raises(ArtifactError, match="unknown runtime"):
        load_predictor(tiny_checkpoint, runtime="tflite")


def test_checkpoint_and_artifact_metadata_are_typed_and_never_fall_back_to_a_guess(tmp_path):
    import json

    import pytest

    from edgedistill.metadata import ArtifactError, ArtifactMeta, CheckpointMeta

    ckpt = tmp_path / "odd"
    ckpt.mkdir()
    doc = CheckpointMeta.document("odd", ["a", "b"], 64, {"method": "odd", "layers": [0, 2]}, {"data": {}}, {}, {})
    (ckpt / "edgedistill.json").write_text(json.dumps(doc))
    meta = CheckpointMeta.read(ckpt)
    assert (meta.method, meta.label_names, meta.max_length, meta.layers) == ("odd", ["a", "b"], 64, [0, 2])
    # A checkpoint written before max_length sat at the top level: read from its stored recipe.
    doc.pop("max_length")
    doc["recipe"] = {"data": {"max_length": 48}}
    (ckpt / "edgedistill.json").write_text(json.dumps(doc))
    assert CheckpointMeta.read(ckpt).max_length == 48
    # Neither: refused with the file named, not served at some default length.
    doc["recipe"] = {}
    (ckpt / "edgedistill.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"edgedistill\.json: max_length"):
        CheckpointMeta.read(ckpt)

    art = tmp_path / "art"
    art.mkdir()
    assert ArtifactMeta.read(art) is None
    (art / "manifest.json").write_text(json.dumps({"model_file": "model.onnx", "label_names": ["a"], "max_length": 0}))
    with pytest.raises(ArtifactError, match=r"manifest\.json: max_length"):
        ArtifactMeta.read(art)
    (art / "manifest.json").write_text(json.dumps({"model_file": "model.onnx", "label_names": ["a"], "max_length": 32,
                                                   "precision": "int8"}))
    assert ArtifactMeta.read(art).precision == "int8" and ArtifactMeta.read(art).max_length == 32
