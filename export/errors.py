"""The export stage's error type: an artifact that cannot be produced (a kind of ``ArtifactError``)."""
from __future__ import annotations

from edgedistill.runtime import ArtifactError


class ExportError(ArtifactError):
    """An export or artifact that cannot be produced or loaded; the message says how to fix it."""
