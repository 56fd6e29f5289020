"""Shared fixtures: tiny random models and tiny data written by the tests themselves."""
from __future__ import annotations

import os
import random

import pytest

# Two cores: keep each test process on one intra-op thread so tests stay predictable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WORDS = ("good bad great awful love hate fine ok happy sad movie food service day night people "
         "really not very the a is was this that it i you we they").split()
LABELS = ["negative", "neutral", "positive"]


def write_vocab(folder) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return str(path)


def make_tokenizer(folder):
    from transformers import BertTokenizer

    return BertTokenizer(vocab=write_vocab(folder), do_lower_case=True)


def make_tiny_model(family: str = "bert", num_layers: int = 2, num_labels: int = 3, vocab_size: int = 64,
                    seed: int = 0):
    """A random 2-layer encoder classifier of the given family (bert, distilbert, mpnet)."""
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        MPNetConfig,
        MPNetForSequenceClassification,
    )

    torch.manual_seed(seed)
    id2label = {i: n for i, n in enumerate(LABELS[:num_labels])}
    common = dict(vocab_size=vocab_size, num_labels=num_labels, id2label=id2label,
                  label2id={v: k for k, v in id2label.items()}, max_position_embeddings=128)
    if family == "bert":
        cfg = BertConfig(hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=2,
                         intermediate_size=64, **common)
        return BertForSequenceClassification(cfg)
    if family == "distilbert":
        cfg = DistilBertConfig(dim=32, n_layers=num_layers, n_heads=2, hidden_dim=64, **common)
        return DistilBertForSequenceClassification(cfg)
    if family == "mpnet":
        cfg = MPNetConfig(hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=2,
                          intermediate_size=64, **common)
        return MPNetForSequenceClassification(cfg)
    raise ValueError(family)


def tiny_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Texts whose label is learnable from words (positive words -> positive, ...)."""
    rng = random.Random(seed)
    pos, neg = ["good", "great", "love", "happy", "fine"], ["bad", "awful", "hate", "sad", "not"]
    neutral = ["movie", "food", "service", "day", "night", "people"]
    texts, labels = [], []
    for i in range(n):
        label = LABELS[i % 3]
        pool = {"negative": neg, "neutral": neutral, "positive": pos}[label]
        words = [rng.choice(pool) for _ in range(rng.randint(2,
                                                             6))] + [rng.choice(neutral) for _ in range(rng.randint(0,
                                                                                                                    3))]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A save_pretrained folder (2-layer random BERT, 3 labels) with a fast tokenizer."""
    folder = tmp_path / "tiny-bert"
    tok = make_tokenizer(tmp_path / "vocab")
    model = make_tiny_model("bert", vocab_size=len(tok))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_csv(tmp_path):
    """A CSV of 120 learnable texts with columns text,label (label names)."""
    import pandas as pd

    texts, labels = tiny_texts(120)
    path = tmp_path / "tiny.csv"
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return path


def suite_main(argv: list[str]) -> int:
    """``edgedistill suite ARGV`` in this process."""
    from edgedistill_cli.commands import main

    return main(["suite", *argv])
