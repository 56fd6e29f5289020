"""The export stage end to end on a tiny run: every variant, manifests, parity, LoRA, trimming, errors.

One session-scoped export builds the run's artifacts once; the tests below inspect them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS, make_tiny_model, make_tokenizer, tiny_texts

ROOT = Path(__file__).resolve().parents[1]
ODD_VARIANTS = ["onnx-fp32", "onnx-fp32-opt", "onnx-int8-dynamic", "onnx-int8-static", "openvino-fp32",
                "openvino-fp16", "openvino-int8", "onnx-fp32-trim", "onnx-int8-dynamic-trim"]
LORA_VARIANTS = ["onnx-fp32", "onnx-int8-dynamic"]
MANIFEST_KEYS = {"schema_version", "model", "variant", "format", "precision", "quantization", "calibration_size",
                 "opset", "model_file", "size_bytes", "sha256", "label_names", "max_length", "source_checkpoint",
                 "tool_versions", "parity", "macro_f1", "macro_f1_source", "macro_f1_delta", "flagged", "fusions",
                 "provenance"}
OPENVINO_RANKED = ("layer.1.ffn_out", "classifier")
TEXTS = ["good movie", "i hate this awful day", "the food was fine", "really happy people", "sad night"]


# --- building a tiny run -------------------------------------------------------------------

def write_recipe(root: Path, name: str = "tiny", export: dict | None = None):
    import pandas as pd

    from edgedistill.configbase import dump
    from edgedistill.recipe import load_recipe

    texts, labels = tiny_texts(240)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(root / "data.csv", index=False)
    recipe = load_recipe(overrides={
        "run": {"name": name, "runs_dir": str(root / "runs"), "results_dir": str(root / "results")},
        "data": {"source": "file", "path": str(root / "data.csv"), "text_column": "text", "label_column": "label",
                 "labels": LABELS, "max_length": 24},
        "export": export or {}})
    run = root / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    (run / "recipe.yaml").write_text(dump(recipe))
    return recipe, run


def finish(folder: Path, method: str, recipe, lora=None):
    from edgedistill.configbase import to_dict

    (folder / "edgedistill.json").write_text(json.dumps({
        "schema_version": 1, "method": method, "label_names": LABELS, "teacher_source": "tiny", "layers": None,
        "lora": lora, "recipe": to_dict(recipe)}))


def write_plain_model(run: Path, method: str, recipe, tok, seed=0):
    folder = run / "models" / method
    make_tiny_model("bert", vocab_size=len(tok), seed=seed).save_pretrained(folder)
    tok.save_pretrained(folder)
    finish(folder, method, recipe)
    return folder


def write_lora_adapter(root: Path, run: Path, recipe, tok):
    """An adapter-only LoRA folder (no config.json): the export must merge it."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from distill.models import wrap_lora
    from edgedistill.recipe import LoraSettings

    base_dir = root / "lora-base"
    make_tiny_model("bert", vocab_size=len(tok), seed=1).save_pretrained(base_dir)
    settings = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"])
    model = wrap_lora(AutoModelForSequenceClassification.from_pretrained(base_dir), settings)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)            # a trained adapter: merging must change the logits
    folder = run / "models" / "lora"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    finish(folder, "lora", recipe, lora=vars(settings))
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-run")
    recipe, run = write_recipe(root, export={"calibration_size": 32, "threads": 1, "sensitivity_scope": "all"})
    tok = make_tokenizer(root / "vocab")
    write_plain_model(run, "odd", recipe, tok)
    write_lora_adapter(root, run, recipe, tok)
    return root, run, recipe


@pytest.fixture(scope="session")
def exported(tiny_run):
    from export import blocks
    from export.config import load_export_config
    from export.pipeline import export_run

    root, run, recipe = tiny_run
    real = blocks.openvino_blocks
    # NNCF calibrates again for every block it tries (~10 s each here): two blocks cover the OpenVINO path.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "openvino_blocks", lambda model: {b: n for b, n in real(model).items()
                                                                if b in OPENVINO_RANKED})
        rows = export_run(run, load_export_config(recipe.export, {"models": ["odd"], "variants": ODD_VARIANTS}))
    rows += export_run(run, load_export_config(recipe.export, {"models": ["lora"], "variants": LORA_VARIANTS}))
    return root, run, recipe, rows


def manifest(run: Path, method: str, variant: str) -> dict:
    return json.loads((run / "artifacts" / method / variant / "manifest.json").read_text())


# --- every variant, checked ---------------------------------------------------------------

def test_every_variant_is_a_complete_artifact(exported):
    from edgedistill.io import sha256

    _, run, _, rows = exported
    assert [r["artifact"] for r in rows] == [f"odd/{v}" for v in ODD_VARIANTS] + [f"lora/{v}" for v in LORA_VARIANTS]
    for row in rows:
        folder = Path(row["path"])
        m = manifest(run, row["model"], row["variant"])
        assert MANIFEST_KEYS <= set(m), MANIFEST_KEYS - set(m)
        assert m["label_names"] == LABELS and m["max_length"] == 24 and m["schema_version"] == 2
        assert (folder / "tokenizer.json").is_file() and (folder / "config.json").is_file()
        assert (folder / "README.md").is_file()
        assert m["model_file"] in ("onnx/model.onnx", "onnx/model_quantized.onnx", "openvino_model.xml")
        assert m["sha256"] == sha256(folder / m["model_file"])
        assert m["size_bytes"] == sum((folder / n).stat().st_size for n in m["files"])
        assert m["parity"]["n"] > 0 and m["parity"]["agreement_pct"] >= 90
        assert m["provenance"]["libraries"] and m["tool_versions"]["onnxruntime"]
        if m["quantization"] in ("static", "nncf"):
            assert m["calibration_size"] == 32 and m["calibration_split"] == "train"
        if m["precision"] == "fp32":
            assert m["parity"]["max_abs_diff"] <= 1e-3
        assert not list(folder.parent.glob(".*.partial"))      # no leftovers of the atomic writes
    assert manifest(run, "odd", "openvino-int8")["check_runtime"]["inference_precision"] == "f32"


def test_fusions_are_counted(exported):
    _, run, _, _ = exported
    fusions = manifest(run, "odd", "onnx-fp32-opt")["fusions"]
    assert fusions["attention"] == 2 and fusions["gelu"] == 2 and fusions["layer_norm"] >= 4
    assert manifest(run, "odd", "onnx-fp32")["fusions"] is None
    static = manifest(run, "odd", "onnx-int8-static")
    assert len(static["fp32_nodes"]) == 2 and all("output/dense" in n for n in static["fp32_nodes"])   # FFN outputs
    dynamic = manifest(run, "odd", "onnx-int8-dynamic")
    assert dynamic["quantized_from"] in ("optimized", "plain") and set(dynamic["dynamic_candidates"]) == {"optimized",
                                                                                                          "plain"}


def test_int8_artifacts_run_integer_kernels_and_are_timed_against_fp32(exported):
    _, run, recipe, _ = exported
    static = manifest(run, "odd", "onnx-int8-static")
    assert static["activation_type"] == "uint8" and static["weight_type"] == "int8"
    kernels = static["runtime_fusions"]
    # Every quantized MatMul runs as an integer kernel: FP32 MatMuls left are the FFN outputs kept
    # on purpose plus the pooler and the classifier (signed activations left 8 more as
    # DequantizeLinear -> FP32 MatMul, dequantizing the weights on every call).
    assert kernels["int8_matmul"] >= 10 and kernels["fp32_matmul"] <= len(static["fp32_nodes"]) + 2
    assert manifest(run, "odd", "onnx-fp32")["runtime_fusions"]["int8_matmul"] == 0
    assert manifest(run, "odd", "openvino-fp32").get("runtime_fusions") is None
    for variant in ("onnx-int8-static", "onnx-int8-dynamic", "openvino-int8", "onnx-int8-dynamic-trim"):
        check = manifest(run, "odd", variant)["speed_vs_fp32"]
        assert check["blocks"] == 20 and check["calls"] == 10 and check["tokens"] >= 3
        assert check["low"] <= check["speedup"] <= check["high"] and check["slower"] == (check["speedup"] < 1)
        assert check["contention"]["wall_s"] > 0
    assert manifest(run, "odd", "onnx-fp32").get("speed_vs_fp32") is None
    dynamic = manifest(run, "odd", "onnx-int8-dynamic")
    assert dynamic["dynamic_candidates"]["optimized"]["vs_plain"]["blocks"] == 20
    table = (recipe.results_path / "export.md").read_text()
    assert "speed x FP32" in table and "x [" in table


def test_every_int8_artifact_is_ranked_block_by_block_on_validation(exported):
    """Every INT8 kind (dynamic from either graph, static QDQ, NNCF, trimmed, a merged LoRA) maps
    every block of the 2-layer model and ranks it (export/test_int8_repair.py checks the ranking)."""
    from export.blocks import block_names

    _, run, _, _ = exported
    for model, variant in [("odd", v) for v in ODD_VARIANTS if "int8" in v] + [("lora", "onnx-int8-dynamic")]:
        m = manifest(run, model, variant)
        sens, repair = m["sensitivity"], m["repair"]
        ranked = [b["block"] for b in sens["blocks"]]
        everything = OPENVINO_RANKED if variant.startswith("openvino") else block_names(2)
        assert sorted(ranked + sens["already_fp32"]) == sorted(everything), (variant, ranked)
        assert sens["split"] == "validation" and sens["n"] == sens["validation_size"] > 0
        assert sens["quantizations"] >= len(ranked) and repair["max_f1_drop"] == 0.5
        assert repair["outcome"] in ("within_budget", "repaired", "fp32")
        if variant == "onnx-int8-static":        # the FFN outputs it keeps in FP32 anyway are not re-tried
            assert sens["already_fp32"] == ["layer.0.ffn_out", "layer.1.ffn_out"]


def test_a_slower_int8_artifact_is_marked():
    from export.speed import cell

    assert cell({"speedup": 0.4, "low": 0.35, "high": 0.45, "slower": True}).endswith("SLOWER")
    busy = {"speedup": 2.0, "low": 1.9, "high": 2.1, "slower": False, "disturbed": True}
    assert cell(busy) == "2.00x [1.90, 2.10] (busy)"
    assert cell(None) == "-"


def test_pick_dynamic_prefers_the_fused_graph_unless_plain_is_measurably_faster():
    from export.builders import pick_dynamic

    same = {"agreement_pct": 99.0, "seconds": 1.0}
    assert pick_dynamic({"optimized": {**same, "vs_plain": {"low": 0.9, "high": 1.1}}, "plain": same}) == "optimized"
    assert pick_dynamic({"optimized": {**same, "vs_plain": {"low": 0.7, "high": 0.9}}, "plain": same}) == "plain"
    assert pick_dynamic({"optimized": {**same, "agreement_pct": 100.0}, "plain": same}) == "optimized"


def test_missing_fusions_warn(tmp_path, capsys):
    from types import SimpleNamespace

    from export.builders import build_onnx_opt

    src = tmp_path / "opt.onnx"
    src.write_bytes(b"graph")
    job = SimpleNamespace(optimized=lambda trim: (src, {"attention": 0, "layer_norm": 2, "gelu": 0,
                                                        "ops": {"LayerNormalization": 2}}))
    out = tmp_path / "out"
    out.mkdir()
    extra = build_onnx_opt(job, False, out)
    assert "attention/gelu" in extra["warnings"][0] and (out / "onnx" / "model.onnx").is_file()


def test_artifacts_match_pytorch_through_the_predictor(exported):
    from edgedistill.predictor import load_predictor

    _, run, _, rows = exported
    refs = {m: load_predictor(run / "models" / m, threads=1) for m in ("odd", "lora")}
    expected = {m: rt.forward(rt.encode(TEXTS)) for m, rt in refs.items()}
    for row in rows:
        if row["trimmed_vocab"]:
            continue                                    # compared with the trimmed checkpoint in its manifest
        rt = load_predictor(row["path"], threads=1)
        assert rt.describe()["runtime"] == {"onnx": "onnxruntime", "openvino": "openvino"}[row["format"]]
        logits = rt.forward(rt.encode(TEXTS))
        ref = expected[row["model"]]
        if row["precision"] == "fp32":
            np.testing.assert_allclose(logits, ref, atol=1e-4, err_msg=row["artifact"])
        else:
            assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.8, row["artifact"]
            assert np.abs(logits - ref).max() < 0.1, row["artifact"]
        assert rt.predict(TEXTS).labels == [LABELS[i] for i in logits.argmax(1)]


def test_runtimes_record_threads_and_precision(exported):
    from edgedistill.runtime import OpenVinoRuntime, OrtRuntime

    _, run, _, _ = exported
    folder = run / "artifacts" / "odd" / "openvino-fp32"
    info = OpenVinoRuntime.load(folder, threads=1).describe()
    assert info["inference_precision"] == "f32" and info["num_threads"] == 1     # never the BF16 default
    assert info["ov_config"]["INFERENCE_NUM_THREADS"] == 1 and info["size_bytes"] > 0
    assert OpenVinoRuntime.load(folder, threads=1, precision="bf16").describe()["precision"] == "bf16"
    ort_info = OrtRuntime.load(run / "artifacts" / "odd" / "onnx-int8-static", threads=1).describe()
    assert ort_info["providers"] == ["CPUExecutionProvider"] and ort_info["intra_op_threads"] == 1
    assert ort_info["precision"] == "int8" and ort_info["quantization"] == "static"


def test_lora_adapter_is_merged_before_export(exported):
    import torch
    from transformers import AutoModelForSequenceClassification

    from edgedistill.checkpoint import load_checkpoint
    from edgedistill.predictor import load_predictor

    root, run, _, _ = exported
    merged, tok = load_checkpoint(run / "models" / "lora")
    base = AutoModelForSequenceClassification.from_pretrained(root / "lora-base").eval()
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        want, base_logits = merged(**batch).logits.numpy(), base(**batch).logits.numpy()
    assert np.abs(want - base_logits).max() > 1e-3                  # the adapter matters (tiny logits)
    rt = load_predictor(run / "artifacts" / "lora" / "onnx-fp32", threads=1)
    np.testing.assert_allclose(rt.forward(rt.encode(TEXTS)), want, atol=1e-4)


def test_trimmed_artifacts_keep_seen_words_and_unk_the_rest(exported):
    from tokenizers import Tokenizer

    _, run, _, _ = exported
    m = manifest(run, "odd", "onnx-int8-dynamic-trim")
    trim = m["trim"]
    assert trim["vocab_size_after"] < trim["vocab_size_before"] == 35
    assert m["parity"]["reference"].startswith("pytorch-fp32 (trimmed")
    folder = run / "artifacts" / "odd" / "onnx-int8-dynamic-trim"
    full = Tokenizer.from_file(str(run / "models" / "odd" / "tokenizer.json"))
    small = Tokenizer.from_file(str(folder / "tokenizer.json"))
    seen = "good movie hate sad people"                              # words of the training texts
    assert small.encode(seen).tokens == full.encode(seen).tokens
    assert small.encode("really the very good").tokens == ["[CLS]", "[UNK]", "[UNK]", "[UNK]", "good", "[SEP]"]
    assert small.get_vocab_size() == trim["vocab_size_after"]
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == trim["vocab_size_after"]
    assert manifest(run, "odd", "onnx-fp32-trim")["parity"]["max_abs_diff"] <= 1e-3


def test_results_files_and_summary(exported):
    root, run, recipe, _ = exported
    results = root / "results" / "tiny"
    data = json.loads((results / "export.json").read_text())
    assert data["schema_version"] == 1 and data["run"] == "tiny" and "git_commit" in data["provenance"]
    assert {r["artifact"] for r in data["artifacts"]} == {f"odd/{v}" for v in ODD_VARIANTS} | {f"lora/{v}"
                                                                                               for v in LORA_VARIANTS}
    assert all("provenance" not in r for r in data["artifacts"])
    fp32 = next(r for r in data["artifacts"] if r["artifact"] == "odd/onnx-fp32")
    assert fp32["size_ratio_vs_fp32"] == 1.0
    md = (results / "export.md").read_text()
    table, _, evidence = md.partition("## INT8 evidence")
    assert table.count("\n| odd/") == len(ODD_VARIANTS) and "| lora/onnx-int8-dynamic |" in table
    int8 = [r for r in data["artifacts"] if r["precision"] == "int8" and not r["variant"].endswith("-repaired")]
    assert int8 and all(f"| {r['artifact']} |" in evidence for r in int8)
    for r in int8:      # every INT8 artifact: its validation interval and its agreement on the pool
        e = r["evidence"]
        assert e["drop_low"] <= e["drop_points"] <= e["drop_high"] and e["verdict"] in ("over", "within", "noise")
        assert e["pool_n"] > 0 and e["pool_agreement_low"] <= e["pool_agreement_pct"] <= e["pool_agreement_high"]


def test_rerun_keeps_finished_artifacts_and_rebuilds_broken_ones(exported, capsys):
    from export.config import load_export_config
    from export.pipeline import export_run, valid_manifest

    _, run, recipe, _ = exported
    before = manifest(run, "odd", "onnx-fp32")
    broken = run / "artifacts" / "odd" / "onnx-int8-dynamic"
    (broken / "onnx" / "model_quantized.onnx").write_bytes(b"truncated")        # e.g. a copy cut short
    assert valid_manifest(broken) is None
    rows = export_run(run, load_export_config(recipe.export, {"models": ["odd"],
                                                              "variants": ["onnx-fp32", "onnx-int8-dynamic"]}))
    out = capsys.readouterr().out
    assert "odd/onnx-fp32: kept" in out and "odd/onnx-int8-dynamic: kept" not in out
    assert manifest(run, "odd", "onnx-fp32")["provenance"] == before["provenance"]   # untouched
    assert valid_manifest(broken) is not None and len(rows) == 2


def test_resume_checks_the_recorded_sha256_not_just_the_size(exported, capsys):
    """A model file damaged in place (same size: bit rot, a bad copy) must not be kept."""
    from edgedistill.io import sha256
    from export.config import load_export_config
    from export.pipeline import export_run

    _, run, recipe, _ = exported
    folder = run / "artifacts" / "odd" / "onnx-fp32"
    model = folder / "onnx" / "model.onnx"
    data = bytearray(model.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    model.write_bytes(bytes(data))
    assert sha256(model) != manifest(run, "odd", "onnx-fp32")["sha256"]
    export_run(run, load_export_config(recipe.export, {"models": ["odd"], "variants": ["onnx-fp32"]}))
    out = capsys.readouterr().out
    assert "odd/onnx-fp32: kept" not in out
    assert "odd/onnx-fp32: onnx/model.onnx: sha256 differs from the one in manifest.json" in out
    assert "exporting again" in out
    assert sha256(model) == manifest(run, "odd", "onnx-fp32")["sha256"]


def test_leftovers_of_a_killed_export_are_removed_on_the_next_run(exported, tmp_path):
    """kill -9 in the middle of an artifact leaves its .partial folder and the export's workspace;
    the next export removes both (and any partial left by a process that no longer exists), never
    a folder that a live process is still writing."""
    from edgedistill.io import remove_stale_temporaries
    from export.config import load_export_config
    from export.pipeline import export_run

    _, run, recipe, _ = exported
    script = textwrap.dedent(f"""
        import os, signal
        from export import pipeline
        from export.config import load_export_config
        pipeline.check_artifact = lambda *a: os.kill(os.getpid(), signal.SIGKILL)   # mid-artifact
        pipeline.export_run({str(run)!r}, load_export_config({recipe.export!r}, {{"models": ["odd"],
                            "variants": ["onnx-int8-dynamic"], "force": True}}))
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-2000:]
    partials = list((run / "artifacts" / "odd").glob(".onnx-int8-dynamic.*.partial"))
    workspaces = list((run / ".tmp").glob("export-*"))
    assert len(partials) == 1 and any(partials[0].iterdir()) and len(workspaces) == 1
    legacy = run / "models" / ".odd.x1y2z3.partial"          # the name earlier versions used, empty
    legacy.mkdir()
    live = run / "artifacts" / "odd" / f".onnx-fp32.pid{os.getpid()}@{os.uname().nodename}.abc123.partial"
    live.mkdir()                                               # a live process's folder stays
    export_run(run, load_export_config(recipe.export, {"models": ["odd"], "variants": ["onnx-fp32"]}))
    assert not partials[0].exists() and not workspaces[0].exists() and not legacy.exists()
    assert live.exists() and not list((run / ".tmp").iterdir())
    assert remove_stale_temporaries(run) == [] and live.exists()
    live.rmdir()


def test_fp32_parity_failure_stops_the_export_and_keeps_the_old_folder(exported, monkeypatch):
    from export.config import load_export_config
    from export.errors import ExportError
    from export.model_job import ModelJob
    from export.pipeline import export_run

    _, run, recipe, _ = exported
    before = (run / "artifacts" / "odd" / "onnx-fp32" / "manifest.json").read_text()
    real = ModelJob.reference
    monkeypatch.setattr(ModelJob, "reference", lambda self, trim: real(self, trim) + 0.05)
    cfg = load_export_config(recipe.export, {"models": ["odd"], "variants": ["onnx-fp32"], "force": True})
    with pytest.raises(ExportError, match="odd/onnx-fp32: FP32 parity failed"):
        export_run(run, cfg)
    assert (run / "artifacts" / "odd" / "onnx-fp32" / "manifest.json").read_text() == before
    assert not [p for p in (run / "artifacts" / "odd").iterdir() if p.name.startswith(".")]   # no partial folders


def test_accuracy_guard_flags_lossy_artifacts():
    from export.checks import is_flagged

    assert is_flagged(0.80, 0.815, guard_points=1.0)
    assert not is_flagged(0.81, 0.815, guard_points=1.0)


# --- no torch on the serving path -----------------------------------------------------------

def test_onnx_and_openvino_serve_without_torch(exported):
    _, run, _, _ = exported
    folders = [run / "artifacts" / "odd" / v for v in ("onnx-int8-dynamic-trim", "openvino-int8", "onnx-fp32-opt")]
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        from edgedistill.predictor import load_predictor
        for folder in {[str(f) for f in folders]!r}:
            pred = load_predictor(folder, threads=1).predict(["good movie", "awful day"])
            assert pred.probs.shape == (2, 3), pred
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("torch was importable")
        heavy = [m for m in ("transformers", "optimum", "distill.models") if m in sys.modules]
        assert not heavy, heavy
        print("served without torch")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "served without torch" in proc.stdout


def test_artifacts_load_in_the_ecosystems_own_clients(exported):
    """An artifact folder is usable without edgedistill: plain onnxruntime + tokenizers for ONNX,
    OpenVINO's Core for the IR, in a process that cannot import the project, predicting what
    PyTorch predicts (FP32 to 1e-4; INT8 by its argmax)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, run, _, _ = exported
    model_dir = run / "models" / "odd"
    tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=False).eval()
    with torch.no_grad():
        ref = model(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    folders = {v: str(run / "artifacts" / "odd" / v) for v in ("onnx-fp32", "onnx-int8-dynamic", "openvino-fp32")}
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import onnxruntime as ort
        import openvino as ov
        from tokenizers import Tokenizer
        texts, folders = {TEXTS!r}, {folders!r}
        out = {{}}
        for variant, folder in folders.items():
            tok = Tokenizer.from_file(folder + "/tokenizer.json")
            tok.enable_padding(pad_id=0, pad_token="[PAD]")
            enc = tok.encode_batch(texts)
            feed = {{"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                     "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
                     "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64)}}
            if variant.startswith("onnx"):
                graph = "/onnx/model.onnx" if variant == "onnx-fp32" else "/onnx/model_quantized.onnx"
                session = ort.InferenceSession(folder + graph, providers=["CPUExecutionProvider"])
                names = [i.name for i in session.get_inputs()]
                logits = session.run(["logits"], {{k: feed[k] for k in names}})[0]
            else:
                compiled = ov.Core().compile_model(folder + "/openvino_model.xml", "CPU",
                                                   {{"INFERENCE_PRECISION_HINT": "f32"}})
                names = [p.get_any_name() for p in compiled.inputs]
                logits = compiled({{k: feed[k] for k in names}})[compiled.output(0)]
            out[variant] = np.asarray(logits).tolist()
        project = ("edgedistill", "edgedistill_cli", "export", "distill", "bench")
        assert not [m for m in sys.modules if m.split(".")[0] in project]
        print(json.dumps(out))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-I", "-c", script], cwd=run.parent, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {k: np.asarray(v) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    np.testing.assert_allclose(got["onnx-fp32"], ref, atol=1e-4)
    np.testing.assert_allclose(got["openvino-fp32"], ref, atol=1e-4)
    assert (got["onnx-int8-dynamic"].argmax(1) == ref.argmax(1)).mean() >= 0.8
    config = json.loads((run / "artifacts" / "odd" / "onnx-fp32" / "config.json").read_text())
    assert config["id2label"] and config["model_type"] == "bert"   # what optimum's ORT models read


# --- bad inputs: clear errors, exit code 2 ---------------------------------------------------

def run_cli(argv):
    import edgedistill_cli.commands as edgedistill

    return edgedistill.main(["export", *argv])


def stderr(capsys) -> str:
    return " ".join(capsys.readouterr().err.split())      # messages are wrapped to the terminal


def test_cli_unknown_variant_lists_the_known_ones(tiny_run, capsys):
    _, run, _ = tiny_run
    assert run_cli(["--run", str(run), "--variants", "onnx-int4"]) == 2
    err = stderr(capsys)
    assert "onnx-int4" in err and "onnx-int8-dynamic-trim" in err and "openvino-fp16" in err


def test_cli_half_written_checkpoint_is_an_error(tmp_path, capsys):
    recipe, run = write_recipe(tmp_path)
    tok = make_tokenizer(tmp_path / "vocab")
    folder = write_plain_model(run, "odd", recipe, tok)
    (folder / "edgedistill.json").unlink()                          # training was interrupted
    assert run_cli(["--run", str(run)]) == 2
    err = stderr(capsys)
    assert "edgedistill.json" in err and "did not finish" in err


def test_cli_run_without_models_or_recipe(tmp_path, capsys):
    _, run = write_recipe(tmp_path)
    assert run_cli(["--run", str(run)]) == 2
    assert "no trained models" in stderr(capsys)
    assert run_cli(["--run", str(tmp_path / "runs" / "missing")]) == 2
    assert "does not exist" in stderr(capsys)
    assert run_cli(["--run", str(run), "--models", "teacher"]) == 2
    assert "not found" in stderr(capsys)


def test_config_overrides_and_trim_switch():
    from edgedistill.configbase import ConfigError
    from export.config import DEFAULT_VARIANTS, load_export_config

    cfg = load_export_config({"calibration_size": 100}, {"calibration_size": 50, "eval_samples": None})
    assert cfg.calibration_size == 50 and list(cfg.variants) == list(DEFAULT_VARIANTS)
    assert not any(v.endswith("-trim") for v in load_export_config({"trim_vocab": False}).selected_variants())
    with pytest.raises(ConfigError) as exc:
        load_export_config({"variants": ["onnx-fp64"], "calibration_size": 0, "bogus": 1})
    assert "onnx-fp64" in str(exc.value) and "calibration_size" in str(exc.value) and "bogus" in str(exc.value)


def test_a_checkpoint_damaged_in_place_is_refused_before_export(tmp_path):
    """The training stage records every checkpoint file's sha256 in edgedistill.json; the export
    checks it, so a same-size corrupted checkpoint is never exported silently."""
    from test_bench_run import make_tiny_run

    from distill.pipeline import save_checkpoint
    from edgedistill.checkpoint import load_checkpoint
    from edgedistill.recipe import load_recipe
    from export.config import load_export_config
    from export.errors import ExportError
    from export.pipeline import export_run

    run = make_tiny_run(tmp_path, methods=("teacher",))
    folder = run / "models" / "teacher"
    model, tok = load_checkpoint(folder)
    meta = json.loads((folder / "edgedistill.json").read_text())
    save_checkpoint(folder, model, tok, {k: v for k, v in meta.items() if k not in ("schema_version", "label_names",
                                                                                 "recipe", "provenance")},
                    load_recipe(run / "recipe.yaml"), LABELS)
    files = json.loads((folder / "edgedistill.json").read_text())["files"]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(files)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100:] = bytes(100)                                   # same size, different weights
    weights.write_bytes(bytes(data))
    with pytest.raises(ExportError) as err:
        export_run(run, load_export_config({"variants": ["onnx-fp32"], "parity_samples": 8}), log=lambda *a: None)
    assert "model.safetensors: sha256 differs from the one in edgedistill.json" in str(err.value)
    assert "--methods teacher --force" in str(err.value) and not (run / "artifacts").exists()
