"""Vocabulary trimming: keep only the word pieces a task uses, and the embedding rows behind them.

For a small student the word-embedding table is most of the weights (30522 x 384 for MiniLM,
67% of a 3-layer student). Tokenizing the task's TRAINING texts shows which pieces occur; the
trimmed checkpoint keeps those (seen ``min_count`` times or more), every special token and
the single-character pieces (``a``, ``##a``, ...) so any word still tokenizes: a word whose
pieces were dropped falls back to shorter kept pieces, and one with unknown characters becomes
[UNK] exactly as before. Kept pieces keep their relative order, so [PAD] stays id 0 in BERT.

``min_count='auto'`` picks the smallest count (1, 2, ... MAX_AUTO_MIN_COUNT) whose INT8 model
is estimated to fit ``target_ratio`` of the FP32 size: a small training set keeps every piece
it has seen, a large one drops the pieces seen once or twice (their embeddings barely moved
in training; the words fall back to more frequent pieces). If no count reaches the target
(a deep model whose layers alone exceed it), every seen piece is kept.

Only WordPiece tokenizers (BERT, MiniLM, DistilBERT, MPNet, ELECTRA) are supported: a BPE
vocabulary cannot lose pieces without also rewriting its merges.
"""
from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

from export.errors import ExportError

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
SELF_CHECK_TEXTS = 2000
MAX_AUTO_MIN_COUNT = 5
INT8_OVERHEAD = 1.01        # scales, zero points and graph structure on top of one byte per weight


def load_tokenizer_json(folder: str | Path) -> dict:
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no tokenizer.json; vocabulary trimming needs the fast tokenizer file")
    tj = json.loads(path.read_text())
    kind = (tj.get("model") or {}).get("type")
    if kind != "WordPiece":
        raise ExportError(f"vocabulary trimming supports WordPiece tokenizers only; {folder} uses {kind}. "
                          "Leave the -trim variants out (--set trim_vocab=false).")
    return tj


def _tokenizer_from(tj: dict):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(json.dumps(tj))
    tok.no_truncation()
    tok.no_padding()
    return tok


def token_counts(tj: dict, texts: list[str]) -> collections.Counter:
    """How often each token id occurs when the texts are tokenized (special tokens left out)."""
    counts = collections.Counter()
    for enc in _tokenizer_from(tj).encode_batch(list(texts), add_special_tokens=False):
        counts.update(enc.ids)
    return counts


def seen_characters(tj: dict, texts: list[str]) -> set[str]:
    """Characters of the texts after the tokenizer's normalizer (lower-casing, accent handling)."""
    normalizer = _tokenizer_from(tj).normalizer
    chars: set[str] = set()
    for text in texts:
        chars.update(normalizer.normalize_str(text) if normalizer else text)
    return chars


def select_ids(tj: dict, counts: collections.Counter, min_count: int = 1, keep_chars: str = "latin",
               chars: set[str] = frozenset()) -> list[int]:
    """Old ids to keep, ascending: specials, pieces seen >= min_count times, single-char pieces.

    Single-character pieces (``c`` and ``##c``) are kept for every character in ``chars`` (those
    of the training texts) and, with ``keep_chars='latin'``, for every Latin-1 character, so
    any word spelled with them still tokenizes instead of collapsing to [UNK].
    """
    vocab = tj["model"]["vocab"]
    prefix = tj["model"].get("continuing_subword_prefix", "##")
    keep = {t["id"] for t in tj.get("added_tokens", [])}
    unk = tj["model"].get("unk_token")
    if unk in vocab:
        keep.add(vocab[unk])
    keep |= {i for i, c in counts.items() if c >= min_count}
    for token, i in vocab.items():
        char = token[len(prefix):] if token.startswith(prefix) else token
        if len(char) == 1 and (char in chars or (keep_chars == "latin" and ord(char) < 256)):
            keep.add(i)
    return sorted(keep)


def remap_tokenizer_json(tj: dict, keep: list[int]) -> tuple[dict, dict[int, int]]:
    """A tokenizer.json whose vocab holds only ``keep`` (renumbered densely), and old -> new ids."""
    old_to_new = {old: new for new, old in enumerate(keep)}
    tj = json.loads(json.dumps(tj))
    vocab = tj["model"]["vocab"]
    tj["model"]["vocab"] = {tok: old_to_new[i] for tok, i in sorted(vocab.items(), key=lambda kv: kv[1])
                            if i in old_to_new}
    for t in tj.get("added_tokens", []):
        t["id"] = old_to_new[t["id"]]
    _remap_post_processor(tj.get("post_processor"), old_to_new)
    if tj.get("padding"):
        tj["padding"]["pad_id"] = old_to_new.get(tj["padding"].get("pad_id", 0), 0)
    return tj, old_to_new


def _remap_post_processor(pp: dict | None, old_to_new: dict[int, int]):
    if not pp:
        return
    kind = pp.get("type")
    if kind == "TemplateProcessing":
        for spec in pp.get("special_tokens", {}).values():
            spec["ids"] = [old_to_new[i] for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            pp[key] = [pp[key][0], old_to_new[pp[key][1]]]
    elif kind == "Sequence":
        for sub in pp.get("processors", []):
            _remap_post_processor(sub, old_to_new)


def trim_embeddings(model, keep: list[int], old_to_new: dict[int, int]):
    """Replace the input embedding table by its ``keep`` rows; config ids follow the remap."""
    import torch
    from torch import nn

    old = model.get_input_embeddings()
    pad = getattr(model.config, "pad_token_id", None)
    new_pad = old_to_new.get(pad) if pad is not None else None
    new = nn.Embedding(len(keep), old.embedding_dim, padding_idx=new_pad)
    with torch.no_grad():
        new.weight.copy_(old.weight[torch.tensor(keep, dtype=torch.long)])
    model.set_input_embeddings(new)
    model.config.vocab_size = len(keep)
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
        value = getattr(model.config, key, None)
        if isinstance(value, int) and value in old_to_new:
            setattr(model.config, key, old_to_new[value])
    return model


def write_tokenizer(src: Path, dst: Path, tj: dict, old_to_new: dict[int, int]):
    """tokenizer.json, vocab.txt and tokenizer_config.json (added_tokens_decoder) in the new ids."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=2))
    ordered = sorted(tj["model"]["vocab"].items(), key=lambda kv: kv[1])
    (dst / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in ordered))
    cfg_path = src / "tokenizer_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        if isinstance(cfg.get("added_tokens_decoder"), dict):
            cfg["added_tokens_decoder"] = {str(old_to_new[int(k)]): v for k, v in cfg["added_tokens_decoder"].items()
                                           if int(k) in old_to_new}
        (dst / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2))
    if (src / "special_tokens_map.json").is_file():
        shutil.copy2(src / "special_tokens_map.json", dst / "special_tokens_map.json")


def check_consistent(old_tj: dict, new_tj: dict, keep: list[int], texts: list[str]) -> int:
    """Every text whose pieces were all kept must tokenize to the same pieces; returns how many did.

    A failure here means the tokenizer rewrite is wrong, so it raises instead of exporting.
    """
    kept = set(keep)
    old, new = _tokenizer_from(old_tj), _tokenizer_from(new_tj)
    texts = list(texts)[:SELF_CHECK_TEXTS]
    checked = 0
    for a, b in zip(old.encode_batch(texts), new.encode_batch(texts)):
        if set(a.ids) <= kept:
            checked += 1
            if [keep[i] for i in b.ids] != a.ids:
                raise ExportError(f"vocabulary trimming changed the tokenization of a text it should keep: "
                                  f"{a.tokens} -> {b.tokens}; this is a bug in export/vocab.py")
    return checked


def int8_ratio(kept_rows: int, vocab_rows: int, dim: int, total_params: int) -> float:
    """Estimated INT8 size of the trimmed model / FP32 size of the untrimmed one."""
    return INT8_OVERHEAD * (total_params - (vocab_rows - kept_rows) * dim) / (4 * total_params)


def choose_min_count(tj: dict, counts, chars: set[str], keep_chars: str, dim: int, total_params: int,
                     target_ratio: float) -> tuple[int, dict[int, float]]:
    """The smallest min_count whose INT8 estimate meets ``target_ratio`` (1 if none does)."""
    vocab_rows = len(tj["model"]["vocab"])
    ratios = {}
    for m in range(1, MAX_AUTO_MIN_COUNT + 1):
        ratios[m] = round(int8_ratio(len(select_ids(tj, counts, m, keep_chars, chars)), vocab_rows, dim,
                                     total_params), 4)
        if ratios[m] <= target_ratio:
            return m, ratios
    return 1, ratios


def trim_checkpoint(model, src: str | Path, dst: str | Path, train_texts: list[str], min_count: int | str = 1,
                    keep_chars: str = "latin", target_ratio: float = 0.15) -> tuple[object, dict]:
    """Write a trimmed copy of checkpoint ``src`` (model already loaded) to ``dst``.

    Returns the trimmed model and a report (sizes before/after, tokens kept, self-check count).
    ``model`` is modified in place; pass a copy if the original is still needed.
    """
    src, dst = Path(src), Path(dst)
    tj = load_tokenizer_json(src)
    counts = token_counts(tj, train_texts)
    chars = seen_characters(tj, train_texts)
    estimates = None
    if min_count == "auto":
        dim = model.get_input_embeddings().embedding_dim
        total = sum(p.numel() for p in model.parameters())
        min_count, estimates = choose_min_count(tj, counts, chars, keep_chars, dim, total, target_ratio)
    keep = select_ids(tj, counts, min_count, keep_chars, chars)
    new_tj, old_to_new = remap_tokenizer_json(tj, keep)
    checked = check_consistent(tj, new_tj, keep, train_texts)
    before = model.get_input_embeddings().weight.shape[0]
    trim_embeddings(model, keep, old_to_new)
    model.save_pretrained(dst)
    write_tokenizer(src, dst, new_tj, old_to_new)
    report = {"vocab_size_before": int(before), "vocab_size_after": len(keep),
              "kept_pct": round(100 * len(keep) / before, 2), "min_count": min_count, "keep_chars": keep_chars,
              "train_texts": len(train_texts), "distinct_train_tokens": len(counts),
              "embedding_params_removed": int((before - len(keep)) * model.get_input_embeddings().embedding_dim),
              "self_check_texts": checked, "auto_int8_ratio_estimates": estimates, "target_ratio": target_ratio}
    meta_path = src / "edgedistill.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        meta["trimmed_vocab"] = report
        (dst / "edgedistill.json").write_text(json.dumps(meta, indent=2))
    return model, report


def tokenization_change(src_tj: dict, trimmed_folder: str | Path, texts: list[str]) -> dict:
    """How trimming changes the tokenization of ``texts`` (used on the test texts as a report only)."""
    old = _tokenizer_from(src_tj)
    new_tj = json.loads((Path(trimmed_folder) / "tokenizer.json").read_text())
    new = _tokenizer_from(new_tj)
    unk_old, unk_new = (_unk_id(src_tj), _unk_id(new_tj))
    changed = n_old = n_new = u_old = u_new = 0
    for a, b in zip(old.encode_batch(list(texts)), new.encode_batch(list(texts))):
        changed += a.tokens != b.tokens
        n_old, n_new = n_old + len(a.ids), n_new + len(b.ids)
        u_old, u_new = u_old + a.ids.count(unk_old), u_new + b.ids.count(unk_new)
    n = max(len(texts), 1)
    return {"texts": len(texts), "texts_changed_pct": round(100 * changed / n, 2),
            "unk_pct_before": round(100 * u_old / max(n_old, 1), 3), "unk_pct_after": round(100 * u_new / max(n_new,
                                                                                                              1), 3),
            "tokens_per_text_before": round(n_old / n, 2), "tokens_per_text_after": round(n_new / n, 2)}


def _unk_id(tj: dict) -> int | None:
    return tj["model"]["vocab"].get(tj["model"].get("unk_token", "[UNK]"))
