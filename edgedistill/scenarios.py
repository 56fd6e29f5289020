"""What one timed call is, named once for the bench, the report, the goals, the README and the dashboard.

A user sends text and gets a label, so the headline is ``text-latency``: one call is
``Runtime.predict([text])``, the artifact's own tokenizer, its forward pass and the argmax, for one
text at its natural length. ``text-throughput`` is the same for a batch of texts. The forward-only
scenarios (``latency``, ``throughput``) feed pre-tokenized tensors; they stay as their own rows, so
the tokenizer's share of a call can be read off (``tokenize_ms``: the tokenizer alone, timed in the
same process on the same texts).

Nothing heavy is imported: the GPU script and the dashboard read these names too.
"""
from __future__ import annotations

import math

LATENCY, THROUGHPUT = "latency", "throughput"                    # pre-tokenized tensors in, logits out
TEXT_LATENCY, TEXT_THROUGHPUT = "text-latency", "text-throughput"  # text in, label out (Runtime.predict)
TOKENIZE = "tokenize"     # timed beside text-latency; its p50 is that row's tokenize_ms, not a row of its own
TEXT_SCENARIOS = (TEXT_LATENCY, TEXT_THROUGHPUT)
BATCH_ONE = (TEXT_LATENCY, LATENCY)                              # headline first
BATCHED = {TEXT_LATENCY: TEXT_THROUGHPUT, LATENCY: THROUGHPUT}   # each batch-1 scenario's batch scenario
ORDER = (TEXT_LATENCY, LATENCY, TEXT_THROUGHPUT, THROUGHPUT)
HEADLINE = TEXT_LATENCY
DESCRIBE = {TEXT_LATENCY: "text -> label", LATENCY: "forward only (pre-tokenized)",
            TEXT_THROUGHPUT: "text -> label, batched", THROUGHPUT: "forward only, batched"}


def _value(row, key: str):
    v = row.get(key) if hasattr(row, "get") else getattr(row, key, None)
    return None if isinstance(v, float) and math.isnan(v) else v


def headline_scenario(rows) -> str:
    """The batch-1 scenario the headline, goals and charts rank on: text -> label where these rows
    have it, forward-only for files measured before it existed (and GPU rows, which time forward)."""
    present = {_value(r, "scenario") for r in rows}
    return next((s for s in BATCH_ONE if s in present), HEADLINE)


def order(scenario: str) -> int:
    """Sort position: the headline first, unknown scenarios last."""
    return ORDER.index(scenario) if scenario in ORDER else len(ORDER)
