"""A static student's decision rule fitted to the teacher's labels (methods.static_calibrate: teacher)."""
import numpy as np
import pytest
import torch

from edgedistill.configbase import ConfigError
from edgedistill.recipe import load_recipe


def _under_calling_student(seed=0, n=600):
    """Teacher labels and a student's logits that name class 2 (a tenth of the texts) too rarely: its logit
    for class 2 sits 1.5 below where it would agree with the teacher."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=[0.5, 0.4, 0.1])
    logits = rng.normal(0.0, 0.6, size=(n, 3))
    logits[np.arange(n), labels] += 2.0
    logits[:, 2] -= 1.5
    return logits, labels


def test_offsets_give_back_a_rare_class_the_student_names_too_rarely():
    from distill.calibration import agreement, fit_offsets

    logits, labels = _under_calling_student()
    offsets, before, after = fit_offsets(logits, labels)
    assert offsets[0] == 0.0 and offsets[2] > 0.5        # the first class is the reference; class 2 comes up
    assert after > before + 0.05 and after == pytest.approx(agreement(logits, labels, offsets))
    assert (np.argmax(logits + offsets, axis=1) == 2).sum() > (np.argmax(logits, axis=1) == 2).sum()


def test_a_student_that_already_agrees_keeps_its_bias():
    from distill.calibration import fit_offsets

    labels = np.array([0, 1, 2, 1, 0, 2, 1])
    logits = np.eye(3)[labels] * 3.0                      # every text agrees; no offset can gain
    offsets, before, after = fit_offsets(logits, labels)
    assert np.array_equal(offsets, np.zeros(3)) and before == after == 1.0


def test_a_binary_student_moves_one_offset_and_bad_input_is_refused():
    from distill.calibration import fit_offsets

    logits, labels = _under_calling_student(seed=1)
    binary = (labels == 2).astype(int)
    two = np.stack([logits[:, :2].max(axis=1), logits[:, 2]], axis=1)
    offsets, before, after = fit_offsets(two, binary)
    assert offsets.shape == (2,) and offsets[0] == 0.0 and offsets[1] > 0 and after > before
    with pytest.raises(ValueError, match="one row per text"):
        fit_offsets(two[:5], binary[:4])
    with pytest.raises(ValueError, match="one row per text"):
        fit_offsets(np.zeros((0, 2)), np.zeros(0))


def test_the_calibrated_student_is_the_trained_one_with_offsets_in_its_output_bias(tmp_path, tiny_checkpoint,
                                                                                  tiny_csv):
    """The same training with and without calibration: the saved students differ in the head's output bias
    alone, by the recorded offsets, which were fitted to the teacher's labels on the validation texts."""
    pytest.importorskip("model2vec.distill")
    from test_train import tiny_recipe

    from distill.calibration import agreement
    from distill.data import load_dataset
    from distill.pipeline import method_fingerprint, model_dir, train_run
    from distill.static import StaticClassifier
    from distill.train import predict_logits, setup_method, teacher_labelled

    saved, entries = {}, {}
    for mode in ("none", "teacher"):
        recipe = tiny_recipe(tmp_path / mode, tiny_checkpoint, tiny_csv,
                             methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2,
                                                 "static_calibrate": mode}},
                             baselines={"tfidf": False, "model2vec": False})
        entries[mode] = train_run(recipe, methods=["static"], progress=False)["models"]["static"]
        saved[mode] = StaticClassifier.load(model_dir(recipe, "static"))
    plain, calibrated = saved["none"].state_dict(), saved["teacher"].state_dict()
    record = entries["teacher"]["history"]["calibration"]
    last = "head.2.bias"
    for k in plain:
        if k != last:
            assert torch.equal(plain[k], calibrated[k]), k
    np.testing.assert_allclose((calibrated[last] - plain[last]).numpy(), record["offsets"], atol=1e-6)
    assert any(record["offsets"])          # this tiny student does move its bias
    assert "calibration" not in entries["none"]["history"] and entries["teacher"]["static"]["calibrate"] == "teacher"
    # fitted to the teacher's labels on the texts that chose the epoch, as recorded
    data = load_dataset(recipe.data)
    setup = setup_method("static", recipe, data.label_names, model_dir(recipe, "teacher"), progress=False)
    taught = teacher_labelled(setup, data.validation, recipe.data.max_length, 32, "cpu", progress=False)
    logits = predict_logits(saved["teacher"], setup.tokenizer, taught, recipe.data.max_length, 32, "cpu")
    assert record["texts"] == len(data.validation)
    # the teacher's pass over those texts is counted in the method's compute
    assert record["teacher_forward_flops"] > 0
    assert entries["teacher"]["compute"]["teacher_forward_flops"] == pytest.approx(
        entries["none"]["compute"]["teacher_forward_flops"] + record["teacher_forward_flops"])
    assert record["teacher_agreement_macro_f1_after"] == pytest.approx(agreement(logits, taught.labels, 0.0))
    assert record["teacher_agreement_macro_f1_after"] >= record["teacher_agreement_macro_f1_before"]
    # the reported validation scores are the calibrated student's
    from edgedistill.metrics import classification_metrics, softmax

    val = predict_logits(saved["teacher"], setup.tokenizer, data.validation, recipe.data.max_length, 32, "cpu")
    assert entries["teacher"]["validation"]["macro_f1"] == pytest.approx(
        classification_metrics(data.validation.labels, softmax(val), data.label_names)["macro_f1"])
    # a new student: its fingerprint changes, the other methods' do not
    off = tiny_recipe(tmp_path / "fp", tiny_checkpoint, tiny_csv)
    on = tiny_recipe(tmp_path / "fp", tiny_checkpoint, tiny_csv, methods={"static": {"static_calibrate": "teacher"}})
    assert method_fingerprint(on, "static") != method_fingerprint(off, "static")
    assert method_fingerprint(on, "odd") == method_fingerprint(off, "odd")


def test_an_unknown_calibration_is_refused_with_the_recipe():
    with pytest.raises(ConfigError, match="static_calibrate: 'gold' must be one of none, teacher"):
        load_recipe(overrides={"methods": {"static": {"static_calibrate": "gold"}}})


def test_the_sign_test_can_pair_a_calibrated_run_with_itself_without_its_offsets(tmp_path, capsys):
    """The offsets' own effect: each calibrated run against its own labels without them, never a retrained run."""
    import json

    from static_recipe import main, sign_test

    labels = [0, 0, 1, 1, 2, 2]

    def run(seed, pred, uncalibrated):
        return {"seed": seed, "judged_macro_f1": _macro_f1(labels, pred), "judged_pred": pred,
                "judged_pred_uncalibrated": uncalibrated, "calibration": {"offsets": [0.0, -0.5, 0.5]}}

    rec = {"run": "r", "judged_on": "half B", "shipped": "shipped", "half_b_labels": labels,
           "variants": {"shipped": {"runs": [{"seed": 1, "judged_macro_f1": 1.0}, {"seed": 2, "judged_macro_f1": 0.0}]},
                        "calibrate": {"runs": [run(1, [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1]),      # gains
                                               run(2, [0, 1, 1, 1, 2, 2], [0, 1, 1, 1, 2, 2]),      # a tie
                                               run(3, [0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2])]}}}
    own = sign_test([rec], "calibrate", [1, 2, 3], against="uncalibrated")
    assert (own["wins"], own["n"], own["missing"]) == (1, 3, [])
    assert own["pairs"][0]["shipped"] == pytest.approx(_macro_f1(labels, [0, 0, 1, 1, 1, 1]))
    assert own["pairs"][1]["gain_pts"] == 0.0
    # against the shipped runs the same record reads otherwise: seed 1 ties, seed 2 wins, seed 3 has no shipped run
    shipped = sign_test([rec], "calibrate", [1, 2, 3])
    assert (shipped["wins"], shipped["n"], shipped["missing"]) == (1, 2, ["r seed 3"])
    with pytest.raises(ValueError, match="against 'gold' must be one of shipped, uncalibrated"):
        sign_test([rec], "calibrate", [1], against="gold")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(rec))
    assert main(["--sign-test", str(path), "--only", "calibrate", "--seeds", "1", "2", "3",
                 "--against", "uncalibrated"]) == 0
    table = (tmp_path / "sign-test-calibrate-against-uncalibrated.md").read_text()
    assert table.startswith("Sign test of calibrate against itself without its calibration offsets, seeds 1, 2, 3: "
                            "1 of 3 pairs higher")
    assert not (tmp_path / "sign-test-calibrate.json").exists()
    # each record's own seeds after @, and a label that keeps this test's files apart
    other = dict(rec, run="o")
    (tmp_path / "o.json").write_text(json.dumps(other))
    assert main(["--sign-test", f"{path}@1", f"{tmp_path / 'o.json'}@2,3", "--only", "calibrate", "--seeds", "9",
                 "--against", "uncalibrated", "--label", "split"]) == 0
    split = json.loads((tmp_path / "sign-test-calibrate-against-uncalibrated-split.json").read_text())
    assert [(x["run"], x["seed"]) for x in split["pairs"]] == [("r", 1), ("o", 2), ("o", 3)]
    assert split["record_seeds"] == [[1], [2, 3]] and split["wins"] == 1
    assert "each record's seeds below" in (tmp_path / "sign-test-calibrate-against-uncalibrated-split.md").read_text()
    with pytest.raises(SystemExit):
        main(["--sign-test", f"{path}@one", "--only", "calibrate"])
    assert "the seeds after @ must be integers" in capsys.readouterr().err


def _macro_f1(labels, pred):
    from sklearn.metrics import f1_score

    return float(f1_score(labels, pred, average="macro", labels=[0, 1, 2], zero_division=0.0))


def test_a_calibrated_run_is_the_shipped_run_of_its_seed_plus_its_offsets(tmp_path, tiny_checkpoint, tiny_csv):
    """Each run of the static recipe starts its head as a pipeline run would, whatever ran before it in the
    process (model2vec's distillation draws random numbers): without its offsets the calibrated student labels
    every judged text as the shipped student of its seed does."""
    pytest.importorskip("model2vec.distill")
    from static_recipe import run_experiment
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv,
                         methods={"static": {"static_dims": 8, "static_hidden": 16, "epochs": 2}},
                         baselines={"tfidf": False, "model2vec": False})
    train_run(recipe, methods=["teacher"], progress=False)
    result = run_experiment(recipe.run_dir, [1, 2], {"shipped": {}, "calibrate": {"static_calibrate": "teacher"}},
                            progress=False, out_dir=tmp_path / "recipe")
    shipped, calibrated = (result["variants"][k]["runs"] for k in ("shipped", "calibrate"))
    assert [r["seed"] for r in calibrated] == [1, 2]
    for base, run in zip(shipped, calibrated, strict=True):
        assert run["judged_pred_uncalibrated"] == base["judged_pred"]
        assert len(run["calibration"]["offsets"]) == 3 and "judged_pred_uncalibrated" not in base
