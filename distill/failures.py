"""A method or baseline that failed in the training stage: a recorded failure, not a crash.

    record = record_failure(run_dir, "model2vec", "baseline", exc)   # runs/<run>/failed/model2vec.json
    failed = collect_failures(run_dir, ["model2vec", ...])           # what metrics.json lists under "failed"

One failure stops only its own method or baseline (and the students of a teacher that did not
finish): the run trains the others, writes metrics.json and results.md for everything that
finished, says what failed in one paragraph per name, and the command exits with ``TRAIN_FAILED``.
A record stays until its name finishes; a re-run retries only what failed, the finished methods
and baselines being kept from their checkpoints and result files.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path

from edgedistill.io import atomic_write_json

SCHEMA_VERSION = 1
TRAIN_FAILED = 3     # exit status of `edgedistill train` / `run`: trained what it could, some names failed
OWN_PACKAGES = ("distill", "edgedistill", "export", "bench")


def failure_file(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / "failed" / f"{name}.json"


def paragraph(exc: BaseException) -> str:
    """The error as one paragraph: this project's messages as written, another library's with its type."""
    text = " ".join(str(exc).split()) or "(no message)"
    own = type(exc).__module__.split(".")[0] in OWN_PACKAGES
    return text if own else f"{type(exc).__name__}: {text}"


def record_failure(run_dir: str | Path, name: str, kind: str, exc: BaseException) -> dict:
    """Write ``runs/<run>/failed/<name>.json`` (the traceback kept there, never printed); return its entry."""
    entry = {"name": name, "kind": kind, "error": paragraph(exc),
             "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
             "failed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_json(failure_file(run_dir, name), {
        "schema_version": SCHEMA_VERSION, **entry,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))})
    return entry


def clear_failure(run_dir: str | Path, name: str) -> None:
    failure_file(run_dir, name).unlink(missing_ok=True)


def collect_failures(run_dir: str | Path, names: list[str]) -> dict[str, dict]:
    """The recorded failures of ``names`` (those the recipe still trains and that have not finished
    since), without their tracebacks, in the order of ``names``."""
    from edgedistill.layout import read_marker

    out = {}
    for name in names:
        path = failure_file(run_dir, name)
        doc, _ = read_marker(path) if path.is_file() else (None, None)
        if doc is not None:
            out[name] = {k: doc.get(k) for k in ("kind", "error", "error_type", "failed_at")}
    return out


def summary(failed: dict[str, dict]) -> str:
    """What failed and what to do, one paragraph (the command's last word on stderr)."""
    names = ", ".join(failed)
    why = "; ".join(f"{name}: {(f.get('error') or 'no reason recorded').rstrip('.')}" for name, f in failed.items())
    return (f"{len(failed)} of the run's methods and baselines failed and were not written ({names}); everything "
            f"else that trained is in metrics.json and results.md. {why}. Run the same command again to retry only "
            "what failed (finished ones are kept), or turn a failing one off in the recipe.")
