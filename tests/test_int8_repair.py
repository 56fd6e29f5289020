"""INT8 sensitivity ranking and repair under a budget, on a tiny trained model with one block made
sensitive on purpose: the ranking must find it, the repair must keep it in FP32 and come back
within budget; a budget nothing can meet answers with the FP32 artifact; a negative one is refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import LABELS, make_tiny_model, make_tokenizer, tiny_texts

SENSITIVE = "layer.1.ffn_out"
VARIANTS = ["onnx-fp32", "onnx-int8-dynamic"]


def train_tiny(model, tok, epochs: int = 12):
    """A few seconds of training, so INT8 damage shows up as lost macro-F1, not noise on random logits."""
    import torch

    texts, labels = tiny_texts(300)
    y = torch.tensor([LABELS.index(label) for label in labels])
    batch = tok(texts, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(texts)).split(32):
            loss = model(input_ids=batch["input_ids"][idx], attention_mask=batch["attention_mask"][idx],
                         labels=y[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def make_ffn_out_sensitive(model, layer: int = 1):
    """Leave the FP32 function as it is but make INT8 of one FFN output projection wreck it.

    Two FFN units become constants: one at 1000 with zero outgoing weights (nothing in FP32; in
    INT8 it stretches the per-tensor activation range so the step is ~4 and every ordinary
    activation rounds to 0 or 4) and one at GELU(1) ~ 0.84 whose outgoing weights are 1000 x a
    random vector, cancelled by the output bias (in INT8 it rounds to 0 and the cancellation
    leaves -840 x that vector in the residual stream)."""
    import torch

    ffn_in, ffn_out = model.bert.encoder.layer[layer].intermediate.dense, model.bert.encoder.layer[layer].output.dense
    with torch.no_grad():
        ffn_in.weight[:2].zero_()
        ffn_in.bias[0], ffn_in.bias[1] = 1.0, 1000.0
        ffn_out.weight[:, 1] = 0.0
        direction = 1e3 * torch.randn(ffn_out.weight.shape[0], generator=torch.Generator().manual_seed(0))
        ffn_out.weight[:, 0] = direction
        ffn_out.bias -= torch.nn.functional.gelu(torch.tensor(1.0)) * direction
    return model


def write_run(root: Path, export: dict):
    import pandas as pd

    from edgedistill.configbase import dump, to_dict
    from edgedistill.recipe import load_recipe

    texts, labels = tiny_texts(360, seed=1)
    pd.DataFrame({"text": texts, "label": labels}).to_csv(root / "data.csv", index=False)
    recipe = load_recipe(overrides={
        "run": {"name": "sensitive", "runs_dir": str(root / "runs"), "results_dir": str(root / "results")},
        "data": {"source": "file", "path": str(root / "data.csv"), "text_column": "text", "label_column": "label",
                 "labels": LABELS, "max_length": 24, "validation_fraction": 0.25},
        "export": {"sensitivity_scope": "all", **export}})      # rank every INT8 artifact, not only those to repair
    run = root / "runs" / "sensitive"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(dump(recipe))
    tok = make_tokenizer(root / "vocab")
    model = make_ffn_out_sensitive(train_tiny(make_tiny_model("bert", vocab_size=len(tok)), tok))
    folder = run / "models" / "odd"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "edgedistill.json").write_text(json.dumps({
        "schema_version": 1, "method": "odd", "label_names": LABELS, "teacher_source": "tiny", "layers": None,
        "lora": None, "recipe": to_dict(recipe)}))
    return recipe, run


@pytest.fixture(scope="module")
def repaired(tmp_path_factory):
    from export.config import load_export_config
    from export.pipeline import export_run

    root = tmp_path_factory.mktemp("int8-repair")
    recipe, run = write_run(root, {"variants": VARIANTS, "threads": 1, "speed_check_blocks": 2,
                                   "speed_check_calls": 2, "calibration_size": 32})
    lines: list[str] = []
    rows = export_run(run, load_export_config(recipe.export), log=lines.append)
    return recipe, run, rows, "\n".join(lines)


def manifest(run: Path, variant: str) -> dict:
    return json.loads((run / "artifacts" / "odd" / variant / "manifest.json").read_text())


def test_the_ranking_finds_the_sensitive_block(repaired):
    _, run, _, _ = repaired
    sens = manifest(run, "onnx-int8-dynamic")["sensitivity"]
    ranking = sens["blocks"]
    assert sens["split"] == "validation" and sens["n"] == sens["validation_size"] > 50
    assert {r["block"] for r in ranking} == {"embeddings", "classifier"} | {f"layer.{i}.{k}" for i in (0, 1) for k in
                                                                            ("qkv", "attn_out", "ffn_in", "ffn_out")}
    top = ranking[0]
    assert top["block"] == SENSITIVE and top["rank"] == 1 and top["label"] == "layer 1 FFN out"
    # Keeping it alone in FP32 buys back (nearly) everything; no other block buys back anything much.
    assert top["agreement_pct"] >= 90 and top["recovered_points"] > 30
    assert sens["plain"]["f1_delta_points"] < -20 and sens["plain"]["agreement_pct"] < 80
    assert all(r["recovered_points"] < 5 for r in ranking[1:])
    assert [r["rank"] for r in ranking] == list(range(1, len(ranking) + 1))
    assert sens["quantizations"] == len(ranking)          # one per block: the repair reused the top one


def test_the_repair_keeps_the_block_in_fp32_and_comes_back_within_budget(repaired):
    import onnx

    _, run, rows, console = repaired
    plain = manifest(run, "onnx-int8-dynamic")
    assert plain["repair"]["outcome"] == "repaired" and plain["repair"]["excluded"] == [SENSITIVE]
    assert plain["repair"]["repaired_variant"] == "onnx-int8-dynamic-repaired"
    fixed = manifest(run, "onnx-int8-dynamic-repaired")
    # A normal artifact: checked against PyTorch on the test split, timed against FP32 and plain INT8.
    assert fixed["precision"] == "int8" and fixed["quantization"] == "dynamic" and fixed["sha256"]
    assert fixed["repair"]["of"] == "odd/onnx-int8-dynamic" and fixed["repair"]["excluded"] == [SENSITIVE]
    assert fixed["repair"]["validation"]["f1_delta_points"] >= -0.5
    assert fixed["parity"]["agreement_pct"] >= 95 and fixed["macro_f1_delta"] > plain["macro_f1_delta"] + 0.2
    assert fixed["speed_vs_fp32"]["blocks"] == 2 and fixed["speed_vs_int8"]["blocks"] == 2
    assert fixed["speed_vs_int8"]["low"] <= fixed["speed_vs_int8"]["speedup"] <= fixed["speed_vs_int8"]["high"]
    repaired = run / "artifacts" / "odd" / "onnx-int8-dynamic-repaired"
    graph = onnx.load(str(repaired / "onnx" / "model_quantized.onnx")).graph
    ops = {n.name: n.op_type for n in graph.node}
    # The one node kept in FP32 is layer 1's FFN-out MatMul (its name carries the exporter's module path).
    [kept] = fixed["fp32_nodes"]
    assert kept.endswith("bert/encoder/layer.1/output/dense/MatMul") and ops[kept] == "MatMul"          # FP32
    assert any(t == "MatMulInteger" for t in ops.values())                     # the rest stays INT8
    assert [r["artifact"] for r in rows] == ["odd/onnx-fp32", "odd/onnx-int8-dynamic", "odd/onnx-int8-dynamic-repaired"]
    assert "repaired with layer.1.ffn_out in FP32" in console


def test_results_files_show_the_ranking_and_the_repair(repaired):
    recipe, _, _, _ = repaired
    data = json.loads((recipe.results_path / "export.json").read_text())
    rows = {r["artifact"]: r for r in data["artifacts"]}
    assert rows["odd/onnx-int8-dynamic"]["sensitivity"]["blocks"][0]["block"] == SENSITIVE
    assert rows["odd/onnx-int8-dynamic-repaired"]["repair"]["excluded"] == [SENSITIVE]
    assert data["config"]["max_f1_drop"] == 0.5
    md = (recipe.results_path / "export.md").read_text()
    assert "## INT8 sensitivity" in md and "| 1 | layer 1 FFN out |" in md
    assert "## INT8 repair" in md and "| odd/onnx-int8-dynamic-repaired |" in md


def test_a_rerun_keeps_both_and_other_settings_rank_again(repaired, capsys):
    from export.config import load_export_config
    from export.pipeline import export_run

    recipe, run, _, _ = repaired
    before = manifest(run, "onnx-int8-dynamic-repaired")["provenance"]
    export_run(run, load_export_config(recipe.export), log=lambda _: None)
    out = capsys.readouterr().out
    assert "odd/onnx-int8-dynamic: kept" in out and "odd/onnx-int8-dynamic-repaired: kept" in out
    export_run(run, load_export_config(recipe.export, {"sensitivity_scope": "over_budget"}), log=lambda _: None)
    out = " ".join(capsys.readouterr().out.split())
    assert "odd/onnx-int8-dynamic: ranked with other" in out and "exporting again" in out
    assert manifest(run, "onnx-int8-dynamic")["sensitivity"]["blocks"][0]["block"] == SENSITIVE   # over budget: ranked
    assert "odd/onnx-int8-dynamic-repaired: kept (same blocks in FP32" in out
    assert manifest(run, "onnx-int8-dynamic-repaired")["provenance"] == before


def test_a_budget_no_exclusion_meets_answers_with_fp32(repaired, monkeypatch):
    """With the sensitive MatMul outside every block (as an unmapped node would be), no exclusion
    helps: the answer is the FP32 artifact, and the now stale -repaired sibling goes."""
    from export import blocks
    from export.config import load_export_config
    from export.pipeline import export_run

    recipe, run, _, _ = repaired
    real = blocks.onnx_blocks
    monkeypatch.setattr(blocks, "onnx_blocks", lambda path: {b: n for b, n in real(path).items() if b != SENSITIVE})
    lines: list[str] = []
    export_run(run, load_export_config(recipe.export, {"variants": ["onnx-int8-dynamic"], "force": True}),
               log=lines.append)
    m = manifest(run, "onnx-int8-dynamic")
    repair, ranking = m["repair"], m["sensitivity"]["blocks"]
    assert repair["outcome"] == "fp32" and repair["fp32_answer"] == "onnx-fp32" and repair["excluded"] == []
    # Only the blocks whose pool-KL cut clears its interval are spent, each adding to the last.
    counted = [b["block"] for b in ranking if b["counts"]]
    assert len(ranking) == 9 and 1 <= len(counted) < 9
    assert [s["excluded"] for s in repair["steps"]] == [counted[:i] for i in range(1, len(counted) + 1)]
    assert all(s["f1_delta_points"] < -0.5 for s in repair["steps"])
    assert not (run / "artifacts" / "odd" / "onnx-int8-dynamic-repaired").exists()
    console = "\n".join(lines)
    n = len(counted)
    assert f"no exclusion of its {n} counted block{'s' * (n != 1)} meets it: odd/onnx-fp32 (FP32) is the answer" \
        in console
    md = (recipe.results_path / "export.md").read_text()
    assert "odd/onnx-fp32 (FP32) is the answer" in md


def test_over_budget_scope_ranks_only_what_needs_a_repair(repaired):
    """Static INT8 keeps the FFN outputs in FP32 already, so the sensitive block costs it nothing."""
    from export.config import load_export_config
    from export.pipeline import export_run

    recipe, run, _, _ = repaired
    export_run(run, load_export_config(recipe.export, {"variants": ["onnx-int8-static"],
                                                       "sensitivity_scope": "over_budget"}), log=lambda _: None)
    m = manifest(run, "onnx-int8-static")
    assert m["repair"]["outcome"] == "within_budget" and m["repair"]["plain"]["f1_delta_points"] >= -0.5
    assert m["sensitivity"]["blocks"] == [] and m["sensitivity"]["quantizations"] == 0
    assert m["sensitivity"]["already_fp32"] == ["layer.0.ffn_out", SENSITIVE]
    assert not (run / "artifacts" / "odd" / "onnx-int8-static-repaired").exists()


def test_a_negative_budget_is_refused_before_any_work(tmp_path, capsys):
    import edgedistill_cli.commands as edgedistill
    from edgedistill.configbase import ConfigError, dump
    from edgedistill.recipe import load_recipe
    from export.config import load_export_config

    with pytest.raises(ConfigError) as exc:
        load_export_config({"max_f1_drop": -0.5, "sensitivity_samples": -1})
    assert "max_f1_drop: -0.5 is negative" in str(exc.value) and "sensitivity_samples" in str(exc.value)
    run = tmp_path / "runs" / "empty"
    run.mkdir(parents=True)
    (run / "recipe.yaml").write_text(dump(load_recipe(overrides={"run": {"name": "empty"}})))
    # No trained models either: the budget is what it reports, so nothing was looked at first.
    assert edgedistill.main(["export", "--run", str(run), "--set", "max_f1_drop=-1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "max_f1_drop: -1" in err and "negative" in err and "no trained models" not in err
    assert not (run / "artifacts").exists()


def test_a_negative_budget_is_refused_before_a_model_is_taken_in(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    import edgedistill_cli.commands as edgedistill

    runs = tmp_path / "runs"
    assert edgedistill.main(["export", "--model", str(tiny_checkpoint), "--data", str(tiny_csv), "--text-column",
                             "text", "--label-column", "label", "--runs-dir",
                             str(runs), "--results-dir", str(tmp_path / "results"), "--set",
                             "max_f1_drop=-0.1"]) == 2
    assert "max_f1_drop: -0.1 is negative" in " ".join(capsys.readouterr().err.split())
    assert not runs.exists()                       # the classifier was not saved as a run


# --- the pieces on their own -------------------------------------------------------------------

def test_greedy_repair_stops_at_the_first_exclusion_within_budget():
    from export.sensitivity import greedy_repair, rank_blocks

    # Validation macro-F1 per set of blocks kept in FP32: "b" matters most, "a" then closes the gap.
    table = {(): 0.80, ("a",): 0.82, ("b",): 0.86, ("c",): 0.80, ("b", "a"): 0.899, ("b", "a", "c"): 0.90}
    calls = []

    def score(excluded):
        calls.append(tuple(excluded))
        return {"macro_f1": table[tuple(excluded)], "agreement_pct": 90.0, "mean_abs_dlogit": 0.1}

    plain = score([])
    ranking = rank_blocks(["a", "b", "c"], score, 0.90, plain)
    assert [r["block"] for r in ranking] == ["b", "a", "c"]
    assert ranking[0]["recovered_points"] == pytest.approx(6.0) and ranking[0]["f1_delta_points"] == pytest.approx(-4)
    calls.clear()
    repair = greedy_repair(ranking, score, 0.90, plain, max_f1_drop=0.5)
    assert repair["outcome"] == "repaired" and repair["excluded"] == ["b", "a"] and calls == [("b", "a")]
    assert greedy_repair(ranking, score, 0.90, plain, max_f1_drop=0.0)["excluded"] == ["b", "a", "c"]
    assert greedy_repair(ranking, score, 0.90, plain, max_f1_drop=10.0)["outcome"] == "within_budget"
    table[("b", "a")], table[("b", "a", "c")] = 0.86, 0.85          # nothing gets within 0.5 points
    unmet = greedy_repair(ranking, score, 0.90, plain, max_f1_drop=0.5)
    assert unmet["outcome"] == "fp32" and unmet["excluded"] == [] and len(unmet["steps"]) == 3


def test_ties_are_ordered_by_agreement_then_logit_distance():
    from export.sensitivity import rank_blocks

    scores = {"a": (0.9, 95.0, 0.2), "b": (0.9, 97.0, 0.3), "c": (0.9, 97.0, 0.1)}
    ranking = rank_blocks(list(scores), lambda ex: dict(zip(("macro_f1", "agreement_pct", "mean_abs_dlogit"),
                                                            scores[ex[0]])), 0.9,
                          {"macro_f1": 0.9, "agreement_pct": 90.0, "mean_abs_dlogit": 0.5})
    assert [r["block"] for r in ranking] == ["c", "b", "a"]


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_every_block_is_found_in_each_family(family, tmp_path):
    from export import blocks, convert

    path = convert.export_onnx(make_tiny_model(family, vocab_size=40), tmp_path / family)
    found = blocks.onnx_blocks(path)
    assert blocks.forward_order(found) == blocks.block_names(2), found
    assert all(len(found[f"layer.{i}.{k}"]) == 1 for i in (0, 1) for k in ("attn_out", "ffn_in", "ffn_out"))
    assert all(len(found[f"layer.{i}.qkv"]) >= 3 for i in (0, 1))                 # Q, K and V at least
    names = [n for nodes in found.values() for n in nodes]
    assert len(names) == len(set(names))                                          # one block per node


def test_nncf_keeps_the_excluded_block_in_fp32(tmp_path):
    import openvino as ov

    from export import blocks, convert

    tok = make_tokenizer(tmp_path / "vocab")
    path = convert.export_onnx(make_tiny_model("bert", vocab_size=len(tok)), tmp_path / "onnx")
    feeds = [{k: v.astype(np.int64) for k, v in tok([t], return_tensors="np").items()} for t in tiny_texts(16)[0]]
    nodes = convert.quantize_nncf(path, tmp_path / "ov" / "model.xml", feeds, exclude_blocks=[SENSITIVE])
    assert nodes == blocks.openvino_blocks(ov.convert_model(str(path)))[SENSITIVE] and nodes
    model = ov.Core().read_model(str(tmp_path / "ov" / "model.xml"))
    fed_by_fq = {op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "MatMul"
                 and any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())}
    assert fed_by_fq and not fed_by_fq & set(nodes)
    assert any("layer.0/output/dense" in n for n in fed_by_fq)                     # the same block elsewhere: INT8


def test_export_report_names_each_int8_artifact_off_its_fp32_source_on_test_and_says_why():
    from export.report import test_check

    def art(name, delta, precision="int8", **extra):
        return {"artifact": name, "precision": precision, "macro_f1_delta": delta, "eval_samples": 500, **extra}

    rows = [art("odd/onnx-fp32", 0.0, precision="fp32"),
            art("odd/onnx-int8-dynamic", -0.001, sensitivity={"plain": {"f1_delta_points": -0.2}}),
            art("odd/openvino-int8", -0.012, sensitivity={"plain": {"f1_delta_points": -0.9}}),
            art("odd/openvino-int8-repaired", -0.008, repair={"of": "odd/openvino-int8",
                                                               "validation": {"f1_delta_points": -0.3}},
                speed_vs_int8={"speedup": 0.75, "low": 0.7, "high": 0.8}),
            art("even/onnx-int8-dynamic", -0.007, sensitivity={"plain": {"f1_delta_points": 0.1}})]
    text = "\n".join(test_check(rows, 0.5))
    assert "1 of 4 INT8 artifacts are within 0.5 pts" in text
    assert "odd/onnx-int8-dynamic:" not in text                       # -0.1 pts: within
    assert "- odd/openvino-int8: -1.20 pts on 500 test texts; its repaired sibling" in text
    assert "- odd/openvino-int8-repaired: -0.80 pts" in text and "does not confirm" in text
    assert "- even/onnx-int8-dynamic: -0.70 pts" in text and "validation and test disagree" in text
    assert "odd/openvino-int8-repaired: 0.75x the plain INT8's speed [0.70, 0.80]: misses it" in text
    assert test_check([art("odd/onnx-fp32", 0.0, precision="fp32")], 0.5) == []


# --- the evidence: intervals on validation, agreement and KL on the pool ------------------------

def test_the_paired_drop_interval_matches_scikit_learn_and_shrinks_with_agreement():
    from sklearn.metrics import f1_score

    from export.sensitivity import drop_interval

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    source = np.where(rng.random(500) < 0.75, labels, rng.integers(0, 3, 500))
    few = source.copy()
    few[:3] = (few[:3] + 1) % 3                              # INT8 flips 3 of 500 labels
    many = np.where(rng.random(500) < 0.1, (source + 1) % 3, source)
    point, low, high = drop_interval(labels, source, many, 3)
    expected = 100 * (f1_score(labels, source, average="macro") - f1_score(labels, many, average="macro"))
    assert point == pytest.approx(expected) and low < point < high
    p2, l2, h2 = drop_interval(labels, source, few, 3)
    assert l2 <= p2 <= h2 and h2 - l2 < high - low            # fewer flips, a tighter interval
    assert drop_interval(labels, source, source, 3) == (0.0, 0.0, 0.0)


def test_the_mean_drop_over_pairs_scores_every_pair_on_the_same_resample():
    from export.sensitivity import drop_interval, mean_drop_interval

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    better = [np.where(rng.random(400) < 0.8, labels, rng.integers(0, 3, 400)) for _ in range(2)]
    worse = [np.where(rng.random(400) < 0.7, labels, rng.integers(0, 3, 400)) for _ in range(2)]
    one = [drop_interval(labels, a, b, 3) for a, b in zip(better, worse)]
    point, low, high = mean_drop_interval(labels, list(zip(better, worse)), 3)
    assert point == pytest.approx((one[0][0] + one[1][0]) / 2) and low < point < high
    # two copies of one pair are that pair: the same resample scores both, so the interval does not narrow
    assert mean_drop_interval(labels, [(better[0], worse[0])] * 2, 3) == pytest.approx(one[0])
    # the mean of two agreeing pairs is no wider than the wider of them
    assert high - low <= max(h - lo for _, lo, h in one)
    assert mean_drop_interval(labels, [(better[0], better[0])] * 2, 3) == (0.0, 0.0, 0.0)


def test_a_drop_inside_its_noise_is_not_over_budget_and_is_not_repaired():
    from export.sensitivity import greedy_repair, score_logits, verdict

    rng = np.random.default_rng(1)
    n, names = 500, ["a", "b", "c"]
    labels = rng.integers(0, 3, n)
    reference = rng.normal(size=(n, 3)) + 2.0 * np.eye(3)[labels]
    pool_ref = rng.normal(size=(4000, 3))

    def int8(flip_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(seed)
        val, pool = reference.copy(), pool_ref.copy()
        for logits in (val, pool):     # swap the top two classes of a share of the texts: those labels flip
            rows = np.flatnonzero(r.random(len(logits)) < flip_share)
            top = logits[rows].argsort(1)[:, -2:]
            logits[rows, top[:, 1]], logits[rows, top[:, 0]] = logits[rows, top[:, 0]], logits[rows, top[:, 1]] + 1e-3
        return val, pool

    source_f1 = score_logits(reference, reference, labels, names)["macro_f1"]
    quiet = score_logits(*int8(0.002, 2)[:1], reference, labels, names, int8(0.002, 2)[1], pool_ref)
    loud = score_logits(*int8(0.08, 3)[:1], reference, labels, names, int8(0.08, 3)[1], pool_ref)
    assert quiet["pool_agreement_pct"] > 99.5 and quiet["pool_n"] == 4000 and quiet["pool_kl"] > 0
    assert verdict(quiet, source_f1, 0.5) in ("within", "noise")
    assert verdict(loud, source_f1, 0.5) == "over" and loud["pool_agreement_high"] < 99.5
    repair = greedy_repair([], lambda ex: quiet, source_f1, quiet, 0.5)
    assert repair["outcome"] == "within_budget" and repair["steps"] == [] and "_pool_kl" not in repair["plain"]
    # An estimate above the budget whose interval holds no drop at all, with many pool flips: inside the noise.
    noisy = {**quiet, "macro_f1": source_f1 - 0.008, "drop_points": 0.8, "drop_low": -0.4, "drop_high": 2.0,
             "pool_agreement_low": 97.0, "pool_agreement_high": 98.0}
    assert verdict(noisy, source_f1, 0.5) == "noise"
    assert verdict({**noisy, "drop_low": 0.1}, source_f1, 0.5) == "over"          # the interval shows a drop
    assert verdict({**noisy, "pool_agreement_low": 99.6}, source_f1, 0.5) == "within"   # too few flips to matter
    assert verdict({**noisy, "macro_f1": source_f1 - 0.004, "drop_low": 0.1}, source_f1, 0.5) == "noise"


def test_only_blocks_whose_kl_cut_clears_its_interval_are_spent_on_a_repair():
    from export.sensitivity import greedy_repair, rank_blocks, strip

    rng = np.random.default_rng(2)
    plain_kl = rng.exponential(0.02, 3000)

    def score(excluded):
        kl = plain_kl.copy()
        if "big" in excluded:
            kl *= 0.2                                    # keeping it in FP32 removes most of the damage
        if "tiny" in excluded:
            kl = kl + rng.normal(0, 1e-4, kl.size)       # no real effect, only noise
        over = "big" not in excluded
        return {"macro_f1": 0.80 if over else 0.897, "agreement_pct": 95.0, "mean_abs_dlogit": 0.1,
                "drop_points": 10.0 if over else 0.3, "drop_low": 8.0 if over else -0.2,
                "drop_high": 12.0 if over else 0.8, "pool_agreement_pct": 97.0 if over else 99.8,
                "pool_agreement_low": 96.0 if over else 99.6, "pool_agreement_high": 98.0 if over else 99.9,
                "pool_n": kl.size, "pool_kl": float(kl.mean()), "_pool_kl": kl}

    plain = score([])
    ranking = rank_blocks(["tiny", "big"], score, 0.90, plain)
    assert [(r["block"], r["counts"]) for r in ranking] == [("big", True), ("tiny", False)]
    assert ranking[0]["kl_reduction_low"] > 0 >= ranking[1]["kl_reduction_low"]
    assert all("_score" not in r for r in strip(ranking))        # what a manifest gets: no per-text arrays
    repair = greedy_repair(ranking, score, 0.90, plain, max_f1_drop=0.5)
    assert repair["outcome"] == "repaired" and repair["excluded"] == ["big"]


def test_the_evidence_line_orients_its_interval_as_its_words():
    from export.sensitivity import evidence_text

    # INT8 0.80 below FP32: the drop and its interval as they are
    below = evidence_text({"f1_delta_points": -0.8, "drop_low": -0.4, "drop_high": 1.9})
    assert below == "0.80 pts below FP32 on validation [-0.40, +1.90]"
    # INT8 0.05 above FP32 (a drop of -0.05 [-1.00, +0.83]): the gain and its interval
    above = evidence_text({"f1_delta_points": 0.05, "drop_low": -1.0, "drop_high": 0.83})
    assert above == "0.05 pts above FP32 on validation [-0.83, +1.00]"
