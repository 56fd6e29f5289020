import pytest
import torch
from conftest import make_tiny_model

from distill.models import copy_is_exact, encoder_layers, make_student, param_counts, select_layers, wrap_lora
from edgedistill.checkpoint import ModelError
from edgedistill.recipe import LoraSettings


def test_odd_even_follow_one_based_naming():
    # "odd" = layers 1, 3, 5 counting from 1 = 0-based 0, 2, 4 (the course project had these swapped).
    assert select_layers("odd", 6) == [0, 2, 4]
    assert select_layers("even", 6) == [1, 3, 5]
    assert select_layers("odd", 12) == [0, 2, 4, 6, 8, 10]
    assert select_layers("even", 12) == [1, 3, 5, 7, 9, 11]
    assert select_layers("even", 12, num_layers=3) == [1, 5, 9]
    assert select_layers([5, 1], 6) == [1, 5]


def test_bottom_keeps_the_first_layers_and_refuses_more_than_the_teacher_has():
    assert select_layers("bottom", 6) == [0, 1, 2]
    assert select_layers("bottom", 12, num_layers=4) == [0, 1, 2, 3]
    with pytest.raises(ModelError, match="bottom student of 7 layers"):
        select_layers("bottom", 6, num_layers=7)


@pytest.mark.parametrize("bad", [[0, 0], [7], []])
def test_bad_layer_lists(bad):
    with pytest.raises(ModelError):
        select_layers(bad, 6)


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
@pytest.mark.parametrize("spec", ["odd", "even"])
def test_student_copies_the_chosen_teacher_layers(family, spec):
    teacher = make_tiny_model(family, num_layers=4)
    idx = select_layers(spec, 4)
    student = make_student(teacher, idx)
    assert len(encoder_layers(student)[2]) == 2
    assert copy_is_exact(student, teacher, idx)
    assert not copy_is_exact(student, teacher, [i ^ 1 for i in idx])   # the other half differs
    # embeddings and head come from the teacher
    for (n, p) in student.named_parameters():
        if "embeddings" in n or "classifier" in n:
            assert torch.equal(p, dict(teacher.named_parameters())[n])
    assert student.config.edgedistill_teacher_layers == idx
    out = student(input_ids=torch.tensor([[2, 7, 8, 3]]), output_hidden_states=True)
    assert out.logits.shape == (1, 3) and len(out.hidden_states) == 3


def test_lora_and_hybrid_trainable_parameter_counts():
    teacher = make_tiny_model("bert", num_layers=4)
    settings = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["query", "key", "value"])
    lora = wrap_lora(make_tiny_model("bert", num_layers=4), settings)
    counts = param_counts(lora)
    hidden, layers, labels = 32, 4, 3
    expected_lora = layers * 3 * settings.r * (hidden + hidden)        # A (r x in) + B (out x r) per target
    expected_head = hidden * labels + labels                             # classifier stays trainable
    assert counts["params_trainable"] == expected_lora + expected_head
    hybrid = wrap_lora(make_student(teacher, select_layers("odd", 4)), settings)
    h = param_counts(hybrid)
    assert h["params_trainable"] == expected_lora // 2 + expected_head


def test_lora_unknown_target_lists_linear_layers():
    with pytest.raises(ModelError, match="q_lin"):
        wrap_lora(make_tiny_model("distilbert"), LoraSettings(target_modules=["query"]))


def test_model_folder_without_model_type_is_a_clear_error(tmp_path, tiny_checkpoint, tiny_csv, capsys):
    import json

    from distill.models import load_classifier
    from edgedistill_cli.commands import main

    folder = tiny_checkpoint.rename(tmp_path / "teacher")   # no family in the name for transformers to guess from
    config = folder / "config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "model_type"}))
    with pytest.raises(ModelError, match=r"config.json has no 'model_type'.*\"model_type\": \"bert\""):
        load_classifier(str(folder), ["negative", "neutral", "positive"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"run: {{runs_dir: {tmp_path / 'runs'}, results_dir: {tmp_path / 'results'}}}\n"
                      f"data: {{source: file, path: {tiny_csv}, text_column: text, label_column: label}}\n"
                      f"teacher: {{model: {folder}}}\n")
    assert main(["train", str(recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "model_type" in err
