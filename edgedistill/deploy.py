"""What a client reads in an artifact folder: the input files, agreeing with the export, and the card.

    write_input_files(folder, label_names, max_length)   # tokenizer.json, tokenizer_config.json, config.json
    input_file_problems(folder, label_names, max_length) # [] when the three agree with the export
    write_card(folder, manifest, bench_rows, machines)   # README.md, from the run's own files

A client that reads any of the three input files truncates and pads as the project did:
tokenizer.json carries the truncation and padding (Python ``tokenizers``, onnxruntime users),
tokenizer_config.json says ``model_max_length`` (transformers, optimum, transformers.js) and
config.json names the labels (``id2label`` / ``label2id``). The card's usage snippets are the
files of ``edgedistill/clients/``, the same text the client tests run. Nothing heavy is imported.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgedistill import layout

CLIENTS_DIR = Path(__file__).parent / "clients"
# Keys that would contradict model_max_length in tokenizer_config.json (a stray max_length is
# read by some pipelines as the truncation length).
CONTRADICTING_KEYS = ("max_length", "truncation", "stride")


# --- one truth about the input ----------------------------------------------------------------

def pad_token(doc: dict, tokenizer_config: dict) -> tuple[int, str]:
    """The pad token of a tokenizer.json (its config's pad_token, else [PAD] / <pad>, else id 0)."""
    vocab = {t["content"]: t["id"] for t in doc.get("added_tokens") or []}
    model_vocab = (doc.get("model") or {}).get("vocab")
    if isinstance(model_vocab, dict):
        vocab = {**model_vocab, **vocab}
    named = tokenizer_config.get("pad_token")
    named = named.get("content") if isinstance(named, dict) else named
    for name in (named, "[PAD]", "<pad>"):
        if name and name in vocab:
            return int(vocab[name]), name
    by_id = {i: t for t, i in vocab.items()}
    return 0, by_id.get(0, "[PAD]")


def write_input_files(folder: str | Path, label_names: list[str], max_length: int,
                      transformers_js_dtype: str | None = None) -> None:
    """Rewrite an artifact's tokenizer.json, tokenizer_config.json and config.json so that each says
    what the export did: truncation at ``max_length`` tokens, padding to the batch's longest text,
    and the label names by id. ``transformers_js_dtype`` ("fp32": onnx/model.onnx, "q8":
    onnx/model_quantized.onnx) tells transformers.js which graph the folder holds."""
    folder = Path(folder)
    tc_path = folder / layout.TOKENIZER_CONFIG_FILE
    tc = json.loads(tc_path.read_text()) if tc_path.is_file() else {"tokenizer_class": "PreTrainedTokenizerFast"}
    tok_path = folder / layout.TOKENIZER_FILE
    doc = json.loads(tok_path.read_text())
    pad_id, pad = pad_token(doc, tc)
    doc["truncation"] = {"direction": "Right", "max_length": int(max_length), "strategy": "LongestFirst", "stride": 0}
    doc["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": None,
                      "pad_id": pad_id, "pad_type_id": 0, "pad_token": pad}
    tok_path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
    for key in CONTRADICTING_KEYS:
        tc.pop(key, None)
    tc.update({"model_max_length": int(max_length), "padding_side": "right", "truncation_side": "right"})
    tc.setdefault("pad_token", pad)
    tc_path.write_text(json.dumps(tc, ensure_ascii=False, indent=2) + "\n")
    cfg_path = folder / layout.CONFIG_FILE
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    id2label = {str(i): n for i, n in enumerate(label_names)}
    cfg.update({"id2label": id2label, "label2id": {n: i for i, n in enumerate(label_names)},
                "num_labels": len(label_names)})
    if transformers_js_dtype:
        cfg["transformers.js_config"] = {"dtype": transformers_js_dtype}
    cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n")


def input_file_problems(folder: str | Path, label_names: list[str], max_length: int) -> list[str]:
    """One line per way the folder's input files disagree with the export; [] when they agree."""
    folder = Path(folder)
    problems = []

    def read(name: str) -> dict:
        try:
            return json.loads((folder / name).read_text())
        except (OSError, ValueError) as exc:
            problems.append(f"{name}: cannot be read ({exc})")
            return {}

    doc, tc, cfg = read(layout.TOKENIZER_FILE), read(layout.TOKENIZER_CONFIG_FILE), read(layout.CONFIG_FILE)
    if (doc.get("truncation") or {}).get("max_length") != max_length:
        problems.append(f"{layout.TOKENIZER_FILE}: truncation is {doc.get('truncation')}, not max_length {max_length}")
    if not doc.get("padding"):
        problems.append(f"{layout.TOKENIZER_FILE}: no padding")
    if tc.get("model_max_length") != max_length:
        problems.append(f"{layout.TOKENIZER_CONFIG_FILE}: model_max_length is {tc.get('model_max_length')!r}, "
                        f"not {max_length}")
    problems += [f"{layout.TOKENIZER_CONFIG_FILE}: {k}={tc[k]!r} contradicts model_max_length"
                 for k in CONTRADICTING_KEYS if k in tc]
    want = {str(i): n for i, n in enumerate(label_names)}
    if cfg.get("id2label") != want or cfg.get("label2id") != {n: i for i, n in enumerate(label_names)}:
        problems.append(f"{layout.CONFIG_FILE}: id2label/label2id are {cfg.get('id2label')}, not {want}")
    return problems


# --- the clients ----------------------------------------------------------------------------------

# Which snippet (a file of edgedistill/clients/) runs which artifact, and how it is installed.
CLIENTS = {
    "onnxruntime": {"title": "Python: onnxruntime + tokenizers", "file": "onnxruntime_client.py", "lang": "python",
                    "install": "pip install onnxruntime tokenizers numpy",
                    "run": "python onnxruntime_client.py FOLDER \"some text\""},
    "openvino": {"title": "Python: OpenVINO", "file": "openvino_client.py", "lang": "python",
                 "install": "pip install openvino tokenizers numpy",
                 "run": "python openvino_client.py FOLDER \"some text\""},
    "transformers.js": {"title": "Node: transformers.js", "file": "transformers_js_client.mjs", "lang": "js",
                        "install": "npm install @huggingface/transformers --onnxruntime-node-install=skip",
                        "run": "node transformers_js_client.mjs FOLDER \"some text\""},
    "model2vec": {"title": "Python: model2vec", "file": "model2vec_client.py", "lang": "python",
                  "install": "pip install model2vec",
                  "run": "python model2vec_client.py FOLDER \"some text\""},
}


def snippet(client: str) -> str:
    """The text of a client's snippet: what the card shows and the client test runs."""
    return (CLIENTS_DIR / CLIENTS[client]["file"]).read_text()


def clients_for(manifest: dict, folder: str | Path | None = None) -> list[str]:
    """The clients that run an artifact. ONNX graphs with com.microsoft operators (ONNX Runtime's
    fused or integer kernels, e.g. QAttention) run on ONNX Runtime only; transformers.js needs a
    model type it knows (not the static student's); model2vec reads the static student's
    model2vec files."""
    fmt = manifest.get("format")
    if fmt == "openvino":
        return ["openvino"]
    out = ["onnxruntime"]
    if not ms_domain(manifest):
        out.append("openvino")
    if not static(manifest) and manifest.get("kind") != "baseline":
        out.append("transformers.js")
    if folder is not None and all((Path(folder) / f).is_file() for f in layout.MODEL2VEC_FILES):
        out.append("model2vec")
    return out


def static(manifest: dict) -> bool:
    return manifest.get("model") == "static" or manifest.get("model_type") == "edgedistill-static"


def ms_domain(manifest: dict) -> list[str]:
    """The com.microsoft operators an ONNX artifact's graph holds (recorded by the export)."""
    return list(manifest.get("contrib_ops") or [])


# --- the card -------------------------------------------------------------------------------------

def _num(x, digits=4):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _mb(n):
    return "n/a" if n is None else f"{n / 1e6:.2f} MB"


def latency_rows(rows: list[dict], artifact: str) -> tuple[str, list[dict]]:
    """This artifact's text -> label latency rows ("text-latency"), else its forward-only ones ("latency")."""
    mine = [r for r in rows or [] if r.get("artifact") == artifact]
    for scenario in ("text-latency", "latency"):
        picked = [r for r in mine if r.get("scenario") == scenario]
        if picked:
            return scenario, picked
    return "", []


def card_metadata(manifest: dict, base_model: str | None, clients: list[str]) -> dict:
    labels = manifest.get("label_names") or []
    results = [{"task": {"type": "text-classification", "name": "Text Classification"},
                "dataset": {"type": "text-classification", "name": manifest.get("dataset") or "test split",
                            "split": manifest.get("eval_split") or "test"},
                "metrics": [{"type": "f1", "name": "macro-F1", "value": round(float(manifest["macro_f1"]), 4),
                             "args": {"average": "macro"}}]}] if manifest.get("macro_f1") is not None else []
    meta = {"library_name": "model2vec" if "model2vec" in clients else (
                "transformers.js" if "transformers.js" in clients else manifest.get("format") or "onnx"),
            "pipeline_tag": "text-classification",
            "tags": sorted({"edgedistill", manifest.get("format") or "onnx", manifest.get("precision") or "fp32",
                            *(["openvino"] if "openvino" in clients else []), *clients}),
            "model-index": [{"name": f"{manifest.get('model')}/{manifest.get('variant')}", "results": results}]}
    if base_model:
        meta["base_model"] = base_model
    if labels:
        meta["widget"] = [{"text": "an example text"}]
    return meta


def _yaml(value, indent: int = 0) -> str:
    """A small YAML writer for the card's metadata (dicts, lists, strings, numbers, booleans):
    JSON scalars are valid YAML, so strings are written JSON-quoted."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {json.dumps(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for v in value:
            if isinstance(v, dict) and v:
                inner = _yaml(v, indent + 1).splitlines()
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {json.dumps(v)}")
        return "\n".join(lines)
    return f"{pad}{json.dumps(value)}"


def render_card(manifest: dict, folder: str | Path | None = None, bench_rows: list[dict] | None = None,
                machines: dict | None = None) -> str:
    """The model card (README.md) of an artifact, from its manifest and the run's bench rows."""
    base_model = manifest.get("base_model")
    clients = clients_for(manifest, folder)
    name = f"{manifest.get('model')}/{manifest.get('variant')}"
    labels = manifest.get("label_names") or []
    parity = manifest.get("parity") or {}
    per_class = manifest.get("per_class_f1") or {}
    meta = card_metadata(manifest, base_model, clients)
    lines = ["---", _yaml(meta), "---", "", f"# {name}", ""]
    method = "a baseline" if manifest.get("kind") == "baseline" else f"the `{manifest.get('model')}` model"
    trimmed = ", trimmed vocabulary" if manifest.get("trimmed_vocab") else ""
    lines += [f"A text classifier exported by edgedistill: {method} of run `{manifest.get('run') or 'n/a'}`, "
              f"as {manifest.get('format')} {manifest.get('precision')} "
              f"(quantization: {manifest.get('quantization')}{trimmed}).",
              "",
              "| | |", "|---|---|",
              f"| method | {manifest.get('model')} |",
              f"| source model | {base_model or 'n/a'} (checkpoint `{manifest.get('source_checkpoint')}`) |",
              f"| precision | {manifest.get('precision')} ({manifest.get('quantization')}) |",
              f"| model file | `{manifest.get('model_file')}` |",
              f"| size | {_mb(manifest.get('size_bytes'))} |",
              f"| labels | {', '.join(labels)} |",
              f"| max_length | {manifest.get('max_length')} tokens (truncated; padded to the batch's longest) |",
              f"| test macro-F1 | {_num(manifest.get('macro_f1'))} on {manifest.get('eval_samples') or 'n/a'} "
              f"{manifest.get('eval_split') or 'test'} texts (source: {_num(manifest.get('macro_f1_source'))}) |",
              f"| agreement with FP32 | {_num(parity.get('agreement_pct'), 2)}% of {parity.get('n', 'n/a')} texts, "
              f"max logit difference {_num(parity.get('max_abs_diff'), 6)} (vs {parity.get('reference', 'n/a')}) |",
              ""]
    if per_class:
        lines += ["Per-class F1 on the test texts:", "", "| class | F1 |", "|---|---|"]
        lines += [f"| {c} | {_num(f)} |" for c, f in per_class.items()] + [""]
    scenario, rows = latency_rows(bench_rows or [], name)
    lines += ["## Latency", ""]
    if rows:
        what = "text in, label out (tokenization included)" if scenario == "text-latency" else \
            "model forward only (tokenization not included)"
        lines += [f"Batch 1, {what}; scenario `{scenario}` of the run's bench.", "",
                  "| machine | fingerprint | runtime | threads | p50 ms | p90 ms |", "|---|---|---|---|---|---|"]
        for r in rows:
            hw = ((machines or {}).get(r.get("machine_id")) or {}).get("hardware") or {}
            label = r.get("machine_label") or hw.get("label") or "n/a"
            lines.append(f"| {label} | `{r.get('machine_id')}` | {r.get('runtime')} | {r.get('threads')} | "
                         f"{_num(r.get('latency_p50_ms'), 2)} | {_num(r.get('latency_p90_ms'), 2)} |")
        lines.append("")
    else:
        lines += ["Not benched yet (`edgedistill bench --run runs/<run>` re-renders this card with its rows).", ""]
    lines += ["## Runtimes", ""]
    ops = ms_domain(manifest)
    if ops:
        lines += [f"ONNX Runtime only: the graph holds com.microsoft operators ({', '.join(ops)}) that OpenVINO "
                  "and other ONNX runtimes do not implement.", ""]
    lines += [f"Runs on: {', '.join(CLIENTS[c]['title'] for c in clients)}.", ""]
    if static(manifest):
        lines += ["Inputs of the ONNX graph: `input_ids` and `attention_mask` (int64, batch x tokens; no "
                  "`token_type_ids`). tokenizer.json adds no [CLS]/[SEP] and the graph skips the unknown "
                  "token's id, as model2vec does.", ""]
    lines += ["## Usage", ""]
    for c in clients:
        spec = CLIENTS[c]
        lines += [f"### {spec['title']}", "", f"`{spec['install']}`, then `{spec['run']}`:", "",
                  f"```{spec['lang']}", snippet(c).rstrip(), "```", ""]
    lines += ["Generated by edgedistill from manifest.json and the run's bench.json; do not edit by hand."]
    return "\n".join(lines) + "\n"


def write_card(folder: str | Path, manifest: dict, bench_rows: list[dict] | None = None,
               machines: dict | None = None) -> Path:
    path = Path(folder) / layout.CARD_FILE
    path.write_text(render_card(manifest, folder, bench_rows, machines))
    path.chmod(0o644)
    return path


def refresh_cards(run_dir: str | Path, bench_doc: dict) -> list[Path]:
    """Re-render the card of every finished artifact of a run with the run's bench rows (after a bench)."""
    written = []
    for folder in layout.artifact_folders(run_dir):
        manifest, _ = layout.read_marker(folder / layout.ARTIFACT_MARKER)
        if manifest and manifest.get("schema_version") == layout.ARTIFACT_SCHEMA_VERSION:
            written.append(write_card(folder, manifest, bench_doc.get("rows"), bench_doc.get("machines")))
    return written
