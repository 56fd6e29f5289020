"""Vocabulary trimming on a WordPiece vocabulary with character pieces (no export needed)."""
from __future__ import annotations

import json
import string

import numpy as np
import pytest

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["play", "##ing", "##ed", "good", "bad", "movie", "un", "##known", "the", "café", "zebra"]
CHARS = list(string.ascii_lowercase) + ["é", "ß"]
TRAIN = ["good movie", "bad movie", "played the movie", "good good", "unknown movie"]


@pytest.fixture
def char_checkpoint(tmp_path):
    """A tiny BERT whose vocabulary has words, single characters and ## character pieces."""
    from conftest import make_tiny_model
    from transformers import BertTokenizer

    vocab = SPECIALS + WORDS + CHARS + ["##" + c for c in CHARS] + ["☃"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True, strip_accents=False)
    folder = tmp_path / "ckpt"
    model = make_tiny_model("bert", vocab_size=len(vocab)).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, model


def test_trim_keeps_seen_pieces_specials_and_characters(char_checkpoint, tmp_path):
    import torch
    from tokenizers import Tokenizer

    from export.vocab import trim_checkpoint

    folder, model = char_checkpoint
    original = {k: v.clone() for k, v in model.state_dict().items()}
    trimmed_model, report = trim_checkpoint(model, folder, tmp_path / "trim", TRAIN, min_count=1, keep_chars="seen")
    full = Tokenizer.from_file(str(folder / "tokenizer.json"))
    small = Tokenizer.from_file(str(tmp_path / "trim" / "tokenizer.json"))
    kept = set(small.get_vocab())
    assert set(SPECIALS) <= kept and {"good", "movie", "play", "##ed", "un", "##known"} <= kept
    assert not {"zebra", "café", "##ing"} & kept and "the" in kept
    assert report["vocab_size_after"] == len(kept) < report["vocab_size_before"]

    # Seen words tokenize to the same pieces; ids differ only by the remap.
    for text in TRAIN:
        assert small.encode(text).tokens == full.encode(text).tokens
    # Unseen words fall back to kept pieces (characters) or [UNK], never to a wrong piece.
    assert small.encode("playing").tokens == ["[CLS]", "play", "##i", "##n", "##g", "[SEP]"]
    assert small.encode("zebra ☃").tokens[-2] == "[UNK]"
    assert all(t in kept for t in small.encode("zebra playing unknown").tokens)

    # Embedding rows move with their tokens; everything else is untouched.
    old_emb = original["bert.embeddings.word_embeddings.weight"]
    new_emb = trimmed_model.get_input_embeddings().weight
    full_vocab, small_vocab = full.get_vocab(), small.get_vocab()
    for token in ("good", "##known", "[PAD]", "[SEP]"):
        assert torch.equal(new_emb[small_vocab[token]], old_emb[full_vocab[token]])
    assert small_vocab["[PAD]"] == 0 and trimmed_model.config.vocab_size == len(kept)
    # Special tokens keep their new ids wherever the tokenizer records them: tokenizer.json's
    # added_tokens (transformers 5) and tokenizer_config.json's added_tokens_decoder (older writers).
    added = json.loads((tmp_path / "trim" / "tokenizer.json").read_text())["added_tokens"]
    assert {t["content"]: t["id"] for t in added}["[SEP]"] == small_vocab["[SEP]"]
    cfg = json.loads((tmp_path / "trim" / "tokenizer_config.json").read_text())
    if "added_tokens_decoder" in cfg:
        assert {v["content"]: int(k) for k, v in cfg["added_tokens_decoder"].items()}["[SEP]"] == small_vocab["[SEP]"]
    assert (tmp_path / "trim" / "vocab.txt").read_text().split("\n")[small_vocab["movie"]] == "movie"


def test_trimmed_checkpoint_gives_identical_logits_on_seen_text(char_checkpoint, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from export.vocab import trim_checkpoint

    folder, model = char_checkpoint
    trim_checkpoint(AutoModelForSequenceClassification.from_pretrained(folder), folder, tmp_path / "trim", TRAIN,
                    keep_chars="latin")
    small = AutoModelForSequenceClassification.from_pretrained(tmp_path / "trim").eval()
    tok_full, tok_small = AutoTokenizer.from_pretrained(folder), AutoTokenizer.from_pretrained(tmp_path / "trim")
    with torch.no_grad():
        a = model(**tok_full(TRAIN, padding=True, return_tensors="pt")).logits.numpy()
        b = small(**tok_small(TRAIN, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)
    # "latin" keeps every Latin-1 character piece even if unseen, so accented words still spell out.
    assert "é" in tok_small.get_vocab() and "##ß" in tok_small.get_vocab()


def test_min_count_drops_rare_pieces(char_checkpoint, tmp_path):
    from tokenizers import Tokenizer

    from export.vocab import trim_checkpoint

    folder, model = char_checkpoint
    _, report = trim_checkpoint(model, folder, tmp_path / "trim", TRAIN, min_count=2, keep_chars="seen")
    small = Tokenizer.from_file(str(tmp_path / "trim" / "tokenizer.json"))
    assert "good" in small.get_vocab() and "bad" not in small.get_vocab()   # "bad" occurs once
    assert small.encode("bad").tokens == ["[CLS]", "b", "##a", "##d", "[SEP]"]
    assert report["min_count"] == 2


def test_bpe_tokenizers_are_refused(tmp_path):
    from export.errors import ExportError
    from export.vocab import load_tokenizer_json

    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {}, "merges": []}}))
    with pytest.raises(ExportError, match="WordPiece"):
        load_tokenizer_json(tmp_path)


def test_auto_min_count_is_the_least_trimming_that_meets_the_size_target(char_checkpoint):
    from export.vocab import choose_min_count, load_tokenizer_json, seen_characters, token_counts

    folder, _ = char_checkpoint
    tj = load_tokenizer_json(folder)
    texts = TRAIN * 2 + ["bad the"]                     # counts: good 6, movie 8, bad 3, the 3, ...
    counts, chars = token_counts(tj, texts), seen_characters(tj, texts)
    rows, dim = len(tj["model"]["vocab"]), 1000
    total = rows * dim + 500                              # an embedding-dominated model
    chosen, ratios = choose_min_count(tj, counts, chars, "seen", dim, total, target_ratio=1.0)
    assert chosen == 1 and list(ratios) == [1]           # no trimming pressure: keep every seen piece
    chosen, all_ratios = choose_min_count(tj, counts, chars, "seen", dim, total, target_ratio=0.01)
    assert chosen == 1 and list(all_ratios) == [1, 2, 3, 4, 5]   # unreachable: keep everything seen
    assert all_ratios[1] > all_ratios[5]                 # rarer pieces dropped -> smaller
    target = all_ratios[5]
    chosen, ratios = choose_min_count(tj, counts, chars, "seen", dim, total, target_ratio=target)
    assert chosen == min(m for m, r in all_ratios.items() if r <= target) > 1
