"""Texts the students learn from without labels: an in-domain pool and augmented copies.

A user with a few thousand labels usually has far more unlabelled text. The fine-tuned teacher
labels the pool once (its logits are cached with the labelled texts' in ``TeacherCache``), and
the students train on labelled + teacher-labelled texts: pool and augmented texts carry the
label -1, so they get the distillation terms and no cross-entropy (see distill/losses.py).

The pool must never hold a validation or test text, or model selection and the reported scores
would leak: exact overlap after normalisation (case, whitespace) is refused for a user's file;
for ``rest-of-train`` (texts of the data set itself) duplicates of held-out texts are dropped
and counted, since the data set, not the user, put them there.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from distill.data import DataError, Dataset, Split, _read_table, _require_columns
from edgedistill.recipe import REST_OF_TRAIN, DataConfig

UNLABELED = -1  # the label of a text that only the teacher labels


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def read_text_file(path: Path, column: str) -> list[str]:
    """Texts from a .txt (one per line) or a .csv / .jsonl / .parquet file's ``column``."""
    if not path.is_file():
        raise DataError(f"unlabelled text file {path} does not exist; check data.unlabeled")
    if path.suffix.lower() == ".txt":
        texts = path.read_text(encoding="utf-8", errors="replace").splitlines()
    else:
        try:
            df = _read_table(path)
        except DataError:
            raise
        except ValueError as exc:  # e.g. an empty CSV
            raise DataError(f"unlabelled text file {path} could not be read: {exc}") from None
        _require_columns(df, [column], path)
        texts = df[column].dropna().astype(str).tolist()
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(
            f"unlabelled text file {path} holds no texts (column {column!r}); "
            "give a file with at least one non-empty text, or drop data.unlabeled"
        )
    return texts


def load_unlabeled(cfg: DataConfig, data: Dataset) -> tuple[list[str], dict]:
    """The unlabelled pool for ``data`` (deduplicated, capped, never overlapping validation/test)."""
    if cfg.unlabeled is None:
        return [], {}
    held_out = {normalise(t) for t in data.validation.texts} | {normalise(t) for t in data.test.texts}
    if cfg.unlabeled == REST_OF_TRAIN:
        raw, origin = list(data.unused_train), f"{REST_OF_TRAIN} of {data.info.get('origin', cfg.source)}"
        if not raw:
            # A recipe written for a large data set still runs on a small one: no pool, said out loud.
            print(
                f"Note: unlabeled: rest-of-train found no training texts beyond max_train ({len(data.train)} "
                "labelled); the students train on the labelled texts only. Give a file of in-domain texts for a pool."
            )
            return [], {
                "origin": origin,
                "size": 0,
                "candidates": 0,
                "dropped_overlapping_held_out": 0,
                "max_unlabeled": cfg.max_unlabeled,
            }
        overlap = sum(normalise(t) in held_out for t in raw)
        raw = [t for t in raw if normalise(t) not in held_out]
    else:
        path = Path(cfg.unlabeled)
        raw, origin = read_text_file(path, cfg.unlabeled_text_column or cfg.text_column or "text"), str(path)
        overlap = sum(normalise(t) in held_out for t in raw)
        if overlap:
            raise DataError(
                f"unlabelled pool {path}: {overlap} text(s) also appear in the validation or test split "
                "(exact match after lower-casing and collapsing whitespace). Distilling on them would "
                "leak the held-out splits; remove them from the file."
            )
    seen, pool = set(), []
    for t in raw:  # one copy of each text: duplicates would only weight some texts more
        key = normalise(t)
        if key not in seen:
            seen.add(key)
            pool.append(t)
    if cfg.max_unlabeled is not None and cfg.max_unlabeled < len(pool):
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(pool), size=cfg.max_unlabeled, replace=False))
        pool = [pool[i] for i in keep]
    info = {
        "origin": origin,
        "size": len(pool),
        "candidates": len(raw) + (overlap if cfg.unlabeled == REST_OF_TRAIN else 0),
        "dropped_overlapping_held_out": overlap if cfg.unlabeled == REST_OF_TRAIN else 0,
        "max_unlabeled": cfg.max_unlabeled,
    }
    return pool, info


def augment(texts: list[str], tokenizer, copies: int, prob: float, seed: int) -> list[str]:
    """``copies`` noisy versions of each text: each word, with chance ``prob``, becomes the mask
    token or a random whole word of the tokenizer's vocabulary (half and half)."""
    if copies == 0:
        return []
    rng = np.random.default_rng(seed)
    vocab = sorted(w for w in tokenizer.get_vocab() if w.isalpha() and not w.startswith("##") and len(w) > 1)
    if not vocab:
        raise DataError("augmentation needs a tokenizer vocabulary with whole words; set data.augment_copies: 0")
    mask = getattr(tokenizer, "mask_token", None)
    out = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            for i in range(len(words)):
                if rng.random() < prob:
                    words[i] = mask if mask and rng.random() < 0.5 else vocab[rng.integers(len(vocab))]
            out.append(" ".join(words))
    return out


def with_extra_texts(data: Dataset, texts: list[str]) -> Dataset:
    """``data`` whose training split also holds ``texts``, labelled UNLABELED (teacher targets only)."""
    if not texts:
        return data
    train = Split(
        data.train.texts + list(texts),
        np.concatenate([data.train.labels, np.full(len(texts), UNLABELED, dtype=np.int64)]),
    )
    return replace(data, train=train)
