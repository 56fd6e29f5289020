"""An exported folder as its users run it: the input files agree with the export, the clients' layout,
a card generated from the run's files, and real clients, each in an environment of its own that
cannot import edgedistill, running the card's own snippets (edgedistill/clients/).

The Python clients get a virtual environment of their own (pinned by constraints.txt, kept under
EDGEDISTILL_CLIENT_CACHE, default ~/.cache/edgedistill-clients); the Node client runs in
tests/clients/js (``npm ci --onnxruntime-node-install=skip``). Locally a missing one skips with the
command that installs it; CI sets EDGEDISTILL_CLIENTS=required and a missing one fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import LABELS, make_tokenizer
from test_export import ROOT, finish, write_plain_model, write_recipe

pytestmark = pytest.mark.slow
TEXTS = ["good movie", "i hate this awful day", "the food was fine", "really happy people", "sad night",
         " ".join(["good", "bad", "movie", "day"] * 12)]          # longer than max_length (24 tokens)
VARIANTS = ["onnx-fp32", "onnx-int8-dynamic", "openvino-fp32"]
JS_DIR = ROOT / "tests" / "clients" / "js"
PYTHON_CLIENTS = ("onnxruntime", "tokenizers", "numpy", "openvino", "model2vec")
REQUIRED = os.environ.get("EDGEDISTILL_CLIENTS") == "required"


def missing(reason: str):
    if REQUIRED:
        pytest.fail(f"EDGEDISTILL_CLIENTS=required: {reason}")
    pytest.skip(reason)


def write_static_model(run: Path, recipe, tok_dir: Path):
    """A tiny static student checkpoint (token table + head) with its tokenizer as the static method saves it."""
    import torch

    from distill.static import artifact_tokenizer_json
    from edgedistill.static_model import StaticClassifier

    tj = (tok_dir / "tokenizer.json").read_text()
    vocab = json.loads(tj)["model"]["vocab"]
    torch.manual_seed(5)
    model = StaticClassifier(len(vocab), 16, LABELS, hidden=8, unk_token_id=vocab["[UNK]"])
    with torch.no_grad():
        model.embeddings.weight.normal_(0, 1)
    folder = run / "models" / "static"
    model.save_pretrained(folder)
    (folder / "tokenizer.json").write_text(artifact_tokenizer_json(tj))
    finish(folder, "static", recipe)
    return folder


@pytest.fixture(scope="module")
def client_run(tmp_path_factory):
    from export.config import load_export_config
    from export.pipeline import export_run

    root = tmp_path_factory.mktemp("client-run")
    recipe, run = write_recipe(root, export={"calibration_size": 16, "threads": 1, "sensitivity_samples": 0,
                                             "speed_check_blocks": 0})
    tok = make_tokenizer(root / "vocab")
    write_plain_model(run, "odd", recipe, tok)
    tok_dir = run / "models" / "odd"
    write_static_model(run, recipe, tok_dir)
    export_run(run, load_export_config(recipe.export, {"models": ["odd", "static"], "variants": VARIANTS}),
               log=lambda *a: None)
    return run


def reference(run: Path, method: str) -> np.ndarray:
    """The project's FP32 logits: the PyTorch checkpoint through the project's runtime."""
    from edgedistill.runtime import TorchRuntime

    return TorchRuntime.load(run / "models" / method, threads=1).logits(TEXTS)


def artifact(run: Path, method: str, variant: str) -> Path:
    return run / "artifacts" / method / variant


# --- one truth about the input, the layout, the card -----------------------------------------------

def test_the_three_input_files_agree_with_the_export(client_run):
    from transformers import AutoTokenizer

    from edgedistill import deploy

    for method, variants in (("odd", VARIANTS), ("static", ["onnx-fp32", "onnx-int8-dynamic"])):
        for variant in variants:
            folder = artifact(client_run, method, variant)
            manifest = json.loads((folder / "manifest.json").read_text())
            assert manifest["max_length"] == 24
            assert deploy.input_file_problems(folder, LABELS, 24) == [], folder
            tc = json.loads((folder / "tokenizer_config.json").read_text())
            assert tc["model_max_length"] == 24 and "max_length" not in tc
            config = json.loads((folder / "config.json").read_text())
            assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
            assert config["label2id"] == {"negative": 0, "neutral": 1, "positive": 2}
    # A transformers user who only says truncation=True gets the export's 24 tokens.
    tok = AutoTokenizer.from_pretrained(artifact(client_run, "odd", "onnx-fp32"))
    assert len(tok(TEXTS[-1], truncation=True)["input_ids"]) == 24
    batch = tok(TEXTS, truncation=True, padding=True)
    assert {len(ids) for ids in batch["input_ids"]} == {24}


def test_a_contradicting_file_is_reported(client_run, tmp_path):
    from edgedistill import deploy

    folder = tmp_path / "a"
    shutil.copytree(artifact(client_run, "odd", "onnx-fp32"), folder)
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tc, "model_max_length": 512, "max_length": 128}))
    problems = deploy.input_file_problems(folder, LABELS, 24)
    assert any("model_max_length is 512" in p for p in problems) and any("max_length=128" in p for p in problems)


def test_the_model_files_lie_where_the_clients_look(client_run):
    from edgedistill import layout

    odd = {v: json.loads((artifact(client_run, "odd", v) / "manifest.json").read_text()) for v in VARIANTS}
    assert odd["onnx-fp32"]["model_file"] == layout.ONNX_FP32_FILE == "onnx/model.onnx"
    assert odd["onnx-int8-dynamic"]["model_file"] == layout.ONNX_INT8_FILE == "onnx/model_quantized.onnx"
    assert odd["openvino-fp32"]["model_file"] == "openvino_model.xml"
    for v, m in odd.items():
        assert m["schema_version"] == 2
        assert (artifact(client_run, "odd", v) / m["model_file"]).is_file()
        assert not (artifact(client_run, "odd", v) / "model.onnx").exists()
    config = json.loads((artifact(client_run, "odd", "onnx-int8-dynamic") / "config.json").read_text())
    assert config["transformers.js_config"] == {"dtype": "q8"}
    static = artifact(client_run, "static", "onnx-fp32")
    assert {"model.safetensors", "head.safetensors"} <= {p.name for p in static.iterdir()}
    # The ONNX artifact's size is its graph's; the model2vec form beside it is hashed and sized on its own,
    # and readable like every file of a folder that deploys.
    m = json.loads((static / "manifest.json").read_text())
    assert m["size_bytes"] == (static / m["model_file"]).stat().st_size
    assert set(m["files"]) == {m["model_file"], "model.safetensors", "head.safetensors"}
    assert m["model2vec"]["size_bytes"] == sum((static / n).stat().st_size for n in ("model.safetensors",
                                                                                      "head.safetensors"))
    assert all((static / n).stat().st_mode & 0o044 == 0o044 for n in ("model.safetensors", "head.safetensors"))


def test_a_schema_1_folder_is_rebuilt_and_a_newer_one_refused(tmp_path):
    from edgedistill.metadata import ArtifactError, ArtifactMeta
    from export.manifest import inspect_artifact

    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 1, "model_file": "model.onnx",
                                                        "files": {"model.onnx": {}}, "label_names": LABELS,
                                                        "max_length": 8}))
    manifest, why = inspect_artifact(tmp_path)
    assert manifest is None and "schema 1" in why and "onnx/model.onnx" in why
    assert ArtifactMeta.read(tmp_path).model_file == "model.onnx"      # still read, through its model_file
    with pytest.raises(ArtifactError, match="schema_version 3"):
        ArtifactMeta.from_dict({"schema_version": 3, "model_file": "x", "label_names": LABELS, "max_length": 8},
                               tmp_path / "manifest.json")


def card(folder: Path) -> tuple[dict, str, dict[str, str]]:
    """A card's YAML metadata, its text and its code blocks by section title."""
    text = (folder / "README.md").read_text()
    _, head, body = text.split("---\n", 2)
    blocks = dict(re.findall(r"### ([^\n]+)\n\n[^\n]*\n\n```\w+\n(.*?)\n```", body, re.S))
    return yaml.safe_load(head), body, blocks


def test_every_folder_has_a_card_with_its_measured_metrics(client_run):
    from edgedistill import deploy

    for method, variant in (("odd", "onnx-fp32"), ("odd", "onnx-int8-dynamic"), ("odd", "openvino-fp32"),
                            ("static", "onnx-fp32")):
        folder = artifact(client_run, method, variant)
        manifest = json.loads((folder / "manifest.json").read_text())
        meta, body, blocks = card(folder)
        assert meta["pipeline_tag"] == "text-classification" and meta["library_name"]
        assert meta["base_model"] == manifest["base_model"]
        value = meta["model-index"][0]["results"][0]["metrics"][0]["value"]
        assert value == round(manifest["macro_f1"], 4)
        for label, f1 in manifest["per_class_f1"].items():
            assert f"| {label} | {f1:.4f} |" in body
        assert "Not benched yet" in body
        for client in deploy.clients_for(manifest, folder):
            assert blocks[deploy.CLIENTS[client]["title"]] == deploy.snippet(client).rstrip()
    static_meta, static_body, _ = card(artifact(client_run, "static", "onnx-fp32"))
    assert static_meta["library_name"] == "model2vec" and "no `token_type_ids`" in static_body
    int8 = json.loads((artifact(client_run, "odd", "onnx-int8-dynamic") / "manifest.json").read_text())
    if int8["contrib_ops"]:
        assert "ONNX Runtime only" in card(artifact(client_run, "odd", "onnx-int8-dynamic"))[1]


def test_the_card_is_rendered_again_with_the_bench_rows(client_run, tmp_path):
    from edgedistill import deploy

    folder = tmp_path / "odd" / "onnx-fp32"
    shutil.copytree(artifact(client_run, "odd", "onnx-fp32"), folder)
    row = {"artifact": "odd/onnx-fp32", "machine_id": "abc123", "machine_label": "Xeon x2", "runtime": "onnxruntime",
           "threads": 1, "latency_p50_ms": 1.25, "latency_p90_ms": 2.5}
    doc = {"rows": [{**row, "scenario": "latency", "latency_p50_ms": 0.5}, {**row, "scenario": "text-latency"}],
           "machines": {"abc123": {"hardware": {"label": "Xeon x2"}}}}
    manifest = json.loads((folder / "manifest.json").read_text())
    deploy.write_card(folder, manifest, doc["rows"], doc["machines"])
    _, body, _ = card(folder)
    assert "| Xeon x2 | `abc123` | onnxruntime | 1 | 1.25 | 2.50 |" in body and "text-latency" in body
    deploy.write_card(folder, manifest, doc["rows"][:1], doc["machines"])     # forward-only rows: the fallback
    assert "| 0.50 |" in card(folder)[1]


def test_docs_show_the_snippets_the_tests_run():
    from edgedistill import deploy

    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = dict(re.findall(r"## ([^\n]+)\n\n[^\n]*\n\n```\w+\n(.*?)\n```", text, re.S))
    for client, spec in deploy.CLIENTS.items():
        assert blocks[spec["title"]] == deploy.snippet(client).rstrip(), f"docs/deploy.md's {client} snippet"


# --- real clients, each in its own environment -------------------------------------------------------

def client_python() -> Path:
    """A virtual environment with the Python clients only (no edgedistill), built once per pin set."""
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.split("==")[0].strip().lower() in PYTHON_CLIENTS]
    key = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("EDGEDISTILL_CLIENT_CACHE", Path.home() / ".cache" / "edgedistill-clients"))
    venv = cache / f"venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
                               *PYTHON_CLIENTS], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            missing(f"the Python clients could not be installed in {venv}: {proc.stderr[-500:]}")
        (venv / ".installed").write_text("\n".join(pins))
    return python


@pytest.fixture(scope="module")
def python_env():
    return client_python()


def run_snippet(command: list[str], folder: Path, cwd: Path) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*command, str(folder), *TEXTS], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def snippet_file(client: str, folder: Path, where: Path) -> Path:
    """The client's code block of the folder's card, written to a file (the text a user copies)."""
    from edgedistill import deploy

    _, _, blocks = card(folder)
    path = where / deploy.CLIENTS[client]["file"]
    path.write_text(blocks[deploy.CLIENTS[client]["title"]] + "\n")
    return path


def check(out: list[dict], ref: np.ndarray, fp32: bool, key: str = "logits"):
    assert [o["text"] for o in out] == TEXTS
    labels = [LABELS[i] for i in ref.argmax(1)]
    got = [o["label"] for o in out]
    if fp32:
        assert got == labels
        np.testing.assert_allclose(np.array([o[key] for o in out]), ref, atol=1e-4)
    else:
        assert np.mean([a == b for a, b in zip(got, labels)]) >= 0.8


@pytest.mark.parametrize("client,method,variant", [
    ("onnxruntime", "odd", "onnx-fp32"), ("onnxruntime", "odd", "onnx-int8-dynamic"),
    ("onnxruntime", "static", "onnx-fp32"), ("openvino", "odd", "openvino-fp32"), ("openvino", "odd", "onnx-fp32"),
    ("openvino", "static", "onnx-fp32")])
def test_python_clients_reproduce_the_project(client_run, python_env, tmp_path, client, method, variant):
    folder = artifact(client_run, method, variant)
    out = run_snippet([str(python_env), "-I", str(snippet_file(client, folder, tmp_path))], folder, tmp_path)
    check(out, reference(client_run, method), fp32="int8" not in variant)


def test_model2vec_runs_the_static_student(client_run, python_env, tmp_path):
    from edgedistill.metrics import softmax

    folder = artifact(client_run, "static", "onnx-fp32")
    out = run_snippet([str(python_env), "-I", str(snippet_file("model2vec", folder, tmp_path))], folder, tmp_path)
    ref = reference(client_run, "static")
    check(out, softmax(ref.astype(np.float64)), fp32=True, key="probs")


@pytest.fixture(scope="module")
def node():
    binary = shutil.which("node")
    if not binary:
        missing("node is not installed (apt-get install -y nodejs npm)")
    if not (JS_DIR / "node_modules" / "@huggingface" / "transformers").is_dir():
        missing(f"the Node clients are not installed: cd {JS_DIR} && npm ci --onnxruntime-node-install=skip")
    return binary


@pytest.mark.parametrize("variant", ["onnx-fp32", "onnx-int8-dynamic"])
def test_transformers_js_pipeline_reproduces_the_project(client_run, node, variant):
    folder = artifact(client_run, "odd", variant)
    where = JS_DIR / ".work"          # inside the node project, so its node_modules resolve
    where.mkdir(exist_ok=True)
    try:
        out = run_snippet([node, str(snippet_file("transformers.js", folder, where))], folder, JS_DIR)
    finally:
        shutil.rmtree(where, ignore_errors=True)
    check(out, reference(client_run, "odd"), fp32=variant == "onnx-fp32")
