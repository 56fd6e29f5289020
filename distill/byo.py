"""Bring your own model: an already fine-tuned sequence classifier used as the teacher as it is.

    teacher: {model: path/to/save_pretrained-folder, fine_tune: false}     # or a hub id

The model is not trained. Its labels come from its config's ``id2label``; they must be the
data's label names (checked before any model weights are read, the error lists both). When
they are the same names in another order, the saved teacher's head is permuted to the data's
class order (the rows of its last linear layer: exact). The teacher is then evaluated on the
validation and test splits like a trained one, saved as ``runs/<run>/models/teacher`` (so export,
bench and the students use it unchanged) and recorded with ``fine_tuned: false`` and its source.
"""
from __future__ import annotations

from distill.models import load_error, resolve_model_source, weights_problem
from edgedistill.checkpoint import SAFE_LOAD, SAFE_WEIGHTS, ModelError


def model_label_names(source: str) -> list[str]:
    """The classifier's label names in class-id order, from its config alone (no weights read)."""
    from transformers import AutoConfig

    path = resolve_model_source(source)
    try:
        config = AutoConfig.from_pretrained(path, **SAFE_LOAD)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not read the config of teacher.model {source!r}: {exc}") from None
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label[i]) for i in sorted(id2label, key=int)]


def check_labels(source: str, model_labels: list[str], data_labels: list[str]) -> None:
    """Raise when the model's label set is not the data's (the message lists both sets)."""
    if sorted(model_labels) == sorted(data_labels):
        return
    only_model = sorted(set(model_labels) - set(data_labels))
    only_data = sorted(set(data_labels) - set(model_labels))
    raise ModelError(
        f"teacher.model {source!r} is used as it is (teacher.fine_tune: false), but its labels differ from the "
        f"data's. Model labels (its config's id2label): {model_labels}; data labels: {data_labels}"
        + (f"; only in the model: {only_model}" if only_model else "")
        + (f"; only in the data: {only_data}" if only_data else "")
        + ". Use data with the model's labels (for source: file, map the label column or set data.labels), or "
          "set id2label in the model's config.json to the data's label names, or fine-tune (teacher.fine_tune: true).")


def head_permuted(model, data_labels: list[str]):
    """``model`` with its classes in ``data_labels`` order: the rows of the last linear layer that
    outputs one value per class are reordered (and id2label / label2id with them)."""
    import torch
    from torch import nn

    current = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if current == list(data_labels):
        return model
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == model.config.num_labels]
    if not heads:
        raise ModelError(f"{type(model).__name__}: found no linear layer with one output per class to reorder "
                         f"its labels {current} to the data's {data_labels}")
    head = heads[-1]
    order = torch.tensor([current.index(name) for name in data_labels])
    with torch.no_grad():
        head.weight.copy_(head.weight[order])
        if head.bias is not None:
            head.bias.copy_(head.bias[order])
    model.config.id2label = dict(enumerate(data_labels))
    model.config.label2id = {n: i for i, n in enumerate(data_labels)}
    return model


def evaluate_as_is(source: str, data, max_length: int, batch_size: int, device, max_samples: int | None = None,
                   seed: int = 42) -> dict:
    """Load the given classifier, align its head to the data's label order and evaluate it on
    the validation and test splits (each capped at ``max_samples``, stratified and seeded);
    returns the model, tokenizer, both metrics dicts and the ``eval_samples`` per split."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill.data import _cap
    from distill.train import predict_logits
    from edgedistill.metrics import classification_metrics, softmax

    path = resolve_model_source(source)
    problem = weights_problem(path)
    if problem:
        raise ModelError(problem)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, **SAFE_WEIGHTS)
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **SAFE_LOAD)
    except (OSError, ValueError) as exc:
        raise load_error(source, path, exc) from None
    model = head_permuted(model, data.label_names).to(device).eval()
    out = {"model": model, "tokenizer": tokenizer, "source": path, "eval_samples": {}}
    for split in ("validation", "test"):
        part = getattr(data, split)
        if max_samples is not None and len(part) > max_samples:
            part = _cap(part, max_samples, seed, split)[0]
        logits = predict_logits(model, tokenizer, part, max_length, batch_size, device)
        out[split] = classification_metrics(part.labels, softmax(logits), data.label_names)
        out["eval_samples"][split] = len(part)
    return out
