"""The export stage's error type (torch-free, so runtimes can raise it without heavy imports)."""
from __future__ import annotations


class ExportError(ValueError):
    """An export or artifact that cannot be produced or loaded; the message says how to fix it."""
