"""The static student: model2vec's table of the fine-tuned teacher, trained by the one loop, exported as ONNX."""
import copy
import json

import numpy as np
import pytest
import torch

from edgedistill.configbase import ConfigError
from edgedistill.metadata import ArtifactError
from edgedistill.recipe import load_recipe

pytest.importorskip("model2vec.distill")


def test_static_classifier_pools_real_tokens_and_its_graph_matches(tmp_path):
    from distill.static import StaticClassifier

    torch.manual_seed(0)
    model = StaticClassifier(20, 6, ["a", "b", "c"], hidden=5, unk_token_id=1).eval()
    ids = torch.tensor([[4, 5, 1, 0], [7, 0, 0, 0], [1, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    with torch.no_grad():
        logits = model(ids, mask).logits
        # [UNK] and padding never count: the first text pools tokens 4 and 5 only
        assert torch.allclose(model.pool(ids, mask)[0], model.pool(ids[:, :2], mask[:, :2])[0])
        # a text of unknown tokens only pools to zeros, whose logits are the head's bias path
        assert torch.equal(model.pool(ids, mask)[2], torch.zeros(6))
    # the graph, a save_pretrained round trip and its INT8 graph (which really holds quantised ops)
    _graph_matches_and_reloads(model, ids, mask, logits, tmp_path)
    ops = {n.op_type for n in __import__("onnx").load(str(tmp_path / "int8.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops or "DequantizeLinear" in ops


def test_static_recipe_is_checked_up_front():
    with pytest.raises(ConfigError) as err:
        load_recipe(overrides={"methods": {"static": {"layers": "odd", "static_dims": 1,
                                                      "loss": {"attention": 1.0}}}})
    text = str(err.value)
    assert "methods.static: a static student keeps no transformer layers" in text
    assert "static_dims: 1" in text and "methods.static.loss: attention need transformer layers" in text
    # its own logit-only loss by default, whatever the recipe's loss section says
    r = load_recipe(overrides={"loss": {"hidden": 1.0}})
    assert r.methods["static"].loss.hidden == 0 and r.methods["static"].enabled


def test_static_student_trains_on_labelled_and_teacher_labelled_texts_and_exports(tmp_path, tiny_checkpoint,
                                                                                    tiny_csv, capsys):
    from test_train import tiny_recipe

    from distill.pipeline import train_run
    from edgedistill.predictor import load_predictor
    from export.config import load_export_config
    from export.pipeline import export_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 20},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 3}},
                         baselines={"tfidf": False, "model2vec": False})
    metrics = train_run(recipe, methods=["static"], progress=False)
    m = metrics["models"]["static"]
    assert m["static"]["dims"] == 8 and m["static"]["vocabulary"] > 10 and m["layers"] is None
    assert m["train_examples"] == m["labelled_examples"] + 20          # the teacher-labelled pool is used
    assert m["loss"]["kl"] > 0 and m["loss"]["hidden"] == 0 and len(m["history"]["epochs"]) == 3
    assert m["compute"]["teacher_forward_flops"] > 0                    # the cached teacher pass
    folder = recipe.run_dir / "models" / "static"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "edgedistill-static"
    rt = load_predictor(folder)
    assert rt.runtime == "pytorch" and rt.input_names == ("input_ids", "attention_mask")
    tok = json.loads((folder / "tokenizer.json").read_text())
    post = tok["post_processor"]                                       # no [CLS] / [SEP] added
    assert post is None or (not post["special_tokens"] and all("Sequence" in p for p in post["single"]))
    cfg = load_export_config({"variants": ["onnx-fp32", "onnx-int8-dynamic", "openvino-int8"],
                              "models": ["static"], "speed_check_blocks": 0, "parity_samples": 12})
    rows = export_run(recipe.run_dir, cfg, recipe=recipe)
    assert [r["artifact"] for r in rows] == ["static/onnx-fp32", "static/onnx-int8-dynamic"]
    capsys.readouterr()
    # Run again: both are kept. The static INT8 artifact is never ranked block by block, so its
    # missing ranking is no reason to build it again.
    export_run(recipe.run_dir, cfg, recipe=recipe)
    out = capsys.readouterr().out
    assert "static/onnx-fp32: kept" in out and "static/onnx-int8-dynamic: kept" in out
    assert rows[0]["parity"]["max_abs_diff"] < 1e-4
    onnx_rt = load_predictor(recipe.run_dir / "artifacts" / "static" / "onnx-fp32")
    texts = ["good movie", "bad awful day", "zzz"]
    np.testing.assert_allclose(onnx_rt.logits(texts), rt.logits(texts), atol=1e-4)
    # numpy serves the same folder from its model2vec form: the same logits, padded batch or one text,
    # a text of unknown tokens only (pools to zeros) and an empty one included
    np_rt = load_predictor(recipe.run_dir / "artifacts" / "static" / "onnx-fp32", runtime="numpy", threads=1)
    assert np_rt.runtime == "numpy" and np_rt.describe()["size_bytes"] > 0
    texts += ["", "\u2603\u2603", "good " * 100]
    np.testing.assert_allclose(np_rt.logits(texts), rt.logits(texts), atol=1e-5)
    np.testing.assert_allclose(np_rt.forward(np_rt.encode(texts[:1])), rt.logits(texts[:1]), atol=1e-5)
    assert np_rt.predict(texts).labels == onnx_rt.predict(texts).labels
    with pytest.raises(ArtifactError, match="numpy serves a static student's FP32 artifact"):
        load_predictor(recipe.run_dir / "artifacts" / "static" / "onnx-int8-dynamic", runtime="numpy")


def _hide_the_test_split(monkeypatch):
    """load_dataset without the test split's texts: an experiment that reads them fails."""
    import distill.data as data_module

    real = data_module.load_dataset

    def no_test(cfg):
        d = real(cfg)
        return data_module.Dataset(d.train, d.validation, data_module.Split([], d.test.labels[:0]), d.label_names,
                                   d.info, d.unused_train)

    monkeypatch.setattr(data_module, "load_dataset", no_test)


def _pool(tmp_path):
    path = tmp_path / "pool.txt"     # in-domain texts never seen in validation or test (a number makes each unique)
    path.write_text("\n".join(f"{w} movie number {i}" for i, w in enumerate(["good", "bad", "fine", "sad"] * 10)))
    return path


def test_the_static_model_runs_in_bf16_and_fp16_as_the_pytorch_bench_runs_it():
    import torch

    from edgedistill.static_model import StaticClassifier

    model = StaticClassifier(50, 8, ["a", "b", "c"], hidden=16, unk_token_id=1).eval()
    ids = torch.tensor([[5, 1, 7, 0], [9, 9, 2, 3], [1, 0, 0, 0]])      # the last: no real token, zeros pooled
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    reference = model(ids, mask).logits
    for dtype in (torch.bfloat16, torch.float16):
        logits = model.to(dtype)(ids, mask).logits
        assert logits.dtype == dtype
        assert torch.allclose(logits.float(), reference, atol=0.05)


def test_static_ablation_adds_one_step_at_a_time_and_chooses_on_validation(tmp_path, tiny_checkpoint, tiny_csv):
    from static_ablation import run_ablation
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 20},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2}},
                         baselines={"tfidf": False, "model2vec": False})
    train_run(recipe, methods=["teacher"], progress=False)
    variants = {"pretrained-frozen-ce": ("pretrained", False, "ce", False),
                "finetuned-trained-kd-pool": ("finetuned", True, "kd", True)}
    out = tmp_path / "ablation"
    result = run_ablation(recipe.run_dir, variants, progress=False, out_dir=out)
    frozen, shipped = result["variants"]["pretrained-frozen-ce"], result["variants"]["finetuned-trained-kd-pool"]
    assert shipped["train_texts"] == frozen["train_texts"] + 20            # the teacher-labelled pool
    assert frozen["params_trainable"] < shipped["params_trainable"]        # the frozen table is not trained
    assert result["best"] == max(result["variants"], key=lambda k: result["variants"][k]["validation_macro_f1"])
    assert result["model2vec_baseline"] is None                             # the baseline did not train here
    assert "| finetuned-trained-kd-pool | finetuned | trained | KD | yes |" in (out / "tiny.md").read_text()


def test_static_pool_judges_on_the_held_out_validation_half_and_never_reads_test(tmp_path, tiny_checkpoint,
                                                                                  tiny_csv, monkeypatch):
    from static_pool import run_experiment, validation_halves
    from test_train import tiny_recipe

    from distill.data import load_dataset
    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 10},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2}},
                         baselines={"tfidf": False, "model2vec": False})
    train_run(recipe, methods=["teacher"], progress=False)
    data = load_dataset(recipe.data)
    judged = validation_halves(data, 0)
    halves = sorted(judged.validation.texts + judged.test.texts)
    assert halves == sorted(data.validation.texts) and not set(judged.validation.texts) & set(judged.test.texts)
    assert abs(len(judged.validation) - len(judged.test)) <= 1

    _hide_the_test_split(monkeypatch)
    out = tmp_path / "pool"
    result = run_experiment(recipe.run_dir, {"trained-pool-recipe": (True, None), "frozen-pool-30": (False, 30)},
                            progress=False, out_dir=out)
    recipe_pool, large = result["variants"]["trained-pool-recipe"], result["variants"]["frozen-pool-30"]
    assert recipe_pool["pool"] == 10 and large["pool"] == 30 and large["train_texts"] == recipe_pool["train_texts"] + 20
    assert result["best"] == max(result["variants"], key=lambda k: result["variants"][k]["judged_macro_f1"])
    assert "| frozen-pool-30 | frozen | 30 |" in (out / "tiny.md").read_text()


def test_static_recipe_experiment_judges_every_variant_on_half_b_over_seeds(tmp_path, tiny_checkpoint, tiny_csv,
                                                                            monkeypatch):
    from static_recipe import run_experiment
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 10},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2, "static_pool": 15,
                                             "static_select_texts": 10}},
                         baselines={"tfidf": False, "model2vec": False})
    train_run(recipe, methods=["teacher"], progress=False)
    _hide_the_test_split(monkeypatch)
    out = tmp_path / "recipe"
    variants = {"shipped": {}, "select-pool-T4": {"static_select": "pool", "loss": {"temperature": 4.0}},
                "words": {"static_vocabulary": 5}}
    result = run_experiment(recipe.run_dir, [1, 2], variants, progress=False, out_dir=out)
    shipped, pool = result["variants"]["shipped"], result["variants"]["select-pool-T4"]
    # a run asked for whole words records how many its texts gave (the tiny teacher's vocabulary splits none)
    assert [r["words_added"] for r in result["variants"]["words"]["runs"]] == [0, 0]
    assert "words_added" not in shipped["runs"][0]
    assert shipped["train_texts"] == pool["train_texts"] and pool["held_out_to_choose"] == 10
    assert [r["seed"] for r in pool["runs"]] == [1, 2] and all(r["select_agreement"] is not None for r in pool["runs"])
    assert shipped["runs"][0]["select_agreement"] is None
    assert shipped["judged_min"] <= shipped["judged_mean"] <= shipped["judged_max"]
    low, high = result["teacher_half_b_interval"]
    assert 0 <= low <= result["teacher_half_b_macro_f1"] <= high <= 1
    # per seed, the variant against shipped on the same half-B texts: a paired interval around its gain
    for run, base in zip(pool["runs"], shipped["runs"], strict=True):
        gain, lo, hi = run["vs_shipped_pts"]
        assert lo <= gain <= hi and abs(gain - 100 * (run["judged_macro_f1"] - base["judged_macro_f1"])) < 1e-6
    assert "vs_shipped_pts" not in shipped["runs"][0]
    assert result["best"] == max(result["variants"], key=lambda k: result["variants"][k]["judged_mean"])
    assert "| select-pool-T4 | " in (out / "tiny.md").read_text() and result["seeds"] == [1, 2]
    # Run again with one more seed: the finished (variant, seed) runs are kept, only seed 3 trains.
    import distill.train as train_module

    real_train, trained = train_module.train, []
    monkeypatch.setattr(train_module, "train", lambda setup, data, max_length, seed, **k: trained.append(seed) or
                        real_train(setup, data, max_length, seed, **k))
    again = run_experiment(recipe.run_dir, [1, 2, 3], variants, progress=False, out_dir=out)
    assert trained == [3, 3, 3] and again["seeds"] == [1, 2, 3]
    assert again["variants"]["shipped"]["runs"][:2] == shipped["runs"]
    # One variant, one new seed: it alone trains, and the record keeps every earlier variant and seed.
    trained.clear()
    more = run_experiment(recipe.run_dir, [4], {"shipped": {}}, progress=False, out_dir=out)
    assert trained == [4] and more["seeds"] == [1, 2, 3]
    assert [r["seed"] for r in more["variants"]["shipped"]["runs"]] == [1, 2, 3, 4]
    assert [r["seed"] for r in more["variants"]["select-pool-T4"]["runs"]] == [1, 2, 3]
    assert "| select-pool-T4 | 1, 2, 3 |" in (out / "tiny.md").read_text()
    with pytest.raises(ConfigError, match="variant bad: static_table_lr_scale: 2 must be in"):
        run_experiment(recipe.run_dir, [1], {"bad": {"static_table_lr_scale": 2.0}}, progress=False, out_dir=out)


def test_static_student_takes_its_own_pool_and_can_keep_its_table_frozen(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 10},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2, "static_pool": 30,
                                             "static_train_table": False},
                                  "odd": {"epochs": 1}},
                         baselines={"tfidf": False, "model2vec": False})
    metrics = train_run(recipe, methods=["odd", "static"], progress=False)
    static, odd = metrics["models"]["static"], metrics["models"]["odd"]
    assert odd["train_examples"] == odd["labelled_examples"] + 10                # the students' pool
    assert static["train_examples"] == static["labelled_examples"] + 30          # its own, larger one
    assert static["teacher_labelled_pool"]["unlabeled"] == 30 and static["static"]["table"] == "frozen"
    assert static["params_trainable"] == 8 * 16 + 16 + 16 * 3 + 3                 # the head alone


def test_static_pool_is_checked_with_the_recipe():
    with pytest.raises(ConfigError, match="methods.static.static_pool: 0 must be a positive count"):
        load_recipe(overrides={"methods": {"static": {"static_pool": 0}}})


def test_held_out_pool_texts_choose_the_static_epoch_and_never_train(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 10},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 3, "static_pool": 20,
                                             "static_select": "pool", "static_select_texts": 10,
                                             "early_stopping_patience": None}},
                         baselines={"tfidf": False, "model2vec": False})
    metrics = train_run(recipe, methods=["static"], progress=False)
    m = metrics["models"]["static"]
    assert m["train_examples"] == m["labelled_examples"] + 20        # the 10 held-out texts are not trained on
    assert m["teacher_labelled_pool"]["held_out_to_choose_the_epoch"] == 10
    assert m["static"]["epoch_chosen_on"] == "teacher agreement on held-out pool texts"
    epochs = m["history"]["epochs"]
    assert len(epochs) == 3 and all(0 <= e["select_agreement"] <= 1 for e in epochs)
    top = max(e["select_macro_f1"] for e in epochs)        # equal scores are told apart by the loss
    assert m["best_epoch"] in [e["epoch"] for e in epochs if e["select_macro_f1"] == top]


def test_held_out_selection_texts_are_drawn_from_the_pool_only(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.data import load_dataset
    from distill.errors import RunError
    from distill.pipeline import pool_dataset
    from distill.unlabeled import UNLABELED

    # augmented copies of the labelled texts are unlabelled too, and must never be held out to choose
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, data={"unlabeled": str(_pool(tmp_path)),
                                                                     "augment_copies": 2})
    data = load_dataset(recipe.data)
    pooled, info = pool_dataset(recipe, data, 15, 10)
    assert info["augmented"] == 2 * len(data.train)
    pool_texts = set(_pool(tmp_path).read_text().splitlines())
    assert set(pooled.selection.texts) <= pool_texts and not set(pooled.selection.texts) & set(pooled.train.texts)
    assert (pooled.train.labels == UNLABELED).sum() == 15 + info["augmented"]
    assert info["unlabeled"] == 15 and info["held_out_to_choose_the_epoch"] == 10
    assert set(data.train.texts) <= set(pooled.train.texts)               # every labelled text still trains
    with pytest.raises(RunError, match="holds out 30 teacher-labelled texts, but the pool has only 40"):
        pool_dataset(recipe, data, 10, 30)


def test_the_static_table_can_take_a_smaller_step_than_its_head():
    from distill.static import StaticClassifier
    from distill.train import param_groups
    from edgedistill.recipe import TrainConfig

    model = StaticClassifier(50, 8, ["a", "b"], hidden=4)
    cfg = TrainConfig(lr=1e-2, weight_decay=0.01)
    groups = param_groups(model, cfg, {"embeddings.": 0.1})
    by_lr = {(g["lr"], g["weight_decay"]): sum(p.numel() for p in g["params"]) for g in groups}
    assert by_lr == {(1e-2, 0.01): 8 * 4 + 4 * 2, (1e-3, 0.01): 50 * 8, (1e-2, 0.0): 4 + 2}
    # without scales: the two groups every method always had, decayed first
    plain = param_groups(model, cfg, {})
    assert [(g["lr"], g["weight_decay"]) for g in plain] == [(1e-2, 0.01), (1e-2, 0.0)]


def test_static_selection_and_table_step_are_checked_with_the_recipe():
    with pytest.raises(ConfigError) as err:
        load_recipe(overrides={"methods": {"static": {"static_select": "test", "static_table_lr_scale": 0,
                                                      "static_select_texts": 0}}})
    text = str(err.value)
    assert "static_select: 'test' must be one of validation, pool" in text
    assert "static_table_lr_scale: 0 must be in (0, 1]" in text and "static_select_texts: 0 must be >= 1" in text
    with pytest.raises(ConfigError, match="static_select: pool holds out teacher-labelled texts of the unlabelled "
                                          "pool, and data.unlabeled is not set"):
        load_recipe(overrides={"data": {"unlabeled": None}, "methods": {"static": {"static_select": "pool"}}})


def test_a_static_setting_changes_the_static_fingerprint_only():
    from dataclasses import replace

    from distill.pipeline import method_fingerprint

    recipe = load_recipe()
    changed = replace(recipe, methods={**recipe.methods, **{
        name: replace(m, static_pool=123, static_train_table=False, static_select="pool", static_select_texts=500,
                      static_table_lr_scale=0.1, static_bigrams=4096,
                      static_augment_copies=2, static_weight_average=0.9,
                      static_soup=2, static_pooling="mean-max") for name, m in recipe.methods.items()}})
    for name in ("teacher", "odd", "lora", "hybrid"):
        assert method_fingerprint(changed, name) == method_fingerprint(recipe, name)
    assert method_fingerprint(changed, "static") != method_fingerprint(recipe, "static")


def test_a_static_option_left_off_keeps_the_static_fingerprint():
    """Rows trained before an option existed stay current while it is off; on, it is a new student."""
    from dataclasses import fields, replace

    from distill.pipeline import method_fingerprint
    from edgedistill.recipe import STATIC_OFF, MethodConfig

    # every static setting is one of the first four or names its value that changes nothing
    first = {"static_dims", "static_hidden", "static_pool", "static_train_table"}
    assert {f.name for f in fields(MethodConfig) if f.name.startswith("static_")} == first | set(STATIC_OFF)
    recipe = load_recipe()
    static = recipe.methods["static"]
    assert all(getattr(static, k) == v for k, v in STATIC_OFF.items())       # the quickstart sets every one off
    base = method_fingerprint(recipe, "static")
    for key, off in STATIC_OFF.items():
        on = "other" if isinstance(off, str) else off + 1
        turned = replace(recipe, methods={**recipe.methods, "static": replace(static, **{key: on})})
        assert method_fingerprint(turned, "static") != base, key
    # the fingerprint leaves out what is off, so it is what it was before those options were added
    import hashlib
    import json

    from distill.pipeline import _affecting

    before = _affecting(recipe, "static")
    assert not set(STATIC_OFF) & set(before["method"]) and "static_dims" in before["method"]
    assert base == hashlib.sha256(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()


def test_no_progress_silences_model2vec_s_own_encoding_bar(tiny_checkpoint, capfd):
    from distill.static import build_static_student

    build_static_student(tiny_checkpoint, ["a", "b", "c"], 8, 16, progress=True)
    assert "Encoding tokens" in capfd.readouterr().err        # model2vec draws it by itself
    build_static_student(tiny_checkpoint, ["a", "b", "c"], 8, 16, progress=False)
    assert "Encoding tokens" not in capfd.readouterr().err
    import model2vec.distill.inference as inference
    from tqdm import tqdm
    assert inference.tqdm is tqdm                              # the library is left as it was


def test_hashed_bigram_rows_add_word_order_and_the_graph_computes_the_same_rows(tmp_path):
    import onnxruntime as ort

    from distill.static import StaticClassifier
    from edgedistill import graphs
    from export.convert import static_onnx

    torch.manual_seed(0)
    model = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1, bigram_buckets=11).eval()
    plain = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("bigrams.")})
    ids = torch.tensor([[4, 5, 1, 9, 0], [5, 4, 0, 0, 0], [7, 0, 0, 0, 0], [4, 5, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    with torch.no_grad():
        # the rows start at zero: the untrained student pools exactly as the unigram table does
        assert torch.equal(model(ids, mask).logits, plain(ids, mask).logits)
        torch.nn.init.normal_(model.bigrams.weight)
        logits = model(ids, mask).logits
        # word order now counts: "4 5" and "5 4" differ, where a mean of token rows cannot tell them apart
        assert torch.equal(plain.pool(ids, mask)[1], plain.pool(ids, mask)[3])
        assert not torch.allclose(model.pool(ids, mask)[1], model.pool(ids, mask)[3])
        # [UNK] breaks pairs: the first text pools the pair (4, 5) only, as "4 5" alone with 9's row added
        expected = model.embeddings.weight[[4, 5, 9]].sum(0) + model.bigrams.weight[(4 * 1_000_003 + 5) % 11]
        assert torch.allclose(model.pool(ids, mask)[0], torch.nn.functional.normalize(expected, dim=0), atol=1e-6)
    path = static_onnx(model, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0],
                               logits.numpy(), atol=1e-5)
    one = {"input_ids": ids[2:3, :1].numpy(), "attention_mask": mask[2:3, :1].numpy()}   # no pair at all
    np.testing.assert_allclose(sess.run(None, one)[0], logits[2:3].numpy(), atol=1e-5)
    model.save_pretrained(tmp_path / "ckpt")
    again = StaticClassifier.load(tmp_path / "ckpt")
    assert again.config.bigram_buckets == 11
    with torch.no_grad():
        assert torch.equal(again(ids, mask).logits, logits)
    graphs.quantize_int8(path, tmp_path / "int8.onnx")
    q = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    out = q.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert (out.argmax(1) == logits.numpy().argmax(1)).mean() >= 0.75
    with pytest.raises(ConfigError, match="static_bigrams: -1 must be >= 0"):
        load_recipe(overrides={"methods": {"static": {"static_bigrams": -1}}})


def test_word_dropout_drops_tokens_in_training_only_and_is_checked_with_the_recipe():
    from distill.static import StaticClassifier

    torch.manual_seed(0)
    model = StaticClassifier(40, 6, ["a", "b"], hidden=0)
    model.token_dropout = 0.5
    ids = torch.arange(2, 34).reshape(1, 32)
    mask = torch.ones_like(ids)
    model.eval()
    with torch.no_grad():
        served = model.pool(ids, mask)
        assert torch.equal(served, model.pool(ids, mask))          # inference pools every token, every time
        model.train()
        trained = [model.pool(ids, mask) for _ in range(2)]
    assert not torch.allclose(trained[0], served) and not torch.allclose(trained[0], trained[1])
    with pytest.raises(ConfigError, match=r"static_token_dropout: 1 must be in \[0, 1\)"):
        load_recipe(overrides={"methods": {"static": {"static_token_dropout": 1.0}}})


def test_static_recipe_can_judge_on_the_validation_texts_beyond_the_cap(tmp_path, tiny_checkpoint, tiny_csv):
    from static_recipe import validation_rest
    from test_train import tiny_recipe

    from distill.data import load_dataset

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, data={"max_validation": 4})
    data = load_dataset(recipe.data)
    judged = validation_rest(data, recipe)
    # the capped validation split chooses, as in the pipeline; the texts the cap left out judge, and no
    # text is in both; the test split is never part of it
    assert judged.validation.texts == data.validation.texts and len(judged.validation) == 4
    assert len(judged.test) > 0 and not set(judged.test.texts) & set(data.validation.texts)
    assert not set(judged.test.texts) & set(data.test.texts)
    uncapped = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv)
    with pytest.raises(ConfigError, match="no texts beyond data.max_validation"):
        validation_rest(load_dataset(uncapped.data), uncapped)


def test_static_noisy_copies_are_teacher_labelled_and_never_copy_a_text_that_chooses(tmp_path, tiny_checkpoint,
                                                                                      tiny_csv):
    from test_train import tiny_recipe

    from distill.data import load_dataset
    from distill.pipeline import own_pool_data, train_run
    from distill.unlabeled import UNLABELED

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, data={"unlabeled": str(_pool(tmp_path))},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 1, "static_pool": 15,
                                             "static_select": "pool", "static_select_texts": 10,
                                             "static_augment_copies": 2}},
                         baselines={"tfidf": False, "model2vec": False})
    data = load_dataset(recipe.data)
    pooled, info = own_pool_data(recipe, ["static"], data)["static"]
    trained = len(data.train) + 15
    assert info["static_augmented"] == 2 * trained
    assert len(pooled.train) == 3 * trained
    assert (pooled.train.labels[trained:] == UNLABELED).all()          # the copies carry the teacher's labels only
    copies = pooled.train.texts[trained:]
    assert copies != pooled.train.texts[:trained] * 2                     # noisy, not repeated
    # a copy changes words, never their number: each lines up with a trained text, none with a held-out one
    originals = [t.split() for t in pooled.train.texts[:trained]]
    assert all(len(c.split()) == len(o) for c, o in zip(copies, originals * 2, strict=True))
    assert not set(pooled.selection.texts) & set(pooled.train.texts)
    metrics = train_run(recipe, methods=["static"], progress=False)
    assert metrics["models"]["static"]["train_examples"] == 3 * trained
    with pytest.raises(ConfigError, match="static_augment_copies: -1 must be >= 0"):
        load_recipe(overrides={"methods": {"static": {"static_augment_copies": -1}}})


def test_the_teacher_s_sentence_vectors_pull_the_static_student_in_training_only(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.losses import DistillationLoss
    from distill.pipeline import train_run
    from distill.static import StaticClassifier
    from edgedistill.recipe import LossConfig

    loss = DistillationLoss(LossConfig(ce=1.0, kl=1.0), vectors=0.5)
    logits, labels = torch.zeros(2, 3), torch.tensor([0, -1])
    same = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    total, parts = loss(logits, labels, logits, student_vectors=same, teacher_vectors=same * 3)
    assert parts["vectors"] == pytest.approx(0.0, abs=1e-6)            # cosine: the scale is free
    total_far, parts = loss(logits, labels, logits, student_vectors=same, teacher_vectors=-same)
    assert parts["vectors"] == pytest.approx(2.0) and float(total_far - total) == pytest.approx(0.5 * 2.0)

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2,
                                             "static_teacher_vectors": 0.5}},
                         baselines={"tfidf": False, "model2vec": False})
    metrics = train_run(recipe, methods=["static"], progress=False)
    m = metrics["models"]["static"]
    assert m["static"]["teacher_vectors"] == 0.5
    assert any("vectors" in step for step in m["history"]["steps"])
    # the map to the teacher's width is not part of the student: the checkpoint loads as a plain static student
    model = StaticClassifier.load(recipe.run_dir / "models" / "static")
    assert model.teacher_map is None
    out = model(torch.tensor([[5, 6, 7]]))
    assert out.vectors is None and out.logits.shape == (1, model.config.num_labels)
    with pytest.raises(ConfigError, match="static_teacher_vectors: -1 must be >= 0"):
        load_recipe(overrides={"methods": {"static": {"static_teacher_vectors": -1}}})


def test_a_low_rank_table_update_trains_few_entries_and_saves_as_a_plain_table(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.pipeline import train_run
    from distill.static import StaticClassifier

    model = StaticClassifier(50, 8, ["a", "b"], hidden=4)
    ids = torch.tensor([[3, 4, 5], [6, 0, 0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    before = model(ids, mask).logits
    model.add_low_rank_update(2)
    assert torch.equal(model(ids, mask).logits, before)                    # a zero update at the start
    assert not model.embeddings.weight.requires_grad and model.table_a.weight.requires_grad
    with torch.no_grad():
        model.table_a.weight.normal_()
    model.save_pretrained(tmp_path / "saved")
    np.testing.assert_allclose(StaticClassifier.load(tmp_path / "saved")(ids, mask).logits.detach(),
                               model.eval()(ids, mask).logits.detach(), atol=1e-5)   # merged into the table

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 1,
                                             "static_table_rank": 2}},
                         baselines={"tfidf": False, "model2vec": False})
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    saved = StaticClassifier.load(recipe.run_dir / "models" / "static")
    vocab, labels = m["static"]["vocabulary"], saved.config.num_labels
    assert m["static"]["table"] == "rank-2 update" and saved.table_a is None
    # the factors and the head train; the table itself does not, and the saved count is the plain student's
    assert m["params_trainable"] == vocab * 2 + 2 * 8 + (8 * 16 + 16) + (16 * labels + labels)
    assert m["params_total"] == sum(p.numel() for p in saved.parameters())
    with pytest.raises(ConfigError, match="static_table_rank: a low-rank update trains the table"):
        load_recipe(overrides={"methods": {"static": {"static_table_rank": 4, "static_train_table": False}}})


def test_the_static_student_keeps_the_moving_average_of_its_weights(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch):
    from test_train import tiny_recipe
    from torch.optim.swa_utils import AveragedModel

    from distill.pipeline import train_run
    from distill.static import StaticClassifier

    iterates = []
    update = AveragedModel.update_parameters

    def spy(self, model):      # the trained weights after each optimizer step, as the average sees them
        iterates.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        update(self, model)

    monkeypatch.setattr(AveragedModel, "update_parameters", spy)
    decay = 0.6
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 1,
                                             "static_weight_average": decay}},
                         baselines={"tfidf": False, "model2vec": False})
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    assert len(iterates) == m["compute"]["optimizer_steps"] > 2 and m["static"]["weight_average"] == decay
    expected = dict(iterates[0])
    for weights in iterates[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * weights[k] for k in expected}
    saved = StaticClassifier.load(recipe.run_dir / "models" / "static").state_dict()
    assert saved.keys() == expected.keys()
    for k in saved:        # the average is kept, not the last step's weights
        np.testing.assert_allclose(saved[k].numpy(), expected[k].numpy(), atol=1e-6)
    assert not torch.allclose(saved["head.0.weight"], iterates[-1]["head.0.weight"])
    with pytest.raises(ConfigError, match=r"static_weight_average: 1 must be in \[0, 1\)"):
        load_recipe(overrides={"methods": {"static": {"static_weight_average": 1.0}}})


def _spy_on_members(monkeypatch):
    """Record every static member's seed and start, and a copy of the model it keeps, as ``train`` runs them
    (a soup's or ensemble's members are the calls whose setup combines nothing)."""
    import distill.train as train_module

    starts, kept = [], []
    train = train_module.train

    def spy(setup, data, max_length, seed, *args, **kwargs):
        member = setup.name == "static" and setup.soup == 1 and setup.ensemble == 1
        if member:
            starts.append((seed, {k: v.detach().clone() for k, v in setup.model.state_dict().items()}))
        out = train(setup, data, max_length, seed, *args, **kwargs)
        if member:
            kept.append(copy.deepcopy(out.model).eval())
        return out

    monkeypatch.setattr(train_module, "train", spy)
    return starts, kept


def test_a_static_soup_averages_members_that_start_alike(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch):
    from test_train import tiny_recipe

    from distill.pipeline import train_run
    from distill.static import StaticClassifier

    starts, models = _spy_on_members(monkeypatch)
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2, "static_soup": 3}},
                         baselines={"tfidf": False, "model2vec": False})
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    kept = [model.state_dict() for model in models]
    assert [seed for seed, _ in starts] == [recipe.run.seed + i for i in range(3)] and len(kept) == 3
    for _, start in starts[1:]:                      # the same start, their own batch order
        assert all(torch.equal(start[k], starts[0][1][k]) for k in start)
    assert not torch.allclose(kept[0]["head.0.weight"], kept[1]["head.0.weight"])
    saved = StaticClassifier.load(recipe.run_dir / "models" / "static").state_dict()
    for k in saved:
        np.testing.assert_allclose(saved[k].numpy(), torch.stack([w[k] for w in kept]).mean(dim=0).numpy(),
                                   atol=1e-6)
    members = m["history"]["members"]
    assert [x["seed"] for x in members] == [recipe.run.seed + i for i in range(3)] and m["static"]["soup"] == 3
    assert m["compute"]["epochs_run"] == sum(len(x["history"]["epochs"]) for x in members)
    with pytest.raises(ConfigError, match=r"static_soup: 0 must be >= 1"):
        load_recipe(overrides={"methods": {"static": {"static_soup": 0}}})


@pytest.mark.parametrize("hidden, bigrams", [(16, 0), (0, 0), (16, 32)])
def test_stacked_static_students_give_the_mean_of_their_logits(tmp_path, hidden, bigrams):
    import onnxruntime as ort

    from distill.static import StaticClassifier
    from export.convert import static_onnx

    torch.manual_seed(0)
    students = []
    for _ in range(3):
        s = StaticClassifier(50, 8, ["a", "b", "c"], hidden, unk_token_id=1, bigram_buckets=bigrams)
        with torch.no_grad():
            for p in s.parameters():
                p.normal_()
        students.append(s.eval())
    stacked = StaticClassifier.stack(students)
    ids = torch.randint(0, 50, (5, 7))
    ids[0, 2] = 1                                                       # an unknown token, dropped
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0                                                     # padding
    with torch.no_grad():
        expected = torch.stack([s(ids, mask).logits for s in students]).mean(dim=0)
        np.testing.assert_allclose(stacked(ids, mask).logits.numpy(), expected.numpy(), atol=1e-5)
        stacked.save_pretrained(tmp_path / "stack")
        loaded = StaticClassifier.load(tmp_path / "stack")
        assert loaded.config.members == 3 and loaded.embeddings.weight.shape == (50, 24)
        np.testing.assert_allclose(loaded(ids, mask).logits.numpy(), expected.numpy(), atol=1e-5)
    # its ONNX graph normalises each member's columns on its own, as the model does
    path = static_onnx(stacked, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0],
                               expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        StaticClassifier.stack([students[0], StaticClassifier(50, 4, ["a", "b", "c"], hidden)])


def test_a_static_ensemble_stacks_members_trained_apart(tmp_path, tiny_checkpoint, tiny_csv, monkeypatch):
    from test_train import tiny_recipe

    from distill.pipeline import train_run
    from distill.static import StaticClassifier
    from edgedistill.layout import MODEL2VEC_FILES
    from edgedistill.predictor import load_predictor
    from export.config import load_export_config
    from export.pipeline import export_run

    starts, kept = _spy_on_members(monkeypatch)
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2, "static_ensemble": 2}},
                         baselines={"tfidf": False, "model2vec": False})
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    assert [seed for seed, _ in starts] == [recipe.run.seed, recipe.run.seed + 1] and len(kept) == 2
    # the same table, each head from its own seed
    assert torch.equal(starts[0][1]["embeddings.weight"], starts[1][1]["embeddings.weight"])
    assert not torch.equal(starts[0][1]["head.0.weight"], starts[1][1]["head.0.weight"])
    saved = StaticClassifier.load(recipe.run_dir / "models" / "static")
    assert saved.config.members == 2 and m["static"]["ensemble"] == 2
    assert m["params_total"] == sum(p.numel() for p in saved.parameters())
    ids = torch.randint(0, saved.config.vocab_size, (4, 6))
    with torch.no_grad():
        expected = torch.stack([s(ids).logits for s in kept]).mean(dim=0)
        np.testing.assert_allclose(saved(ids).logits.numpy(), expected.numpy(), atol=1e-5)
    assert [x["seed"] for x in m["history"]["members"]] == [recipe.run.seed, recipe.run.seed + 1]
    # it exports as its ONNX graph alone: model2vec normalises the whole pooled vector, not each member's
    rows = export_run(recipe.run_dir, load_export_config({"variants": ["onnx-fp32"], "models": ["static"],
                                                          "speed_check_blocks": 0, "parity_samples": 12}),
                      recipe=recipe)
    assert [r["artifact"] for r in rows] == ["static/onnx-fp32"] and rows[0]["parity"]["max_abs_diff"] < 1e-4
    folder = recipe.run_dir / "artifacts" / "static" / "onnx-fp32"
    assert not any((folder / name).exists() for name in MODEL2VEC_FILES)
    texts = ["good movie", "bad awful day", "zzz"]
    np.testing.assert_allclose(load_predictor(folder).logits(texts),
                               load_predictor(recipe.run_dir / "models" / "static").logits(texts), atol=1e-4)
    with pytest.raises(ConfigError, match=r"static_ensemble: 0 must be >= 1"):
        load_recipe(overrides={"methods": {"static": {"static_ensemble": 0}}})
    with pytest.raises(ConfigError, match="choose one way to combine"):
        load_recipe(overrides={"methods": {"static": {"static_ensemble": 2, "static_soup": 2}}})


def test_a_token_s_in_context_mean_moves_its_alone_vector_by_its_count():
    from distill.static import TokenContext

    alone = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [5.0, 5.0]], dtype=np.float32)
    # rows matched by text, whatever ids model2vec gives them: the teacher numbers "good" 10 and "bad" 11
    tokens, vocab = ["good", "bad", "meh", "unheard"], {"good": 10, "bad": 11, "meh": 12}
    sums, counts = np.zeros((13, 2)), np.zeros(13, dtype=np.int64)
    sums[10], counts[10] = [9.0, 3.0], 3                     # seen three times: mean (3, 1)
    sums[11], counts[11] = [1.0, 1.0], 1                     # seen once: mean (1, 1)
    out = TokenContext(sums, counts, vocab).blend(alone, tokens)
    shift = alone[:2].mean(axis=0) - np.array([[3.0, 1.0], [1.0, 1.0]]).mean(axis=0)   # the two means put together
    np.testing.assert_allclose(out[0], 0.75 * (np.array([3.0, 1.0]) + shift) + 0.25 * alone[0], rtol=1e-6)
    np.testing.assert_allclose(out[1], 0.5 * (np.array([1.0, 1.0]) + shift) + 0.5 * alone[1], rtol=1e-6)
    np.testing.assert_array_equal(out[2:], alone[2:])          # unseen, and not in the teacher's vocabulary
    assert out.dtype == alone.dtype
    np.testing.assert_array_equal(TokenContext(np.zeros((13, 2)), np.zeros(13, dtype=np.int64), vocab)
                                  .blend(alone, tokens), alone)


def test_a_static_table_started_in_context_moves_the_tokens_its_texts_hold(tmp_path, tiny_checkpoint, tiny_csv,
                                                                          monkeypatch):
    from test_train import tiny_recipe
    from transformers import AutoModel, AutoTokenizer

    from distill.pipeline import train_run
    from distill.static import TokenContext, distil_static

    starts, _ = _spy_on_members(monkeypatch)
    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 1,
                                             "static_init": "context"}},
                         baselines={"tfidf": False, "model2vec": False})
    blended = []
    blend = TokenContext.blend

    def spy(self, alone, tokens):
        blended.append((alone.copy(), list(tokens), self))
        return blend(self, alone, tokens)

    monkeypatch.setattr(TokenContext, "blend", spy)
    from model2vec.distill import distillation

    encodings = []
    create = distillation.create_embeddings
    monkeypatch.setattr(distillation, "create_embeddings", lambda *a, **k: encodings.append(1) or create(*a, **k))
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    assert len(encodings) == 1      # the plain table's forward passes serve the table started in context
    # each row model2vec encoded is the token its text names: the teacher's vector for that token alone
    alone, tokens, context = blended[0]
    teacher = AutoModel.from_pretrained(recipe.run_dir / "models" / "teacher").eval()
    tok = AutoTokenizer.from_pretrained(recipe.run_dir / "models" / "teacher")
    seen = [i for i, t in enumerate(tokens) if context.counts[context.vocab.get(t, 0)] > 0
            and context.vocab.get(t) not in tok.all_special_ids]
    assert seen
    for row in seen[:3] + seen[-3:]:
        ids = torch.tensor([[tok.cls_token_id, tok.convert_tokens_to_ids(tokens[row]), tok.sep_token_id]])
        with torch.no_grad():
            expected = teacher(input_ids=ids).last_hidden_state.mean(dim=1)[0].numpy()
        np.testing.assert_allclose(alone[row], expected, atol=1e-4)
    started = starts[0][1]["embeddings.weight"].numpy()
    plain = np.asarray(distil_static(str(recipe.run_dir / "models" / "teacher"), 8, progress=False).embedding)
    assert started.shape == plain.shape
    changed = ~np.isclose(started, plain, atol=1e-5).all(axis=1)
    assert 0 < m["static"]["tokens_in_context"] and changed.any()
    assert "in-context" in m["static"]["init"]
    with pytest.raises(ConfigError, match="static_init: 'contextual' must be one of model2vec, context"):
        load_recipe(overrides={"methods": {"static": {"static_init": "contextual"}}})


def test_the_static_recipe_pairs_a_variant_with_the_one_it_changes_one_setting_of():
    from static_recipe import PAIRED_WITH, summarise, table

    name, base = next(iter(PAIRED_WITH.items()))
    labels = [0, 1, 2] * 20
    right = list(labels)
    wrong = [(y + 1) % 3 if i % 3 == 0 else y for i, y in enumerate(labels)]     # a third of them wrong

    def run(pred, seed=1):
        return {"seed": seed, "judged_macro_f1": 0.0, "judged_pred": pred, "best_epoch": 1, "train_time_s": 1.0,
                "judged_per_class_f1": {"a": 0.0, "b": 0.0, "c": 0.0}}

    result = {"half_b_labels": labels, "run": "r", "data": "d", "labelled": 1, "halves": [1, len(labels)],
              "schedule": {"lr": 1, "epochs": 1, "patience": 1}, "teacher_half_b_macro_f1": 1.0,
              "shipped": "shipped",
              "variants": {v: {"train_texts": 1, "held_out_to_choose": 0, "runs": [run(p)]}
                           for v, p in (("shipped", right), (base, wrong), (name, right))}}
    summarise(result)
    pts, low, high = result["variants"][name]["runs"][0]["vs_paired_with_pts"]
    assert pts > 0 and low <= pts <= high and result["variants"][name]["paired_with"] == base
    assert result["variants"][name]["runs"][0]["vs_shipped_pts"][0] == 0
    assert "vs_paired_with_pts" not in result["variants"][base]["runs"][0]
    assert f"| {name} | {base} | +{pts:.1f}" in table(result)
    assert "vs_shipped_mean_pts" not in result["variants"][name]       # one seed: no mean over seeds


def test_the_static_recipe_gives_the_mean_gain_over_seeds_against_the_shipped_recipe():
    from static_recipe import summarise, table

    labels = [0, 1, 2] * 20
    right = list(labels)
    wrong = [(y + 1) % 3 if i % 3 == 0 else y for i, y in enumerate(labels)]     # a third of them wrong
    half = [(y + 1) % 3 if i % 6 == 0 else y for i, y in enumerate(labels)]      # a sixth of them wrong

    def run(pred, seed):
        return {"seed": seed, "judged_macro_f1": 0.0, "judged_pred": pred, "best_epoch": 1, "train_time_s": 1.0,
                "judged_per_class_f1": {"a": 0.0, "b": 0.0, "c": 0.0}}

    result = {"half_b_labels": labels, "run": "r", "data": "d", "labelled": 1, "halves": [1, len(labels)],
              "schedule": {"lr": 1, "epochs": 1, "patience": 1}, "teacher_half_b_macro_f1": 1.0,
              "shipped": "shipped",
              "variants": {"shipped": {"train_texts": 1, "held_out_to_choose": 0,
                                       "runs": [run(wrong, 1), run(wrong, 2), run(wrong, 3)]},
                           "frozen": {"train_texts": 1, "held_out_to_choose": 0,
                                      "runs": [run(right, 1), run(half, 2)]}}}
    summarise(result)
    row = result["variants"]["frozen"]
    per_seed = [x["vs_shipped_pts"][0] for x in row["runs"]]
    pts, low, high = row["vs_shipped_mean_pts"]
    assert row["vs_shipped_mean_seeds"] == 2 and pts == pytest.approx(sum(per_seed) / 2) and 0 < low <= pts <= high
    assert "vs_shipped_mean_pts" not in result["variants"]["shipped"]
    assert f"| frozen | 2 | +{pts:.1f} [{low:+.1f}, {high:+.1f}] |" in table(result)


def test_the_static_recipe_sign_test_counts_pairs_a_variant_wins_and_ties_against_it(tmp_path, capsys):
    import json

    from static_recipe import main, sign_test

    def rec(run, shipped, variant):
        return {"run": run, "judged_on": "half B", "shipped": "shipped",
                "variants": {"shipped": {"runs": [{"seed": s, "judged_macro_f1": f} for s, f in shipped.items()]},
                             "v-0.1": {"runs": [{"seed": s, "judged_macro_f1": f} for s, f in variant.items()]}}}

    a = rec("a", {1: 0.70, 3: 0.70, 4: 0.70}, {1: 0.10, 3: 0.71, 4: 0.72})        # seed 1 not asked for
    b = rec("b", {3: 0.80, 4: 0.80}, {3: 0.80, 5: 0.90})                             # a tie; seed 4 missing
    test = sign_test([a, b], "v-0.1", [3, 4])
    assert (test["wins"], test["n"]) == (2, 3) and test["missing"] == ["b seed 4"]
    assert test["p_one_sided"] == pytest.approx(4 / 8)              # P(X >= 2), X ~ Binomial(3, 1/2)
    assert sign_test([a], "v-0.1", [3, 4])["p_one_sided"] == pytest.approx(1 / 4)
    assert [round(x["gain_pts"], 6) for x in test["pairs"]] == [1.0, 2.0, 0.0]

    # from the command line: one variant the experiment knows, records on disk, both written beside the first
    name = "augment-2-vocabulary-5k-table-0.1"
    paths = []
    for r in (a, b):
        r["variants"][name] = r["variants"].pop("v-0.1")
        paths.append(tmp_path / f"{r['run']}.json")
        paths[-1].write_text(json.dumps(r))
    with pytest.raises(SystemExit) as no_variant:
        main(["--sign-test", *map(str, paths), "--seeds", "3", "4"])
    assert no_variant.value.code == 2 and "exactly one variant" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--sign-test", *map(str, paths), "--seeds", "9", "--only", name])     # no pair at seed 9
    assert "no record holds" in capsys.readouterr().err and not (tmp_path / f"sign-test-{name}.json").exists()
    assert main(["--sign-test", *map(str, paths), "--seeds", "3", "4", "--only", name]) == 0
    written = json.loads((tmp_path / f"sign-test-{name}.json").read_text())
    assert (written["wins"], written["n"], written["records"]) == (2, 3, list(map(str, paths)))
    table = (tmp_path / f"sign-test-{name}.md").read_text()
    assert "2 of 3 pairs higher, one-sided p = 0.500; missing: b seed 4" in table and "| a | half B | 4 |" in table


def _graph_matches_and_reloads(model, ids, mask, logits, tmp_path):
    """A static student's ONNX graph gives its ``logits``, its checkpoint reloads to the same ones, and its graph
    quantises to INT8 and runs; the reloaded model."""
    import onnxruntime as ort

    from distill.static import StaticClassifier
    from edgedistill import graphs
    from export.convert import static_onnx

    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    path = static_onnx(model, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, feed)[0], logits.numpy(), atol=1e-5)
    model.save_pretrained(tmp_path / "ckpt")
    again = StaticClassifier.load(tmp_path / "ckpt")
    with torch.no_grad():
        assert torch.equal(again(ids, mask).logits, logits)
    graphs.quantize_int8(path, tmp_path / "int8.onnx")
    q = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    assert q.run(None, feed)[0].shape == (len(ids), logits.shape[1])
    return again


def test_mean_max_pooling_puts_each_column_s_max_beside_the_mean_and_its_graph_matches(tmp_path):
    from distill.static import StaticClassifier

    torch.manual_seed(0)
    model = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1, pooling="mean-max").eval()
    assert model.linear_layers()[0].in_features == 12        # the mean's 6 columns and the max's 6
    ids = torch.tensor([[4, 5, 1, 9, 0], [1, 0, 0, 0, 0], [7, 0, 0, 0, 0], [9, 4, 5, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        pooled = model.pool(ids, mask)
        rows = model.embeddings.weight[[4, 5, 9]]
        normalize = torch.nn.functional.normalize
        # [UNK] and padding are neither in the mean nor the max (a padding row's zeros would win a negative column)
        expected = torch.cat([normalize(rows.mean(0), dim=0), normalize(rows.max(0).values, dim=0)])
        assert torch.allclose(pooled[0], expected, atol=1e-6)
        assert torch.allclose(pooled[0], pooled[3], atol=1e-6)       # the max, like the mean, ignores order
        assert torch.equal(pooled[1], torch.zeros(12))               # no real token: zeros, not -inf
        # one token: its row is both the mean and the max
        assert torch.allclose(pooled[2, :6], pooled[2, 6:])
        logits = model(ids, mask).logits
    assert torch.isfinite(logits).all()
    again = _graph_matches_and_reloads(model, ids, mask, logits, tmp_path)
    assert again.pooling == "mean-max"
    with pytest.raises(ValueError, match="pool by the mean alone"):
        StaticClassifier.stack([model, again])
    with pytest.raises(ConfigError, match=r"static_pooling: 'max' must be one of mean, mean-max"):
        load_recipe(overrides={"methods": {"static": {"static_pooling": "max"}}})
    with pytest.raises(ConfigError, match="an ensemble stacks students that pool by the mean"):
        load_recipe(overrides={"methods": {"static": {"static_pooling": "mean-max", "static_ensemble": 2}}})


@pytest.mark.parametrize("pooling", ["mean-max", "conv"])
def test_a_static_student_pooled_otherwise_trains_and_ships_as_its_onnx_graph(tmp_path, tiny_checkpoint, tiny_csv,
                                                                               pooling):
    from test_train import tiny_recipe

    from distill.pipeline import train_run
    from distill.static import StaticClassifier
    from edgedistill.layout import MODEL2VEC_FILES
    from edgedistill.predictor import load_predictor
    from export.config import load_export_config
    from export.pipeline import export_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 1,
                                             "static_pooling": pooling}},
                         baselines={"tfidf": False, "model2vec": False})
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    assert m["static"]["pooling"] == pooling
    trained = StaticClassifier.load(recipe.run_dir / "models" / "static")
    assert trained.pooling == pooling
    if pooling == "conv":      # training moved the n-gram map off zero: the graph below runs the convolution
        assert trained.conv_out.weight.abs().sum() > 0
    # model2vec pools by the mean alone: the folder carries the ONNX graph and no model2vec form
    rows = export_run(recipe.run_dir, load_export_config({"variants": ["onnx-fp32"], "models": ["static"],
                                                          "speed_check_blocks": 0, "parity_samples": 12}),
                      recipe=recipe)
    assert rows[0]["parity"]["max_abs_diff"] < 1e-4
    folder = recipe.run_dir / "artifacts" / "static" / "onnx-fp32"
    assert not any((folder / name).exists() for name in MODEL2VEC_FILES)
    texts = ["good movie", "bad awful day", "zzz"]
    np.testing.assert_allclose(load_predictor(folder).logits(texts),
                               load_predictor(recipe.run_dir / "models" / "static").logits(texts), atol=1e-4)


def test_attention_pooling_starts_as_the_mean_and_weighs_tokens_by_its_query(tmp_path):
    from distill.static import StaticClassifier

    torch.manual_seed(0)
    model = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1, pooling="attention").eval()
    mean = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1).eval()
    mean.load_state_dict({k: v for k, v in model.state_dict().items() if k != "attention_query"})
    ids = torch.tensor([[4, 5, 1, 9, 0], [1, 0, 0, 0, 0], [7, 0, 0, 0, 0], [9, 4, 5, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        # the query starts at zero: every real token weighs 1 / n, the mean's pooling
        assert torch.allclose(model(ids, mask).logits, mean(ids, mask).logits, atol=1e-6)
        torch.nn.init.normal_(model.attention_query)
        rows = model.embeddings.weight[[4, 5, 9]]
        weights = torch.softmax(rows @ model.attention_query, dim=0)
        expected = torch.nn.functional.normalize((weights[:, None] * rows).sum(0), dim=0)
        pooled = model.pool(ids, mask)
        # [UNK] and padding take no weight; order does not count; a text with no real token pools to zeros
        assert torch.allclose(pooled[0], expected, atol=1e-6) and torch.allclose(pooled[0], pooled[3], atol=1e-6)
        assert torch.equal(pooled[1], torch.zeros(6))
        assert not torch.allclose(pooled[0], mean.pool(ids, mask)[0], atol=1e-3)
        logits = model(ids, mask).logits
    _graph_matches_and_reloads(model, ids, mask, logits, tmp_path)
    with torch.no_grad():
        half = copy.deepcopy(model).to(torch.float16)
        assert torch.allclose(half(ids, mask).logits.float(), logits, atol=0.05)    # the masked score fits fp16
    with pytest.raises(ConfigError, match="attention reads the token rows alone and takes no bigram rows"):
        load_recipe(overrides={"methods": {"static": {"static_pooling": "attention", "static_bigrams": 64}}})


def test_conv_pooling_starts_as_the_mean_and_reads_word_order(tmp_path):
    from distill.static import StaticClassifier

    torch.manual_seed(0)
    model = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1, pooling="conv").eval()
    mean = StaticClassifier(30, 6, ["a", "b", "c"], hidden=5, unk_token_id=1).eval()
    mean.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("conv")})
    # [4, 5, 1, 9] and [9, 4, 5]: the same real tokens, another order; [1] and [7]: no real token, one
    ids = torch.tensor([[4, 5, 1, 9, 0], [1, 0, 0, 0, 0], [7, 0, 0, 0, 0], [9, 4, 5, 0, 0], [4, 5, 1, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    with torch.no_grad():
        # the map back to the table's width starts at zero: the mean's pooling, whatever the convolution holds
        assert torch.allclose(model(ids, mask).logits, mean(ids, mask).logits, atol=1e-6)
        torch.nn.init.normal_(model.conv_out.weight)
        pooled = model.pool(ids, mask)
        # by hand: rows of the real tokens with [UNK] as a zero row inside the window, ReLU, mean over real tokens
        rows = model.embeddings.weight[[4, 5, 1, 9]].clone()
        rows[2] = 0
        padded = torch.cat([torch.zeros(1, 6), rows, torch.zeros(1, 6)])
        w, b = model.conv.weight, model.conv.bias
        grams = torch.stack([torch.relu(b + sum(w[:, :, k] @ padded[t + k] for k in range(3))) for t in range(4)])
        grams = grams[[0, 1, 3]].mean(0)             # [UNK] keeps no feature of its own
        expected = torch.nn.functional.normalize(rows[[0, 1, 3]].mean(0) + model.conv_out.weight @ grams, dim=0)
        assert torch.allclose(pooled[0], expected, atol=1e-5)
        # word order now counts (the mean alone cannot tell these apart); padding and a masked token do not
        assert torch.allclose(mean.pool(ids, mask)[0], mean.pool(ids, mask)[3], atol=1e-6)
        assert not torch.allclose(pooled[0], pooled[3], atol=1e-3)
        assert torch.equal(pooled[0], pooled[4]) and torch.equal(pooled[1], torch.zeros(6))
        logits = model(ids, mask).logits
    _graph_matches_and_reloads(model, ids, mask, logits, tmp_path)
    with torch.no_grad():
        half = copy.deepcopy(model).to(torch.float16)
        assert torch.allclose(half(ids, mask).logits.float(), logits, atol=0.05)
    with pytest.raises(ConfigError, match="conv reads the token rows alone and takes no bigram rows"):
        load_recipe(overrides={"methods": {"static": {"static_pooling": "conv", "static_bigrams": 64}}})
    with pytest.raises(ValueError, match="conv pooling reads the token rows alone"):
        StaticClassifier(30, 6, ["a", "b"], pooling="conv", bigram_buckets=8)


@pytest.mark.parametrize("init", ["model2vec", "context"])
def test_split_words_of_the_training_texts_join_the_static_table_whole(tmp_path, init):
    import pandas as pd
    from conftest import LABELS, WORDS, make_tiny_model, tiny_texts
    from test_train import tiny_recipe
    from transformers import AutoTokenizer, BertTokenizer

    from distill.pipeline import train_run
    from distill.static import StaticClassifier, domain_words
    from edgedistill.layout import MODEL2VEC_FILES
    from edgedistill.predictor import load_predictor
    from export.config import load_export_config
    from export.pipeline import export_run

    # a teacher whose vocabulary splits plurals and adverbs into pieces ("movies" -> "movie", "##s")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ly"]) + "\n")
    tok = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    teacher = tmp_path / "teacher"
    make_tiny_model("bert", vocab_size=len(tok)).save_pretrained(teacher)
    tok.save_pretrained(teacher)
    fast = AutoTokenizer.from_pretrained(teacher)
    assert fast.tokenize("movies") == ["movie", "##s"]
    texts, labels = tiny_texts(120)
    # "days" in a third of the texts, "sadly" in the negative ones, "nights" once (below the minimum count)
    texts = [t + (" days" if i % 3 == 0 else "") + (" sadly" if y == "negative" else "") for i, (t, y)
             in enumerate(zip(texts, labels))]
    texts[1] += " nights"
    assert domain_words(texts, fast, 10) == ["days", "sadly"] and domain_words(texts, fast, 1) == ["days"]
    csv = tmp_path / "words.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(csv, index=False)
    recipe = tiny_recipe(tmp_path, teacher, csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 1,
                                             "static_vocabulary": 10, "static_init": init}},
                         baselines={"tfidf": False, "model2vec": False})
    m = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
    folder = recipe.run_dir / "models" / "static"
    saved = StaticClassifier.load(folder)
    student_tok = AutoTokenizer.from_pretrained(folder)
    # the words are whole tokens of the student's tokenizer, with rows of their own; the teacher's are kept
    assert [len(student_tok.tokenize(w)) for w in ("days", "sadly", "nights", "movie")] == [1, 1, 2, 1]
    assert m["static"]["words_added"] == 2 and saved.config.vocab_size == m["static"]["vocabulary"]
    assert ("tokens_in_context" in m["static"]) == (init == "context")
    assert saved.config.vocab_size == len(student_tok)
    assert m["params_total"] == sum(p.numel() for p in saved.parameters())
    # the model2vec form and the ONNX graph read the same tokenizer: both match the checkpoint on text
    rows = export_run(recipe.run_dir, load_export_config({"variants": ["onnx-fp32"], "models": ["static"],
                                                          "speed_check_blocks": 0, "parity_samples": 12}),
                      recipe=recipe)
    assert rows[0]["parity"]["max_abs_diff"] < 1e-4
    artifact = recipe.run_dir / "artifacts" / "static" / "onnx-fp32"
    assert all((artifact / name).is_file() for name in MODEL2VEC_FILES)
    probe = ["sadly bad days", "good days", "movies nights"]
    expected = load_predictor(folder).logits(probe)
    for runtime in ("onnxruntime", "numpy"):
        np.testing.assert_allclose(load_predictor(artifact, runtime=runtime).logits(probe), expected, atol=1e-4)
    assert LABELS == sorted(set(labels))
    with pytest.raises(ConfigError, match="static_vocabulary: -1 must be >= 0"):
        load_recipe(overrides={"methods": {"static": {"static_vocabulary": -1}}})
    with pytest.raises(ConfigError, match="use static_table_rank: 0 with it"):
        load_recipe(overrides={"methods": {"static": {"static_vocabulary": 10, "static_table_rank": 4}}})


def test_noisy_copies_do_not_count_as_words_seen_again(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.data import load_dataset
    from distill.pipeline import original_texts, own_pool_data, student_dataset

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, data={"augment_copies": 1},
                         methods={"static": {"static_augment_copies": 2}})
    data = load_dataset(recipe.data)
    split, info = own_pool_data(recipe, ["static"], data)["static"]
    assert info["augmented"] == len(data.train) and info["static_augmented"] == 2 * 2 * len(data.train)
    assert original_texts(split.train, info) == data.train.texts      # no pool here: the labelled texts alone
    students, students_info = student_dataset(recipe, data)
    assert original_texts(students.train, students_info) == data.train.texts


def test_the_pooling_cost_probe_reads_the_static_multiple_over_the_fastest_transformer_student(tmp_path):
    from static_pooling_cost import committed_static_multiple

    fields = ["model", "variant", "scenario", "batch_size", "device", "threads", "latency_p50_ms"]
    rows = [("odd", "onnx-int8-dynamic", "text-latency", 1, "cpu", 2, 1.2),
            ("hybrid", "onnx-int8-dynamic", "text-latency", 1, "cpu", 2, 1.5),
            ("odd", "onnx-int8-dynamic", "text-latency", 1, "cpu", 1, 0.9),      # another thread count
            ("odd", "onnx-int8-dynamic", "latency", 1, "cpu", 2, 0.5),           # pre-tokenized: not text -> label
            ("tfidf", "onnx-fp32", "text-latency", 1, "cpu", 2, 0.05),           # a baseline, not a student
            ("static", "onnx-int8-dynamic", "text-latency", 1, "cpu", 2, 0.08),  # not the FP32 graph
            ("static", "onnx-fp32", "text-latency", 1, "cpu", 2, 0.1),
            ("static", "onnx-fp32", "text-latency", 8, "cpu", 2, 0.3)]
    (tmp_path / "bench.csv").write_text("\n".join([",".join(fields)] + [",".join(map(str, r)) for r in rows]) + "\n")
    multiple, source = committed_static_multiple(tmp_path, 2)
    assert multiple == pytest.approx(12.0) and source.startswith("odd/onnx-int8-dynamic 1.200 ms")
    assert committed_static_multiple(tmp_path, 4) is None
    assert committed_static_multiple(tmp_path / "none", 2) is None


def test_the_static_student_can_learn_the_teachers_logits_in_place_of_its_soft_labels(tmp_path, tiny_checkpoint,
                                                                                      tiny_csv):
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         data={"unlabeled": str(_pool(tmp_path)), "max_unlabeled": 20},
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2, "static_pool": 20,
                                             "static_logits_mse": 1.0, "loss": {"kl": 0.0}}},
                         baselines={"tfidf": False, "model2vec": False})
    metrics = train_run(recipe, methods=["static"], progress=False)
    m = metrics["models"]["static"]
    assert m["static"]["logits_mse"] == 1.0
    steps = m["history"]["steps"]
    assert any("logits_mse" in step for step in steps) and not any("kl" in step for step in steps)
    with pytest.raises(ConfigError, match="static_logits_mse: -1 must be >= 0"):
        load_recipe(overrides={"methods": {"static": {"static_logits_mse": -1}}})
    # with neither kl nor the squared distance, the teacher-labelled pool would train on nothing
    with pytest.raises(ConfigError, match="needs a distillation term"):
        load_recipe(overrides={"data": {"unlabeled": "rest-of-train", "max_train": 2000},
                               "methods": {"static": {"loss": {"kl": 0.0}}}})
    load_recipe(overrides={"data": {"unlabeled": "rest-of-train", "max_train": 2000},
                           "methods": {"static": {"loss": {"kl": 0.0}, "static_logits_mse": 1.0}}})
