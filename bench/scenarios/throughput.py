"""Length-bucketed batches: a whole split scored with each batch padded only as far as it needs.

Offline scoring and batched serving sort texts by length, so a batch of short texts is not padded
to the longest text of the split. ``bucket_batches`` sorts the texts by token count (ties broken
by a given order, e.g. the bench's seeded text order, so the result is deterministic for a seed),
cuts the sorted list into runs of at most ``batch_size`` texts and pads each run to its longest
member rounded up to a multiple of ``multiple``. Every batch but the last is full, so a pass has
at most one shape per multiple plus the last batch's: few enough for ``torch.compile`` with
static shapes or CUDA graphs to reuse what they built across the pass.

Standard library only: the GPU script uses it as it is.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """One batch of a bucketed pass: positions in the input list, padded to ``length`` tokens."""

    indices: tuple[int, ...]
    length: int


def bucket_batches(lengths: list[int], batch_size: int, multiple: int = 16, order: list[int] | None = None,
                   max_length: int | None = None) -> list[Bucket]:
    """Every text exactly once, shortest first, in batches of at most ``batch_size`` padded to
    their longest member rounded up to ``multiple`` (never past ``max_length``, the model's limit,
    nor below the longest member). ``order``: a permutation of the positions that breaks ties."""
    errs = []
    if batch_size < 1:
        errs.append(f"batch_size: {batch_size} must be >= 1")
    if multiple < 1:
        errs.append(f"multiple: {multiple} must be >= 1 (1 pads each batch to its own longest text)")
    if any(n < 1 for n in lengths):
        errs.append(f"lengths: {min(lengths)} tokens; every text has at least one token")
    if order is not None and sorted(order) != list(range(len(lengths))):
        errs.append(f"order: not a permutation of the {len(lengths)} positions")
    if errs:
        raise ValueError("; ".join(errs))
    rank = {i: r for r, i in enumerate(order if order is not None else range(len(lengths)))}
    ranked = sorted(range(len(lengths)), key=lambda i: (lengths[i], rank[i]))
    out = []
    for start in range(0, len(ranked), batch_size):
        chunk = tuple(ranked[start:start + batch_size])
        longest = max(lengths[i] for i in chunk)
        padded = -(-longest // multiple) * multiple
        if max_length is not None:
            padded = max(longest, min(padded, max_length))
        out.append(Bucket(chunk, padded))
    return out


def describe(buckets: list[Bucket], lengths: list[int]) -> dict:
    """What a pass costs: texts, batches, distinct (batch, length) shapes, and the share of
    padding among the tokens computed."""
    real = sum(lengths[i] for b in buckets for i in b.indices)
    computed = sum(len(b.indices) * b.length for b in buckets)
    return {"texts": sum(len(b.indices) for b in buckets), "batches": len(buckets),
            "shapes": sorted({(len(b.indices), b.length) for b in buckets}),
            "padding_pct": round(100.0 * (computed - real) / computed, 2) if computed else 0.0}
