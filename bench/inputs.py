"""The texts a bench measures on: the test split capped as configured (stratified), and the seeded
text lists the timing scenarios cycle through. Every launcher reads them from here, so a bundle, a
GPU pack and a local run time the same texts in the same order."""
from __future__ import annotations

import random

from bench.config import BenchConfig


def bench_inputs(dataset, cfg: BenchConfig) -> dict:
    """Test texts for accuracy and the fixed, seeded text lists the timing scenarios cycle through."""
    texts, labels = cap_test(list(dataset.test.texts), [int(x) for x in dataset.test.labels], cfg)
    return timing_inputs(texts, labels, list(dataset.label_names), cfg)


def timing_inputs(texts: list[str], labels: list[int], label_names: list[str], cfg: BenchConfig) -> dict:
    """``bench_inputs`` from test texts already capped (a bench bundle carries them so)."""
    shuffled = [texts[i] for i in text_order(len(texts), cfg.seed)]
    need = cfg.batch_size * cfg.throughput_batches
    pool = (shuffled * (need // len(shuffled) + 1))[:need]
    # Real text long enough for the longest fixed length (every word is at least one token).
    longest = max([int(s) for s in (*cfg.seq_lens, *cfg.throughput_seq_lens) if s != "natural"], default=0)
    words: list[str] = []
    for i in range(100 * len(shuffled)):
        if len(words) > longest:
            break
        words += shuffled[i % len(shuffled)].split()
    return {"label_names": list(label_names), "test_texts": texts, "test_labels": labels,
            "natural_texts": shuffled[:cfg.natural_texts],
            "throughput_batches": [pool[i:i + cfg.batch_size] for i in range(0, need, cfg.batch_size)],
            "long_text": " ".join(words)}


def text_order(n: int, seed: int) -> list[int]:
    """The seeded order in which timing scenarios pick test texts (the GPU pack uses it too)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def cap_test(texts: list[str], labels: list[int], cfg: BenchConfig) -> tuple[list[str], list[int]]:
    if cfg.max_test is not None and cfg.max_test < len(texts):
        return _stratified_cap(texts, labels, cfg.max_test, cfg.seed)
    return texts, labels


def _stratified_cap(texts, labels, n, seed):
    from sklearn.model_selection import train_test_split

    idx = list(range(len(texts)))
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=labels, random_state=seed)
    except ValueError:   # a class too rare to stratify at this size
        keep = random.Random(seed).sample(idx, n)
    keep = sorted(keep)
    return [texts[i] for i in keep], [labels[i] for i in keep]
