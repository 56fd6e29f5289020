"""What a user would pick instead of distilling, trained on the run's own splits and reported beside it.

    from distill.baselines import train_baselines
    entries = train_baselines(recipe, data)      # {name: entry}; also runs/<run>/baselines/<name>.json

Each baseline is trained by its own library as its users run it, on the LABELLED training texts
only (never the teacher-labelled pool, never the fine-tuned teacher), selected on the validation
split and scored on the test split with the project's metrics code (``classification_metrics``):

- ``tfidf``: scikit-learn TF-IDF over words and word pairs + logistic regression, C picked on
  validation macro-F1 (``baselines.tfidf_c``);
- ``model2vec``: model2vec distils a static model from the teacher's PRE-TRAINED body (a local
  folder, offline), then trains its classifier, early-stopped on the validation split;
- ``setfit`` (opt-in): setfit's contrastive fine-tuning of the pre-trained body + logistic
  regression, ``baselines.setfit_iterations`` pairs per text.

``tfidf`` and ``model2vec`` reduce to small ONNX graphs (``edgedistill.graphs``) written as
``runs/<run>/artifacts/<name>/onnx-fp32/`` with a manifest like every export, after checking them
against the library's own probabilities on the test texts; the bench then times them through
``OrtRuntime`` with the other artifacts, and a bench bundle carries them (no torch, no scikit-learn
on the target). ``setfit`` keeps a transformer body: its scores and training time are reported,
its speed is the teacher's architecture's and is not benched separately.
"""
from __future__ import annotations

import hashlib
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np

from distill.data import Dataset
from edgedistill import deploy, graphs, layout
from edgedistill.configbase import to_dict
from edgedistill.integrity import file_records
from edgedistill.io import atomic_dir, atomic_write_json
from edgedistill.methods import BASELINES
from edgedistill.metrics import classification_metrics
from edgedistill.provenance import library_versions, provenance
from edgedistill.recipe import Recipe
from edgedistill.runtime import MANIFEST, TOKENIZER_FILE, OrtRuntime

SCHEMA_VERSION = 1
VARIANT = "onnx-fp32"
ONNX_FILE = layout.ONNX_FP32_FILE
TFIDF_MAX_WORDS = 512          # words a text is cut to, in training and in the artifact alike
WORD_PATTERN = r"\w\w+"        # scikit-learn's default token_pattern, (?u)\b\w\w+\b
PARITY_TOLERANCE = 1e-3        # max |probability difference| between the ONNX graph and the library


class BaselineError(RuntimeError):
    """A baseline that cannot be trained here; the message says what to install or change."""


def result_file(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / "baselines" / f"{name}.json"


def fingerprint(recipe: Recipe, name: str) -> str:
    """What shapes a baseline: the data, the teacher's pre-trained body, the seed and its settings."""
    d = to_dict(recipe)
    key = {"data": d["data"], "teacher": d["teacher"]["model"], "seed": d["run"]["seed"], "name": name,
           "baselines": {k: v for k, v in d["baselines"].items() if k.startswith(name) or k == name}}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def collect_baselines(run_dir: str | Path) -> dict[str, dict]:
    """Every finished baseline's entry (``runs/<run>/baselines/<name>.json``), in registry order."""
    out = {}
    for name in BASELINES:
        path = result_file(run_dir, name)
        doc, _ = layout.read_marker(path) if path.is_file() else (None, None)
        if doc is not None:
            out[name] = {k: v for k, v in doc.items() if k != "schema_version"}
    return out


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (training threads count in full)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def train_baselines(recipe: Recipe, data: Dataset, names: list[str] | None = None, force: bool = False,
                    log=print) -> dict[str, dict]:
    """Train the enabled baselines (or ``names``); a finished one trained with the same settings is kept.
    The first that fails raises (``train_run`` trains them one by one with ``train_baseline`` instead,
    recording a failure and going on with the others)."""
    from edgedistill.io import remove_stale_temporaries

    names = names if names is not None else recipe.baselines.enabled()
    remove_stale_temporaries(recipe.run_dir)     # .partial artifact folders of a killed run
    return {name: train_baseline(recipe, data, name, force, log) for name in names}


def train_baseline(recipe: Recipe, data: Dataset, name: str, force: bool = False, log=print) -> dict:
    """One baseline: kept when finished with the same settings, else trained, checked and written."""
    run_dir = recipe.run_dir
    path = result_file(run_dir, name)
    old, _ = layout.read_marker(path) if path.is_file() else (None, None)
    if old and old.get("fingerprint") == fingerprint(recipe, name) and not force and _artifact_ok(old, run_dir):
        log(f"[{name}] baseline already trained with these settings ({path}); kept")
        return old
    # What an older fit left is stale now: a fit that fails must not leave its row or artifact behind.
    path.unlink(missing_ok=True)
    shutil.rmtree(layout.artifacts_dir(run_dir) / name, ignore_errors=True)
    log(f"[{name}] baseline: {BASELINES[name].library}")
    wall, cpu = time.perf_counter(), _cpu_s()
    trained = TRAINERS[name](recipe, data, log)
    train_time_s, train_cpu_s = time.perf_counter() - wall, _cpu_s() - cpu
    val_probs, test_probs = trained.pop("validation_probs"), trained.pop("test_probs")
    entry = {"schema_version": SCHEMA_VERSION, "method": name, "kind": "baseline", "baseline": True,
             "library": BASELINES[name].library, "fingerprint": fingerprint(recipe, name),
             "train_time_s": train_time_s, "train_cpu_s": train_cpu_s,
             "train_examples": len(data.train), "labelled_examples": len(data.train),
             **trained,
             "validation": classification_metrics(data.validation.labels, val_probs, data.label_names),
             "test": classification_metrics(data.test.labels, test_probs, data.label_names),
             "provenance": provenance()}
    graph = entry.pop("graph", None)
    if graph is not None:
        entry["artifact"] = write_artifact(recipe, data, name, graph, entry, test_probs)
    atomic_write_json(path, entry)
    log(f"[{name}] test macro-F1 {entry['test']['macro_f1']:.4f} (validation "
        f"{entry['validation']['macro_f1']:.4f}; {train_time_s:.1f} s wall, {train_cpu_s:.1f} s CPU)")
    return entry


def _artifact_ok(entry: dict, run_dir: Path) -> bool:
    artifact = entry.get("artifact")
    return artifact is None or (layout.artifacts_dir(run_dir) / artifact / MANIFEST).is_file()


# --- the artifact ---------------------------------------------------------------------------------

def write_artifact(recipe: Recipe, data: Dataset, name: str, graph: dict, entry: dict,
                   library_probs: np.ndarray) -> str:
    """The ONNX graph + tokenizer.json as ``artifacts/<name>/onnx-fp32``; its probabilities on the
    test texts must match the library's, or nothing is written."""
    final = layout.artifact_dir(recipe.run_dir, name, VARIANT)
    if final.exists():
        shutil.rmtree(final)    # built from an older fit
    with atomic_dir(final) as out:
        (out / ONNX_FILE).parent.mkdir(parents=True, exist_ok=True)
        graphs.save(graph["model"], out / ONNX_FILE)
        (out / TOKENIZER_FILE).write_text(graph["tokenizer"])
        deploy.write_input_files(out, list(data.label_names), graph["max_length"])
        draft = {"schema_version": layout.ARTIFACT_SCHEMA_VERSION, "run": recipe.run_dir.name, "model": name,
                 "base_model": recipe.teacher.model if name == "model2vec" else None,
                 "variant": VARIANT, "format": "onnx", "precision": "fp32", "quantization": "none",
                 "trimmed_vocab": False, "model_file": ONNX_FILE,
                 "label_names": list(data.label_names), "max_length": graph["max_length"]}
        rt = OrtRuntime.open(out, draft, threads=1)
        probs = rt.predict(list(data.test.texts)).probs
        diff = float(np.abs(probs - library_probs).max()) if len(probs) else 0.0
        agreement = float((probs.argmax(1) == library_probs.argmax(1)).mean() * 100) if len(probs) else 100.0
        if diff > PARITY_TOLERANCE:
            raise BaselineError(f"the {name} ONNX graph differs from {BASELINES[name].library} by {diff:.2e} in "
                                f"probability on the test texts (tolerance {PARITY_TOLERANCE:g}); not written")
        size = (out / ONNX_FILE).stat().st_size
        files = file_records(out, [ONNX_FILE])
        f1 = classification_metrics(data.test.labels, probs, data.label_names)["macro_f1"]
        manifest = {
            **draft, "kind": "baseline", "baseline": True, "library": BASELINES[name].library,
            "size_bytes": size, "sha256": files[ONNX_FILE]["sha256"], "files": files, "params": graph["params"],
            "truncation": graph.get("truncation"), "opset": graphs.OPSET,
            "source_checkpoint": str(result_file(recipe.run_dir, name)),
            "parity": {"n": len(probs), "max_abs_diff": diff, "agreement_pct": agreement,
                       "reference": f"{name} library probabilities"},
            "macro_f1": f1, "macro_f1_source": entry["test"]["macro_f1"] if "test" in entry else None,
            "eval_split": "test", "tool_versions": library_versions(("onnx", "onnxruntime", "tokenizers",
                                                                     "scikit-learn", "model2vec")),
            "selected": entry.get("selected"), "provenance": provenance()}
        manifest["support_files"] = file_records(out, [TOKENIZER_FILE, layout.TOKENIZER_CONFIG_FILE,
                                                       layout.CONFIG_FILE])
        deploy.write_card(out, manifest)
        atomic_write_json(out / MANIFEST, manifest)
    return f"{name}/{VARIANT}"


def cut_to_tokens(tokenizer_json: str, texts, max_length: int) -> list[str]:
    """Each text cut after the last of the first ``max_length`` tokens ``tokenizer_json`` gives it (the
    truncation every runtime applies, ``edgedistill.runtime.TextEncoder``); shorter texts unchanged.
    A tokenizer that reads a text prefix ending at a token boundary gives that prefix's tokens again."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    texts = list(texts)
    return [text[:enc.offsets[-1][1]] if enc.overflowing else text
            for text, enc in zip(texts, tok.encode_batch(texts, add_special_tokens=False))]


# --- tfidf ----------------------------------------------------------------------------------------

def word_tokenizer(words: list[str] | None = None):
    """A word-level ``tokenizers`` tokenizer splitting as scikit-learn's default token_pattern does
    (lower-cased runs of two or more word characters); unknown words map to [UNK]."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel

    vocab = {"[PAD]": 0, "[UNK]": 1}
    for w in words or []:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)
    return tok


def train_tfidf(recipe: Recipe, data: Dataset, log) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    cfg = recipe.baselines
    splitter = word_tokenizer()

    def words(text: str) -> list[str]:
        return [w for w, _ in splitter.pre_tokenizer.pre_tokenize_str(splitter.normalizer.normalize_str(text))
                ][:TFIDF_MAX_WORDS]

    vectorizer = TfidfVectorizer(tokenizer=words, token_pattern=None, lowercase=False,
                                 ngram_range=(1, cfg.tfidf_max_ngram), max_features=cfg.tfidf_max_features,
                                 sublinear_tf=False)
    x_train = vectorizer.fit_transform(data.train.texts)
    x_val = vectorizer.transform(data.validation.texts)
    scores, models = {}, {}
    for c in cfg.tfidf_c:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=recipe.run.seed)
        clf.fit(x_train, data.train.labels)
        probs = _columns(clf.predict_proba(x_val), clf.classes_, len(data.label_names))
        scores[c] = classification_metrics(data.validation.labels, probs, data.label_names)["macro_f1"]
        models[c] = clf
    best = max(scores, key=lambda c: (scores[c], -c))     # ties: the stronger regularisation
    clf = models[best]
    log(f"[tfidf] validation macro-F1 by C: {', '.join(f'{c:g}: {f:.4f}' for c, f in scores.items())}; kept C={best:g}")
    vocab = vectorizer.vocabulary_
    words_used = sorted({w for term in vocab for w in term.split(" ")})
    tok = word_tokenizer(words_used)
    ids = tok.get_vocab()
    unigrams = {ids[t]: j for t, j in vocab.items() if " " not in t}
    bigrams = {tuple(ids[w] for w in t.split(" ")): j for t, j in vocab.items() if " " in t}
    if any(len(k) != 2 for k in bigrams):
        raise BaselineError(f"baselines.tfidf_max_ngram: {cfg.tfidf_max_ngram}: the ONNX graph counts words and word "
                            "pairs only; use 1 or 2")
    coef, intercept = _rows(clf.coef_, clf.intercept_, clf.classes_, len(data.label_names))
    model = graphs.tfidf_graph(unigrams, bigrams, vectorizer.idf_, coef, intercept)
    params = int(coef.size + intercept.size + len(vocab))     # weights, biases and one idf per feature
    return {"selected": {"C": best, "validation_macro_f1_by_C": {str(c): f for c, f in scores.items()},
                         "features": len(vocab)},
            "params": params,
            "validation_probs": _columns(clf.predict_proba(x_val), clf.classes_, len(data.label_names)),
            "test_probs": _columns(clf.predict_proba(vectorizer.transform(data.test.texts)), clf.classes_,
                                   len(data.label_names)),
            "graph": {"model": model, "tokenizer": tok.to_str(), "max_length": TFIDF_MAX_WORDS, "params": params,
                      "truncation": f"the first {TFIDF_MAX_WORDS} words of a text, in training and in the graph alike"},
            "library_versions": library_versions(("scikit-learn",))}


def _columns(probs: np.ndarray, classes, n: int) -> np.ndarray:
    """A library's class columns put in the run's label order (a class absent from training scores 0)."""
    out = np.zeros((len(probs), n), dtype=np.float64)
    out[:, [int(c) for c in classes]] = probs
    return out


def _rows(coef: np.ndarray, intercept: np.ndarray, classes, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear model's rows in the run's label order (binary models keep their one row)."""
    if coef.shape[0] == 1:
        if [int(c) for c in classes] != [0, 1] or n != 2:
            raise BaselineError("a two-class linear model must be trained on the labels 0 and 1")
        return coef, intercept
    if len(classes) != n:
        raise BaselineError(f"the training split holds {len(classes)} of the {n} classes; the linear model "
                            "cannot score the missing ones (use a larger or stratified data.max_train)")
    order = np.argsort([int(c) for c in classes])
    return coef[order], intercept[order]


# --- model2vec ------------------------------------------------------------------------------------

def _require(module: str, install: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BaselineError(f"the baseline needs {module} ({exc}); install it with `{install}`, or turn the "
                            "baseline off in the recipe's baselines section") from None


M2V_INSTALL = "pip install --no-deps model2vec==0.10.0 skeletoken==0.6.1 && pip install pydantic (make install does)"


def fit_model2vec(recipe: Recipe, data: Dataset):
    """model2vec's own classifier on the run's labels, as its users train it: the PRE-TRAINED teacher body
    distilled to static embeddings, then ``StaticModelForClassification.fit`` with the recipe's settings."""
    from distill.models import resolve_model_source
    from distill.static import distil_static

    _require("model2vec.train", M2V_INSTALL)
    from model2vec.train import StaticModelForClassification

    cfg = recipe.baselines
    static = distil_static(resolve_model_source(recipe.teacher.model), cfg.model2vec_dims)
    names = list(data.label_names)
    clf = StaticModelForClassification.from_static_model(model=static)
    clf.fit(list(data.train.texts), [names[i] for i in data.train.labels],
            X_val=list(data.validation.texts), y_val=[names[i] for i in data.validation.labels],
            max_epochs=cfg.model2vec_max_epochs, device="cpu", random_seed=recipe.run.seed)
    clf.eval()
    return clf


def train_model2vec(recipe: Recipe, data: Dataset, log) -> dict:
    import torch

    from distill.static import artifact_tokenizer_json

    cfg = recipe.baselines
    names = list(data.label_names)
    clf = fit_model2vec(recipe, data)
    order = [list(clf.classes_).index(n) for n in names] if set(clf.classes_) == set(names) else None
    if order is None:
        raise BaselineError(f"model2vec's classifier learnt the classes {list(clf.classes_)}, not {names}")

    # The graph reads the first max_length tokens the artifact's tokenizer gives (unknown ones
    # included, as every runtime truncates), then drops the unknown ones. model2vec's own
    # predict_proba drops them first and cuts the text at 10 x max_length characters before that,
    # so on long texts the two pooled other tokens. The library is scored on the tokens the graph
    # reads: each text cut after its max_length-th token, read by the library without a cut of its own.
    max_length = int(clf.max_length or 512)
    tokenizer = artifact_tokenizer_json(clf.tokenizer.to_str())
    clf.max_length = None

    def probs(texts):
        return clf.predict_proba(cut_to_tokens(tokenizer, texts, max_length))[:, order].astype(np.float64)

    linears = [m for m in clf.head if isinstance(m, torch.nn.Linear)]
    head = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in linears]
    head[-1] = (head[-1][0][order], head[-1][1][order])
    table = clf.embeddings.weight.detach().numpy()
    weights = None if clf.w is None else clf.w.detach().numpy()
    model = graphs.static_classifier_graph(table, head, clf.normalize, clf.unk_token_id,
                                           clf.token_mapping.detach().numpy(), weights)
    params = int(table.size + sum(w.size + b.size for w, b in head))
    return {"selected": {"max_epochs": cfg.model2vec_max_epochs, "early_stopping": "validation accuracy "
                         "(model2vec's own)", "dims": int(table.shape[1]), "vocabulary": int(table.shape[0]),
                         "max_length": max_length},
            "params": params,
            "validation_probs": probs(data.validation.texts), "test_probs": probs(data.test.texts),
            "graph": {"model": model, "tokenizer": tokenizer, "max_length": max_length, "params": params,
                      "truncation": f"the first {max_length} tokens of a text (unknown tokens counted, then dropped "
                                    "before pooling); the library's scores were taken on the same tokens"},
            "library_versions": library_versions(("model2vec", "torch"))}


# --- setfit ---------------------------------------------------------------------------------------

SETFIT_INSTALL = "pip install -c constraints.txt '.[setfit]'"


def train_setfit(recipe: Recipe, data: Dataset, log) -> dict:
    from distill.models import resolve_model_source

    _require("setfit", SETFIT_INSTALL)
    from datasets import Dataset as HFDataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from edgedistill.io import workspace

    cfg = recipe.baselines
    model = SetFitModel.from_pretrained(resolve_model_source(recipe.teacher.model),
                                        labels=list(range(len(data.label_names))), trust_remote_code=False)
    scratch = workspace(recipe.run_dir, "setfit")     # its trainer's checkpoints: scratch, removed after
    try:
        args = TrainingArguments(output_dir=str(scratch), num_iterations=cfg.setfit_iterations,
                                 num_epochs=cfg.setfit_epochs, batch_size=cfg.setfit_batch_size,
                                 seed=recipe.run.seed, report_to="none", show_progress_bar=False,
                                 save_strategy="no")
        train = HFDataset.from_dict({"text": list(data.train.texts), "label": [int(x) for x in data.train.labels]})
        Trainer(model=model, args=args, train_dataset=train).train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def probs(texts):
        p = np.asarray(model.predict_proba(list(texts)), dtype=np.float64)
        return _columns(p, model.model_head.classes_, len(data.label_names)) if p.shape[1] != len(
            data.label_names) else p

    return {"selected": {"iterations": cfg.setfit_iterations, "epochs": cfg.setfit_epochs,
                         "note": "no selection: setfit trains its settings once; validation is reported"},
            "params": int(sum(p.numel() for p in model.model_body.parameters())),
            "validation_probs": probs(data.validation.texts), "test_probs": probs(data.test.texts),
            "library_versions": library_versions(("setfit", "sentence-transformers", "torch"))}


TRAINERS = {"tfidf": train_tfidf, "model2vec": train_model2vec, "setfit": train_setfit}

__all__ = ["train_baselines", "collect_baselines", "result_file", "word_tokenizer",
           "BaselineError", "TRAINERS"]


# --- what must be installed -----------------------------------------------------------------------

# The optional library each name needs (the static student distils its table with model2vec), and how
# to install it: checked before any training, not when its turn comes after an hour of the others.
LIBRARIES = {"model2vec": ("model2vec.train", M2V_INSTALL), "setfit": ("setfit", SETFIT_INSTALL),
             "static": ("model2vec.distill", M2V_INSTALL)}


def data_problems(data: Dataset, names: list[str]) -> list[str]:
    """One line per baseline in ``names`` that cannot learn from this training split: a linear model
    (tfidf) and model2vec's classifier must see every class. Checked once the data is read, before
    anything trains."""
    counts = np.bincount(np.asarray(data.train.labels, dtype=np.int64), minlength=len(data.label_names))
    missing = [n for n, c in zip(data.label_names, counts) if c == 0]
    if not missing:
        return []
    return [f"baselines.{name}: the training split has no text of the class(es) {missing} (of "
            f"{list(data.label_names)}), and {BASELINES[name].library.split(' (')[0]} cannot score a class it never "
            f"saw; use a larger or stratified data.max_train, or turn it off (baselines.{name}: false)"
            for name in names if name in ("tfidf", "model2vec")]


def library_problems(names: list[str]) -> list[str]:
    """One line per method or baseline in ``names`` whose library is not installed, naming its field."""
    import importlib.util

    problems = []
    for name in names:
        if name not in LIBRARIES:
            continue
        module, install = LIBRARIES[name]
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:        # the parent package is missing
            found = False
        if not found:
            field = f"baselines.{name}" if name in BASELINES else f"methods.{name}"
            problems.append(f"{field}: needs {module.split('.')[0]}, which is not installed here; install it with "
                            f"`{install}`, or turn it off ({field}{'' if name in BASELINES else '.enabled'}: false)")
    return problems
