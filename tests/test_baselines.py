"""Peer baselines: trained on the run's splits by their own libraries, exported as small ONNX graphs
that the one runtime interface serves, and reported beside the methods marked as baselines."""
import json

import numpy as np
import pytest
from conftest import LABELS, tiny_texts

from distill.data import Dataset, Split
from edgedistill.recipe import load_recipe

pytest.importorskip("sklearn")


def tiny_data(n=150, binary=False, seed=0) -> Dataset:
    texts, labels = tiny_texts(n, seed)
    names = ["negative", "positive"] if binary else LABELS
    keep = [i for i, lb in enumerate(labels) if lb in names]
    texts, ids = [texts[i] for i in keep], np.array([names.index(labels[i]) for i in keep])
    a, b = int(len(texts) * 0.6), int(len(texts) * 0.8)
    return Dataset(Split(texts[:a], ids[:a]), Split(texts[a:b], ids[a:b]), Split(texts[b:], ids[b:]), names)


def recipe_for(tmp_path, teacher, **baselines):
    return load_recipe(overrides={"run": {"name": "bl", "runs_dir": str(tmp_path / "runs"),
                                          "results_dir": str(tmp_path / "results")},
                                  "teacher": {"model": str(teacher)},
                                  "baselines": {"tfidf": True, "model2vec": False, **baselines}})


def test_word_tokenizer_splits_as_scikit_learn():
    from sklearn.feature_extraction.text import CountVectorizer

    from distill.baselines import word_tokenizer

    tok = word_tokenizer()
    analyzer = CountVectorizer().build_analyzer()
    for text in ["I LOVE this-movie!! a b c", "ça va, 2 42 x_y  don't", "  ", "Ünïcode wörds ß"]:
        words = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))]
        assert words == analyzer(text)


@pytest.mark.parametrize("binary", [False, True])
def test_tfidf_baseline_is_selected_on_validation_and_exported(tmp_path, tiny_checkpoint, binary):
    from distill.baselines import collect_baselines, train_baselines
    from edgedistill.predictor import load_predictor

    data = tiny_data(binary=binary)
    recipe = recipe_for(tmp_path, tiny_checkpoint, tfidf_c=[0.01, 10.0])
    entry = train_baselines(recipe, data, log=lambda *_: None)["tfidf"]
    assert entry["kind"] == "baseline" and entry["baseline"] is True
    assert set(entry["selected"]["validation_macro_f1_by_C"]) == {"0.01", "10.0"}
    by_c = entry["selected"]["validation_macro_f1_by_C"]
    assert by_c[str(entry["selected"]["C"])] == max(by_c.values())
    assert entry["train_time_s"] > 0 and entry["train_cpu_s"] >= 0
    assert set(entry["test"]["per_class"]) == set(data.label_names) and entry["test"]["n"] == len(data.test)
    # The artifact: an ONNX graph served by the runtime interface, matching scikit-learn's probabilities.
    folder = recipe.run_dir / "artifacts" / "tfidf" / "onnx-fp32"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["baseline"] is True and manifest["format"] == "onnx" and manifest["parity"]["max_abs_diff"] < 1e-4
    assert manifest["params"] == entry["params"] > entry["selected"]["features"]
    rt = load_predictor(folder)
    assert rt.runtime == "onnxruntime" and rt.input_names == ("input_ids",)
    pred = rt.predict(list(data.test.texts))
    assert pred.probs.shape == (len(data.test), len(data.label_names))
    assert manifest["macro_f1"] == pytest.approx(entry["test"]["macro_f1"])
    # unseen words and empty texts score the intercept alone, as scikit-learn does
    assert np.isfinite(rt.predict(["zzz qqq", "!"]).probs).all()
    assert collect_baselines(recipe.run_dir)["tfidf"]["test"] == entry["test"]


def test_finished_baseline_is_kept_unless_its_settings_change(tmp_path, tiny_checkpoint):
    from distill.baselines import train_baselines

    data = tiny_data()
    recipe = recipe_for(tmp_path, tiny_checkpoint)
    first = train_baselines(recipe, data, log=lambda *_: None)["tfidf"]
    again = train_baselines(recipe, data, log=lambda *_: None)["tfidf"]
    assert again["provenance"] == first["provenance"]           # kept, not retrained
    changed = recipe_for(tmp_path, tiny_checkpoint, tfidf_c=[2.0])
    retrained = train_baselines(changed, data, log=lambda *_: None)["tfidf"]
    assert retrained["selected"]["C"] == 2.0


def test_model2vec_baseline_distils_the_pretrained_body_and_exports(tmp_path, tiny_checkpoint):
    pytest.importorskip("model2vec.distill")
    from distill.baselines import train_baselines
    from edgedistill.predictor import load_predictor

    data = tiny_data()
    recipe = recipe_for(tmp_path, tiny_checkpoint, tfidf=False, model2vec=True, model2vec_dims=8,
                        model2vec_max_epochs=3)
    entry = train_baselines(recipe, data, log=lambda *_: None)["model2vec"]
    assert entry["baseline"] is True and entry["selected"]["dims"] == 8
    folder = recipe.run_dir / "artifacts" / "model2vec" / "onnx-fp32"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parity"]["max_abs_diff"] < 1e-4 and manifest["parity"]["agreement_pct"] == 100.0
    rt = load_predictor(folder)
    assert rt.input_names == ("input_ids", "attention_mask")
    # no special tokens: model2vec pools the text's own tokens
    assert rt.encode(["good movie"])["input_ids"].shape == (1, 2)
    one, padded = rt.logits(["good movie"]), rt.forward(rt.encode(["good movie"], pad_to=8))
    np.testing.assert_allclose(one, padded, atol=1e-5)    # padding never changes the pooled vector


def test_model2vec_graph_and_library_read_the_same_tokens_of_long_texts(tmp_path, tiny_checkpoint):
    """Texts past the graph's max_length (model2vec's own, 512 tokens), with unknown words before the
    cut, and past model2vec's own 10 x max_length characters: the graph and the library's scores agree."""
    pytest.importorskip("model2vec.distill")
    from distill.baselines import train_baselines
    from edgedistill.predictor import load_predictor

    data = tiny_data()
    long = [" ".join(["zzz"] * 300 + ["good"] * 300 + ["bad"] * 300),   # 900 tokens, unknown ones first
            "good " + " " * 6000 + " bad" * 300,                         # 301 tokens over 7,200 characters
            " ".join(["awful", "movie"] * 400)]                          # 800 known tokens
    test = Split([*data.test.texts, *long], np.concatenate([data.test.labels, [0, 2, 0]]))
    data = Dataset(data.train, data.validation, test, data.label_names)
    recipe = recipe_for(tmp_path, tiny_checkpoint, tfidf=False, model2vec=True, model2vec_dims=8,
                        model2vec_max_epochs=3)
    entry = train_baselines(recipe, data, log=lambda *_: None)["model2vec"]
    folder = recipe.run_dir / "artifacts" / "model2vec" / "onnx-fp32"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parity"]["max_abs_diff"] < 1e-4 and manifest["parity"]["n"] == len(test.texts)
    assert manifest["max_length"] == entry["selected"]["max_length"] == 512
    assert manifest["truncation"].startswith("the first 512 tokens")
    rt = load_predictor(folder)
    assert rt.encode(long[:1])["input_ids"].shape == (1, 512)


def test_baselines_section_is_validated_with_the_rest(tmp_path):
    from edgedistill.configbase import ConfigError

    with pytest.raises(ConfigError) as err:
        load_recipe(overrides={"baselines": {"tfidf_c": [], "setfit_iterations": 0, "mystery": 1},
                               "train": {"epochs": 0}})
    text = str(err.value)
    for field in ("baselines.tfidf_c", "baselines.setfit_iterations", "baselines.mystery", "train.epochs"):
        assert field in text
    assert load_recipe().baselines.enabled() == ["tfidf", "model2vec"]


def test_setfit_needs_its_library_or_says_how_to_install_it(tmp_path, tiny_checkpoint):
    from distill.baselines import BaselineError, train_baselines

    recipe = recipe_for(tmp_path, tiny_checkpoint, tfidf=False, setfit=True, setfit_iterations=1)
    try:
        import setfit  # noqa: F401
    except ImportError:
        with pytest.raises(BaselineError, match="pip install"):
            train_baselines(recipe, tiny_data(), log=lambda *_: None)
        return
    entry = train_baselines(recipe, tiny_data(n=60), log=lambda *_: None)["setfit"]
    assert entry["baseline"] is True and "artifact" not in entry and entry["test"]["n"] > 0


def test_a_missing_library_is_named_before_anything_trains(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch):
    import distill.baselines as baselines
    from distill.pipeline import train_run
    from edgedistill.configbase import ConfigError

    monkeypatch.setitem(baselines.LIBRARIES, "setfit", ("no_such_library.sub", "pip install it"))
    monkeypatch.setitem(baselines.LIBRARIES, "static", ("no_such_library", "pip install it too"))
    recipe = load_recipe(overrides={
        "run": {"name": "bl", "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")},
        "data": {"source": "file", "path": str(tiny_csv), "text_column": "text", "label_column": "label"},
        "teacher": {"model": str(tiny_checkpoint)}, "baselines": {"setfit": True, "model2vec": False}})
    with pytest.raises(ConfigError) as err:
        train_run(recipe, progress=False)
    text = str(err.value)
    assert "baselines.setfit: needs no_such_library" in text and "`pip install it`" in text
    assert "methods.static: needs no_such_library" in text and "methods.static.enabled: false" in text
    assert not (tmp_path / "runs" / "bl" / "models").exists()         # not a teacher epoch was spent


def test_train_run_writes_baselines_into_metrics_and_results(tmp_path, tiny_checkpoint, tiny_csv):
    from distill.pipeline import train_run

    recipe = load_recipe(overrides={
        "run": {"name": "bl", "runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results")},
        "data": {"source": "file", "path": str(tiny_csv), "text_column": "text", "label_column": "label"},
        "teacher": {"model": str(tiny_checkpoint)}, "baselines": {"tfidf_c": [1.0]}})
    metrics = train_run(recipe, methods=["tfidf"], progress=False)
    assert metrics["models"] == {} and list(metrics["baselines"]) == ["tfidf"]
    saved = json.loads((recipe.results_path / "metrics.json").read_text())
    assert saved["baselines"]["tfidf"]["kind"] == "baseline"
    assert saved["baselines"]["tfidf"]["test"]["n"] == 12
    table = (recipe.results_path / "results.md").read_text()
    assert "| tfidf | scikit-learn | C 1.0" in table


def test_bench_times_a_baseline_through_the_runtime_interface_and_the_report_places_it(tmp_path):
    from test_bench_run import make_tiny_run

    from bench.launchers.process import run_bench
    from bench.schema import read_document
    from distill.baselines import train_baselines
    from distill.data import load_dataset
    from edgedistill.recipe import load_run_recipe

    run = make_tiny_run(tmp_path, methods=("teacher",))
    recipe = load_run_recipe(run)
    recipe.baselines.model2vec = False
    entry = train_baselines(recipe, load_dataset(recipe.data), log=lambda *_: None)["tfidf"]
    outcome = run_bench(run, results_dir=tmp_path / "results", progress=False)
    assert outcome.failures == []
    _, rows = read_document(tmp_path / "results" / "bench.json")
    mine = [r for r in rows if r.model == "tfidf"]
    assert {(r.artifact, r.runtime) for r in mine} == {("tfidf/onnx-fp32", "onnxruntime")}
    for r in mine:
        assert r.latency_p50_ms > 0 and r.latency_p99_ms >= r.latency_p50_ms and r.peak_rss_mb > 0
        assert r.size_mb > 0 and r.throughput_per_s > 0 or r.scenario == "latency"
        assert r.macro_f1 == pytest.approx(entry["test"]["macro_f1"])        # the same test split, same metrics
        assert r.f1_retained_pct is not None
    report = (tmp_path / "results" / "report.md").read_text()
    assert "Baseline **tfidf** (`tfidf/onnx-fp32`" in report
