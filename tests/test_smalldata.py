"""Small-data distillation: the unlabelled pool, augmentation, schedules, MiniLM relation losses."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_model, make_tokenizer

from distill.data import DataError, load_dataset
from distill.losses import DistillationLoss
from distill.unlabeled import UNLABELED, augment, load_unlabeled, normalise, with_extra_texts
from edgedistill.configbase import ConfigError
from edgedistill.recipe import DataConfig, LossConfig, load_recipe

NOVEL = [f"the service was fine day {i} night" for i in range(20)]


def _data(csv, **kw):
    return load_dataset(DataConfig(source="file", path=str(csv), text_column="text", label_column="label", **kw))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "txt"])
def test_unlabelled_file_in_every_format(tmp_path, tiny_csv, fmt):
    path = tmp_path / f"pool.{fmt}"
    df = pd.DataFrame({"body": NOVEL + [NOVEL[0].upper()]})  # a duplicate after normalisation
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    elif fmt == "parquet":
        df.to_parquet(path)
    else:
        path.write_text("\n".join(df["body"]) + "\n\n")
    cfg = DataConfig(
        source="file",
        path=str(tiny_csv),
        text_column="text",
        label_column="label",
        unlabeled=str(path),
        unlabeled_text_column="body",
    )
    pool, info = load_unlabeled(cfg, load_dataset(cfg))
    assert pool == NOVEL and info["size"] == 20
    capped, _ = load_unlabeled(DataConfig(**{**vars(cfg), "max_unlabeled": 5}), load_dataset(cfg))
    again, _ = load_unlabeled(DataConfig(**{**vars(cfg), "max_unlabeled": 5}), load_dataset(cfg))
    assert len(capped) == 5 and capped == again and set(capped) <= set(NOVEL)


def test_empty_or_wrong_unlabelled_file_is_refused(tmp_path, tiny_csv):
    data = _data(tiny_csv)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="holds no texts"):
        load_unlabeled(DataConfig(unlabeled=str(empty)), data)
    csv = tmp_path / "pool.csv"
    pd.DataFrame({"tweet": NOVEL}).to_csv(csv, index=False)
    with pytest.raises(DataError, match="missing column.*'text'.*tweet"):
        load_unlabeled(DataConfig(unlabeled=str(csv)), data)


def test_pool_overlapping_validation_or_test_is_refused_with_the_count(tmp_path, tiny_csv):
    data = _data(tiny_csv)
    leaked = [data.validation.texts[0], "  " + data.test.texts[0].upper() + " ", data.test.texts[1]]
    expected = len({normalise(t) for t in leaked})
    path = tmp_path / "pool.txt"
    path.write_text("\n".join(NOVEL + leaked))
    with pytest.raises(DataError, match=f"{expected} text\\(s\\) also appear in the validation or test split"):
        load_unlabeled(DataConfig(unlabeled=str(path)), data)


def test_rest_of_train_is_the_uncapped_training_texts_minus_held_out(tiny_csv):
    cfg = DataConfig(
        source="file",
        path=str(tiny_csv),
        text_column="text",
        label_column="label",
        max_train=30,
        unlabeled="rest-of-train",
    )
    data = load_dataset(cfg)
    pool, info = load_unlabeled(cfg, data)
    held_out = {normalise(t) for t in data.validation.texts + data.test.texts}
    assert pool and not any(normalise(t) in held_out for t in pool)
    assert len(data.unused_train) == 96 - 30
    assert info["dropped_overlapping_held_out"] == sum(normalise(t) in held_out for t in data.unused_train)
    # a cap that does not bite leaves no pool: training goes on with the labelled texts only
    cfg = DataConfig(**{**vars(cfg), "max_train": 500})
    assert load_unlabeled(cfg, load_dataset(cfg))[0] == []


def test_unlabelled_settings_validated_up_front(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_recipe(
            overrides={
                "data": {
                    "unlabeled": str(tmp_path / "missing.csv"),
                    "max_unlabeled": 0,
                    "augment_copies": -1,
                    "augment_prob": 1.5,
                }
            }
        )
    msg = str(e.value)
    for part in ("missing.csv does not exist", "max_unlabeled: 0", "augment_copies: -1", "augment_prob: 1.5"):
        assert part in msg
    with pytest.raises(ConfigError, match="rest-of-train needs data.max_train"):
        load_recipe(overrides={"data": {"unlabeled": "rest-of-train"}})
    with pytest.raises(ConfigError, match="must be rest-of-train or a file ending in"):
        load_recipe(overrides={"data": {"unlabeled": str(tmp_path / "pool.xlsx")}})


def test_schedule_and_loss_settings_validated_up_front():
    with pytest.raises(ConfigError) as e:
        load_recipe(
            overrides={
                "methods": {"odd": {"lr": -1.0, "epochs": 0, "warmup_ratio": 1.5, "early_stopping_patience": 0}},
                "train": {"early_stopping_patience": 0, "warmup_ratio": -0.1},
                "loss": {"attention": -1.0},
            }
        )
    msg = str(e.value)
    for part in (
        "methods.odd.lr: -1.0",
        "methods.odd.epochs: 0",
        "methods.odd.warmup_ratio: 1.5",
        "methods.odd.early_stopping_patience: 0",
        "train.early_stopping_patience: 0",
        "train.warmup_ratio: -0.1",
        "loss.attention: -1.0",
    ):
        assert part in msg, part
    with pytest.raises(ConfigError, match="methods.odd: teacher-labelled texts .* needs a distillation term"):
        load_recipe(overrides={"data": {"augment_copies": 1}, "loss": {"ce": 1.0, "kl": 0.0}})
    with pytest.raises(ConfigError, match="every loss weight is 0"):
        load_recipe(overrides={"loss": {"ce": 0.0, "kl": 0.0}})
    r = load_recipe(
        overrides={"methods": {"odd": {"lr": 1e-4, "epochs": 5, "warmup_ratio": 0.0, "early_stopping_patience": 2}}}
    )
    assert (r.methods["odd"].lr, r.methods["odd"].epochs, r.methods["odd"].early_stopping_patience) == (1e-4, 5, 2)


def test_augmentation_is_seeded_and_changes_words(tmp_path):
    tok = make_tokenizer(tmp_path)
    texts = ["good movie really very happy day"] * 4
    a = augment(texts, tok, copies=2, prob=0.5, seed=1)
    assert a == augment(texts, tok, copies=2, prob=0.5, seed=1) and len(a) == 8
    assert any(t != texts[0] for t in a) and any("[MASK]" in t for t in a)
    assert augment(texts, tok, copies=0, prob=0.5, seed=1) == []


def test_unlabelled_rows_get_distillation_terms_but_no_cross_entropy():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, UNLABELED, 2, UNLABELED])
    loss = DistillationLoss(LossConfig(ce=1.0, kl=1.0, temperature=2.0))
    total, parts = loss(s, labels, t)
    assert parts["ce"] == pytest.approx(float(F.cross_entropy(s[[0, 2]], labels[[0, 2]])), rel=1e-6)
    total, parts = loss(s, torch.full((4,), UNLABELED), t)  # a batch of pool texts only
    assert set(parts) == {"kl"} and torch.isfinite(total)


def test_teacher_soft_labels_of_the_pool_are_deterministic(tmp_path, tiny_checkpoint, tiny_csv):
    from transformers import AutoTokenizer, BertForSequenceClassification

    from distill.train import TeacherCache

    data = with_extra_texts(_data(tiny_csv), NOVEL)
    assert (data.train.labels == UNLABELED).sum() == len(NOVEL)
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    logits = []
    for seed in (0, 1):
        torch.manual_seed(seed)  # dropout is off in eval mode: the seed must not matter
        teacher = BertForSequenceClassification.from_pretrained(tiny_checkpoint)
        teacher.train()  # the cache must put it in eval mode itself
        logits.append(TeacherCache(teacher, tok, data.train, 16, 8, "cpu", with_hidden=False, progress=False).logits)
    assert np.array_equal(logits[0], logits[1]) and logits[0].shape == (len(data.train), 3)


# --- MiniLM relation losses against a direct computation ---------------------------------------


def _eager_pair():
    teacher = make_tiny_model("bert", num_layers=4, vocab_size=40, seed=1)
    student = make_tiny_model("bert", num_layers=2, vocab_size=40, seed=2)
    for m in (teacher, student):
        m.config._attn_implementation = "eager"  # so output_attentions returns the probabilities
        m.eval()
        with torch.no_grad():  # random tiny models attend almost uniformly: sharpen them
            for layer in m.bert.encoder.layer:
                for proj in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value):
                    proj.weight.mul_(6.0)
    ids = torch.randint(5, 40, (3, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    mask[2, 3:] = 0
    return teacher, student, ids, mask


def _kl_rows(p_t, p_s, mask):
    """KL(p_t || p_s) per query row, averaged over heads and real query tokens, computed plainly."""
    vals = []
    for b in range(p_t.shape[0]):
        n = int(mask[b].sum())
        for h in range(p_t.shape[1]):
            for q in range(n):
                pt, ps = p_t[b, h, q, :n], p_s[b, h, q, :n]
                vals.append(float((pt * (pt.log() - ps.log())).sum().detach()))
    return sum(vals) / len(vals)


def _relation_parts(layer_map, s_out, t_logits, mask, s_qkv, t_qkv, **weights):
    """The distillation loss with only the relation terms in ``weights`` (labels unused: ce 0)."""
    return DistillationLoss(LossConfig(ce=0.0, kl=0.0, **weights), layer_map=layer_map)(
        s_out.logits,
        torch.zeros(3, dtype=torch.long),
        t_logits,
        attention_mask=mask,
        student_qkv=s_qkv,
        teacher_qkv=t_qkv,
        num_heads=2,
    )


def test_attention_transfer_matches_output_attentions():
    from distill.models import QKVCapture

    teacher, student, ids, mask = _eager_pair()
    layer_map = [1, 3]
    s_cap, t_cap = QKVCapture(student), QKVCapture(teacher, layer_map)
    s_out = student(input_ids=ids, attention_mask=mask, output_attentions=True)
    t_out = teacher(input_ids=ids, attention_mask=mask, output_attentions=True)
    _, parts = _relation_parts(layer_map, s_out, t_out.logits, mask, s_cap.outputs, t_cap.outputs, attention=1.0)
    expected = np.mean([_kl_rows(t_out.attentions[t], s_out.attentions[i], mask) for i, t in enumerate(layer_map)])
    assert set(parts) == {"attention"} and parts["attention"] == pytest.approx(expected, rel=1e-3)
    assert parts["attention"] > 0.05
    # identical models transfer nothing
    same, _ = _relation_parts([0, 1], s_out, s_out.logits, mask, s_cap.outputs, s_cap.outputs, attention=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_value_relation_matches_a_direct_computation():
    from distill.models import QKVCapture

    teacher, student, ids, mask = _eager_pair()
    layer_map = [0, 2]
    s_cap, t_cap = QKVCapture(student), QKVCapture(teacher, layer_map)
    s_out = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    t_out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)

    def relation(model, hidden_in, layer):  # V from the layer's input, then softmax(V V^T / sqrt(d)) per head
        v = model.bert.encoder.layer[layer].attention.self.value(hidden_in)
        v = v.view(3, 7, 2, 16).transpose(1, 2)
        scores = v @ v.transpose(-1, -2) / 4.0 + (1 - mask[:, None, None, :]) * -1e9
        return scores.softmax(-1)

    expected = np.mean(
        [
            _kl_rows(relation(teacher, t_out.hidden_states[t], t), relation(student, s_out.hidden_states[i], i), mask)
            for i, t in enumerate(layer_map)
        ]
    )
    _, parts = _relation_parts(
        layer_map, s_out, t_out.logits, mask, s_cap.outputs, t_cap.outputs, value_relation=1.0
    )
    assert parts["value_relation"] == pytest.approx(expected, rel=1e-3) and expected > 0.05


def test_students_train_on_pool_with_early_stopping_relations_and_record_compute(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    pool = tmp_path / "pool.txt"
    pool.write_text("\n".join(NOVEL))
    recipe = tiny_recipe(
        tmp_path,
        tiny_checkpoint,
        tiny_csv,
        data={"unlabeled": str(pool), "augment_copies": 1},
        train={"epochs": 4, "early_stopping_patience": 1, "lr": 1e-6},
        loss={"attention": 1.0, "value_relation": 0.5},
    )
    recipe.methods["lora"].enabled = False
    recipe.methods["even"].enabled = False
    recipe.methods["tiny"].enabled = False
    metrics = train_run(recipe, progress=False)
    m = metrics["models"]
    assert metrics["data"]["student_extra_texts"]["unlabeled"] == 20
    assert metrics["data"]["student_extra_texts"]["augmented"] == 96
    assert m["teacher"]["train_examples"] == 96 and m["odd"]["train_examples"] == 96 + 20 + 96
    for name in ("teacher", "odd", "hybrid"):
        c = m[name]["compute"]
        # a learning rate this small stops improving at once: patience 1 ends before epoch 4
        assert c["epochs_run"] < 4 and len(m[name]["history"]["epochs"]) == c["epochs_run"]
        assert c["examples_seen"] == m[name]["train_examples"] * c["epochs_run"]
        assert c["optimizer_steps"] == c["epochs_run"] * -(-m[name]["train_examples"] // 8)
        assert c["train_flops"] > 0 and c["wall_time_s"] > 0
    assert m["teacher"]["compute"]["teacher_forward_flops"] == 0
    assert m["odd"]["compute"]["teacher_forward_flops"] > 0  # the teacher ran beside it
    assert m["hybrid"]["compute"]["train_flops"] < m["odd"]["compute"]["train_flops"]  # frozen weights: no grads
    assert {"attention", "value_relation", "kl", "hidden"} <= set(m["odd"]["history"]["steps"][0])
    saved = json.loads((recipe.results_path / "metrics.json").read_text())
    assert saved["models"]["odd"]["early_stopping_patience"] == 1
    table = (recipe.results_path / "results.md").read_text()
    assert "Optimizer steps" in table and f"| {m['odd']['train_examples']} (96) |" in table


# --- layer analysis and layers: auto -----------------------------------------------------------


def test_pick_auto_keeps_the_layers_whose_removal_hurts_most():
    from distill.models import pick_auto, select_layers
    from edgedistill.checkpoint import ModelError

    assert pick_auto([0.01, 0.20, -0.02, 0.05, 0.20, 0.0], 3) == [1, 3, 4]
    assert select_layers("auto", 6, None, [0.01, 0.20, -0.02, 0.05, 0.20, 0.0]) == [1, 3, 4]  # half depth
    with pytest.raises(ModelError, match="needs the teacher's per-layer contributions"):
        select_layers("auto", 6)
    with pytest.raises(ModelError, match="num_layers 7 needs 1..6"):
        select_layers("auto", 6, 7, [0.0] * 6)
    with pytest.raises(ConfigError, match="methods.odd.num_layers: 0"):
        load_recipe(overrides={"methods": {"odd": {"layers": "auto", "num_layers": 0}}})


def test_drop_one_layer_analysis_matches_direct_evaluation(tmp_path, tiny_checkpoint, tiny_csv):
    from transformers import AutoTokenizer

    from distill.layers import _val_f1, analyse_layers
    from distill.models import make_student

    teacher = make_tiny_model(
        "bert", num_layers=4, vocab_size=len(AutoTokenizer.from_pretrained(tiny_checkpoint)), seed=3
    )
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    data = _data(tiny_csv)
    result = analyse_layers(teacher.eval(), tok, data, 16, 32, num_layers=2)
    assert result["depth"] == 4 and len(result["contribution"]) == 4
    direct = _val_f1(make_student(teacher, [0, 1, 3]), tok, data, 16, 32)
    assert result["validation_macro_f1_without_layer"][2] == pytest.approx(direct)
    assert result["contribution"][2] == pytest.approx(result["teacher_validation_macro_f1"] - direct)
    subsets = result["subsets_without_training"]
    assert subsets["bottom"]["layers"] == [0, 1] and subsets["odd"]["layers"] == [0, 2]
    assert subsets["even"]["layers"] == [1, 3] and len(subsets["auto"]["layers"]) == 2


def test_auto_student_uses_the_analysis_and_writes_the_plot(tmp_path, tiny_checkpoint, tiny_csv):
    from test_train import tiny_recipe

    from distill.pipeline import train_run

    recipe = tiny_recipe(tmp_path, tiny_checkpoint, tiny_csv, train={"epochs": 1})
    for m in ("even", "lora", "hybrid", "odd"):
        recipe.methods[m].enabled = False
    recipe.methods["tiny"].layers, recipe.methods["tiny"].num_layers = "auto", 1
    metrics = train_run(recipe, progress=False)
    analysis = json.loads((recipe.results_path / "layer_analysis.json").read_text())
    assert metrics["models"]["tiny"]["layers"] == analysis["subsets_without_training"]["auto"]["layers"]
    assert (recipe.results_path / "layer_contributions.png").stat().st_size > 1000
