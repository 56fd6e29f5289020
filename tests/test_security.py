"""Security rules: no code from a model folder is run, no pickle in it is unpickled.

The scan reads the project's own source (not tests), so a new loader without the safe
arguments, or a ``trust_remote_code=True`` anywhere, fails here before it ships.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from distill.models import load_classifier, resolve_model_source
from edgedistill.checkpoint import ModelError, check_weights

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgedistill", "edgedistill_cli", "distill", "export", "bench", "dashboard", "tools", "experiments")
SAFE_SPREADS = {"SAFE_LOAD", "SAFE_WEIGHTS"}
# Loaders that read safetensors and JSON only and take no trust_remote_code: model2vec's pipeline (its one
# pickle path, a legacy pipeline.skops, is refused by the caller before loading).
SAFE_LOADERS = {"StaticModelPipeline.from_pretrained"}


def project_calls():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    yield path.relative_to(ROOT), node


def call_name(node: ast.Call) -> str:
    f = node.func
    if isinstance(f, ast.Attribute):
        base = f.value.id if isinstance(f.value, ast.Name) else ""
        return f"{base}.{f.attr}" if base else f"<expr>.{f.attr}"
    return f.id if isinstance(f, ast.Name) else ""


def test_every_from_pretrained_runs_no_remote_code():
    bad = []
    for path, node in project_calls():
        if not call_name(node).endswith("from_pretrained") or call_name(node) in SAFE_LOADERS:
            continue
        spreads = {k.value.id for k in node.keywords if k.arg is None and isinstance(k.value, ast.Name)}
        explicit = [k for k in node.keywords if k.arg == "trust_remote_code"]
        safe = bool(spreads & SAFE_SPREADS) or any(isinstance(k.value, ast.Constant) and k.value.value is False
                                                   for k in explicit)
        if not safe:
            bad.append(f"{path}:{node.lineno}")
    assert not bad, f"from_pretrained without **SAFE_LOAD / **SAFE_WEIGHTS / trust_remote_code=False: {bad}"


def test_no_forbidden_calls():
    bad = []
    for path, node in project_calls():
        name = call_name(node)
        if any(k.arg == "trust_remote_code" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
               for k in node.keywords):
            bad.append(f"{path}:{node.lineno} trust_remote_code not False")
        if name in ("torch.load", "pickle.load", "pickle.loads", "joblib.load", "eval", "exec"):
            bad.append(f"{path}:{node.lineno} {name}")
    assert not bad, bad


def test_the_scan_sees_a_violation(tmp_path, monkeypatch):
    """The scan is not vacuous: a file with a remote-code load is reported."""
    pkg = tmp_path / "edgedistill"
    pkg.mkdir()
    (pkg / "bad.py").write_text("from transformers import AutoModel\nAutoModel.from_pretrained('x', "
                                "trust_remote_code=True)\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PACKAGES", ("edgedistill",))
    with pytest.raises(AssertionError, match="bad.py:2"):
        test_every_from_pretrained_runs_no_remote_code()
    with pytest.raises(AssertionError, match="trust_remote_code not False"):
        test_no_forbidden_calls()


def saved_model(folder: Path) -> Path:
    from conftest import make_tiny_model

    make_tiny_model().save_pretrained(folder)
    return folder


def test_auto_map_is_refused(tmp_path):
    folder = saved_model(tmp_path / "custom")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="custom model code.*trust_remote_code stays off"):
        resolve_model_source(str(folder))


def test_pickle_checkpoint_is_refused_with_how_to_convert(tmp_path):
    folder = saved_model(tmp_path / "pickled")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(ModelError, match="refused as unsafe.*only if you trust.*weights_only=False") as err:
        resolve_model_source(str(folder))
    assert "pytorch_model.bin" in str(err.value)
    with pytest.raises(ModelError):
        load_classifier(str(folder), ["negative", "neutral", "positive"])


def test_safetensors_folder_loads(tmp_path):
    folder = saved_model(tmp_path / "ok")
    check_weights(folder)
    assert resolve_model_source(str(folder)) == str(folder)
