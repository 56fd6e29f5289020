"""The training stage's own error, raised before any compute is spent where it can be."""
from __future__ import annotations


class RunError(ValueError):
    """A run folder that cannot be used as asked (e.g. trained with another recipe)."""
