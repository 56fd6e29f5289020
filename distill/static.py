"""The ``static`` student: a static embedding table distilled from the fine-tuned teacher, and a small head.

    model, tokenizer = build_static_student("runs/x/models/teacher", label_names, dims=256, hidden=256)

model2vec's own distillation (one forward pass of the teacher's backbone per vocabulary token, PCA,
Zipf weighting) turns the FINE-TUNED teacher's backbone into a table of token vectors; the student
pools a text's token vectors (mean over real tokens, unknown tokens dropped, then L2-normalised, as
model2vec's classifier does) and classifies with a small MLP head. Table and head are then trained by
the project's one training loop with the distillation loss on labelled and teacher-labelled texts,
like the other students. With ``methods.static_init: context`` the table starts from the teacher's vectors
in context instead: each token of the training texts moved to the mean of the teacher's last layer at its
occurrences there (``TokenContext``), before model2vec's PCA and weighting; with ``methods.static_vocabulary``
the training texts' frequent split words join the table as whole words (``domain_words``). ``StaticClassifier``
follows the Hugging Face calling convention the loop and ``TorchRuntime`` use
(``forward(input_ids, attention_mask) -> .logits``, ``save_pretrained``);
``edgedistill.graphs.static_classifier_graph`` is its ONNX form.
"""
from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgedistill.recipe import STATIC_WORD_MIN_COUNT
from edgedistill.static_model import MODEL_TYPE, WEIGHTS, StaticClassifier, StaticConfig, is_static_checkpoint

__all__ = ["MODEL_TYPE", "WEIGHTS", "StaticClassifier", "StaticConfig", "is_static_checkpoint"]


# (folder, its config's mtime, dims, added words) -> model2vec's distillation and the vectors it encoded before its
# PCA (its tokens and their vectors alone): an experiment that trains several static students from one teacher, or
# a table started in context after the plain one, pays the one forward pass per vocabulary token once.
_DISTILLED: dict = {}


def _cache_key(source: str, dims: int, words: tuple[str, ...]) -> tuple:
    config = Path(source) / "config.json"
    return str(Path(source).resolve()), config.stat().st_mtime_ns if config.is_file() else None, dims, words


def distil_static(source: str, dims: int, progress: bool = True, words: list[str] | tuple = ()):
    """model2vec's own distillation of a local model folder (the backbone of a classifier folder):
    one forward pass per vocabulary token (and per added whole word of ``words``), PCA to ``dims``, Zipf (SIF)
    weighting. float32. The result is shared by later calls on the same unchanged folder and words; its table is
    read, never written."""
    key = _cache_key(source, dims, tuple(words))
    if key not in _DISTILLED:
        _DISTILLED.clear()          # one teacher at a time: a table is tens of MB
        _DISTILLED[key] = _distil(source, dims, progress, words=tuple(words))
    return _DISTILLED[key][0]


def forget_distilled() -> None:
    """Drop the shared distillation: the next ``distil_static`` distils again. model2vec's distillation draws
    from torch's and Python's random generators, so a student set up after a cached one starts its head from
    another random state than a student that distilled after the same seed, as every pipeline run does. An
    experiment that sets up several students in one process calls this before each, so that each starts as the
    pipeline's would and two settings of one seed differ in that setting alone."""
    _DISTILLED.clear()


def distil_in_context(source: str, dims: int, context: TokenContext, progress: bool = True,
                      words: list[str] | tuple = ()):
    """model2vec's distillation of ``source`` with each vocabulary token the teacher met in ``context`` moved
    from its alone vector towards the mean of its in-context vectors, before model2vec's PCA and Zipf weighting
    (methods.static_init: context); added whole ``words`` are not the teacher's tokens and keep their vectors.
    The alone vectors of an earlier ``distil_static`` of the same folder and words are reused; the result is not
    shared, the texts differ from run to run."""
    distilled = _DISTILLED.get(_cache_key(source, dims, tuple(words)))
    return _distil(source, dims, progress, context, distilled[1] if distilled else None, tuple(words))[0]


def domain_words(texts: list[str], tokenizer, limit: int, min_count: int = STATIC_WORD_MIN_COUNT) -> list[str]:
    """Up to ``limit`` words of ``texts``, as ``tokenizer`` (the teacher's fast tokenizer) normalises and splits
    them, that its vocabulary splits into more than one piece and that occur at least ``min_count`` times; the most
    frequent first (ties in order of first occurrence). The words a static table adds whole
    (methods.static_vocabulary)."""
    backend = tokenizer.backend_tokenizer
    normalizer, splitter = backend.normalizer, backend.pre_tokenizer
    counts: Counter = Counter()
    for text in texts:
        text = normalizer.normalize_str(text) if normalizer is not None else text
        counts.update([w for w, _ in splitter.pre_tokenize_str(text)] if splitter is not None else text.split())
    words = []
    for word, n in counts.most_common():
        if n < min_count or len(words) >= limit:
            break
        if len(backend.model.tokenize(word)) > 1:
            words.append(word)
    return words


@dataclass
class TokenContext:
    """The teacher's last-layer vectors summed per vocabulary id over a set of texts (``TeacherCache`` with
    ``with_token_vectors``), their counts, and the teacher tokenizer's vocabulary (token -> id)."""
    sums: np.ndarray
    counts: np.ndarray
    vocab: dict[str, int]

    def blend(self, alone: np.ndarray, tokens: list[str]) -> np.ndarray:
        """``alone`` (one row per token of ``tokens``) with every row whose token was seen moved to
        ``(n * in-context mean + 1 * alone) / (n + 1)`` over its n occurrences. Rows are matched by the token's
        text: model2vec numbers its tokens its own way (it drops added tokens and renumbers the rest)."""
        ids = np.array([self.vocab.get(t, -1) for t in tokens])
        ids[ids >= len(self.counts)] = -1
        n = np.where(ids >= 0, self.counts[np.maximum(ids, 0)], 0)
        seen = n > 0
        if not seen.any():
            return alone
        ctx = self.sums[ids[seen]] / n[seen, None]
        # An alone vector is the mean over [CLS] token [SEP], an in-context one a single position: one shift puts
        # the two sets' means together before they are mixed, so seen and unseen rows stay comparable.
        ctx += alone[seen].mean(axis=0) - ctx.mean(axis=0)
        weight = (n[seen] / (n[seen] + 1.0))[:, None]
        out = alone.astype(np.float64, copy=True)
        out[seen] = weight * ctx + (1 - weight) * out[seen]
        return out.astype(alone.dtype)


def _distil(source: str, dims: int, progress: bool, context: TokenContext | None = None,
            encoded: tuple[list[str], np.ndarray] | None = None, words: tuple[str, ...] = ()):
    """model2vec's distillation and what it encoded before its PCA: (its tokens, their vectors alone). With
    ``context``, the vectors are blended in context before the PCA; ``encoded`` (from an earlier call on the
    same folder and words) stands in for model2vec's forward passes; ``words`` join the vocabulary whole."""
    try:
        from model2vec.distill import distill, distillation, inference
    except ImportError as exc:
        raise ImportError(f"model2vec's distillation is needed here ({exc}); install it with `pip install --no-deps "
                          "model2vec==0.10.0 skeletoken==0.6.1` beside `pip install '.[baselines]'` (make install "
                          "does both)") from None
    # model2vec lists its vocabulary's tokens (``turn_tokens_into_ids``), then encodes each as a row
    # (``create_embeddings``) in that order, then runs its PCA and weighting: the tokens and their rows are caught
    # between the two, where a table started in context changes them and model2vec's own vocabulary handling,
    # PCA and weighting stay what they are. model2vec draws its "Encoding tokens" bar unconditionally;
    # --no-progress silences it for this call.
    bar, to_ids, create = inference.tqdm, distillation.turn_tokens_into_ids, distillation.create_embeddings
    rows: list[str] = []
    caught: list = []

    def tokens_to_ids(tokens, *args, **kwargs):
        rows[:] = list(tokens)
        return to_ids(tokens, *args, **kwargs)

    def create_caught(*args, **kwargs):
        if encoded is not None and encoded[0] == rows:
            alone = encoded[1]
        else:
            alone = create(*args, **kwargs)
        if len(rows) != len(alone):
            raise RuntimeError(f"model2vec encoded {len(alone)} rows for {len(rows)} tokens: this version of "
                               "model2vec orders its distillation otherwise than edgedistill expects")
        caught[:] = [(list(rows), alone)]
        return alone if context is None else context.blend(alone, rows)

    if not progress:
        inference.tqdm = functools.partial(bar, disable=True)
    distillation.turn_tokens_into_ids, distillation.create_embeddings = tokens_to_ids, create_caught
    try:
        static = distill(source, vocabulary=list(words) or None, pca_dims=dims, quantize_to="float32")
    finally:
        inference.tqdm, distillation.turn_tokens_into_ids, distillation.create_embeddings = bar, to_ids, create
    return static, caught[0]


def artifact_tokenizer_json(tokenizer_json: str) -> str:
    """A static model's tokenizer.json as it is served: no special tokens (a static model pools the
    text's own tokens), truncation and padding left to the caller."""
    doc = json.loads(tokenizer_json)
    doc["post_processor"] = None
    doc["truncation"] = None
    doc["padding"] = None
    return json.dumps(doc, ensure_ascii=False)


def unk_token_id(tokenizer) -> int | None:
    """The id of the tokenizer model's unknown token (model2vec drops it before pooling)."""
    unk = json.loads(tokenizer.to_str())["model"].get("unk_token")
    return tokenizer.token_to_id(unk) if unk is not None else None


def hf_tokenizer(tokenizer):
    """A ``tokenizers.Tokenizer`` as the fast Hugging Face tokenizer the training loop calls."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(artifact_tokenizer_json(tokenizer.to_str()))
    specials = {k: t for k, t in (("pad_token", "[PAD]"), ("unk_token", "[UNK]")) if backend.token_to_id(t) is not None}
    if "pad_token" not in specials:
        specials["pad_token"] = backend.id_to_token(0)
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_input_names=["input_ids", "attention_mask"],
                                   **specials)


def build_static_student(teacher_dir: str | Path, label_names: list[str], dims: int, hidden: int,
                         progress: bool = True, bigrams: int = 0, pooling: str = "mean"):
    """The static student before training: model2vec's table of the fine-tuned teacher's backbone,
    a freshly initialised head, and its tokenizer."""
    static = distil_static(str(teacher_dir), dims, progress)
    vectors = torch.as_tensor(static.embedding, dtype=torch.float32)
    model = StaticClassifier(vectors.shape[0], vectors.shape[1], label_names, hidden,
                             unk_token_id(static.tokenizer), normalize=True, bigram_buckets=bigrams,
                             pooling=pooling)
    with torch.no_grad():
        model.embeddings.weight.copy_(vectors)
    return model, hf_tokenizer(static.tokenizer)
