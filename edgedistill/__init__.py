"""edgedistill: distil, quantize and benchmark BERT-family text classifiers for edge hardware.

This package is the ground floor every stage shares (config loading, atomic writes, provenance,
metrics, the method registry, the run-folder layout, the runtime interface) and what sits above
the stages (the command line and ``edgedistill run``). Importing it loads neither torch nor
transformers.
"""
from __future__ import annotations

from edgedistill.cli import main

__all__ = ["main"]
