"""What a checkpoint and an artifact say about themselves: one class each, written and read here.

A checkpoint's ``edgedistill.json`` and an artifact's ``manifest.json`` are written last into
their folders (``edgedistill.layout`` names them); their presence marks the folder complete. The
fields every reader needs (the label names, the token limit the model was trained and exported
with, the layers it kept) are typed here, so no reader digs them out of nested JSON or falls back
to a default of its own: a model trained at 64 tokens is served at 64 tokens, or refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgedistill.layout import (
    ARTIFACT_MARKER,
    ARTIFACT_SCHEMA_VERSION,
    CHECKPOINT_MARKER,
    CHECKPOINT_SCHEMA_VERSION,
    READABLE_ARTIFACT_SCHEMAS,
)


class ArtifactError(ValueError):
    """A checkpoint or artifact folder that cannot be loaded; the message says how to fix it."""


def _read_json(path: Path, fix: str) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path} must hold a JSON object; {fix}")
    return doc


def _labels(doc: dict, path: Path, fix: str) -> list[str]:
    labels = doc.get("label_names")
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) for n in labels):
        raise ArtifactError(f"{path}: label_names must be a non-empty list of strings (got {labels!r}); {fix}")
    return list(labels)


def _max_length(value, path: Path, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArtifactError(f"{path}: max_length must be a positive whole number of tokens (got {value!r}); {fix}")
    return value


@dataclass(frozen=True)
class CheckpointMeta:
    """``runs/<run>/models/<method>/edgedistill.json``."""

    method: str
    label_names: list[str]
    max_length: int
    layers: list[int] | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    FIX = "train the model again with `edgedistill train <recipe>`"

    @classmethod
    def read(cls, folder: str | Path) -> CheckpointMeta:
        folder = Path(folder)
        path = folder / CHECKPOINT_MARKER
        if not folder.is_dir():
            raise ArtifactError(f"checkpoint folder {folder} does not exist; train it first with `edgedistill train "
                                "<recipe>`")
        if not path.is_file():
            raise ArtifactError(f"{folder} has no {CHECKPOINT_MARKER}, so its training did not finish (the file is "
                                "written last). Re-run `edgedistill train <recipe>` to complete it, or leave this "
                                "model out with --models.")
        doc = _read_json(path, cls.FIX)
        # Checkpoints written before max_length sat at the top level carry it in their stored recipe.
        stored = ((doc.get("recipe") or {}).get("data") or {}).get("max_length")
        return cls(method=str(doc.get("method") or folder.name), label_names=_labels(doc, path, cls.FIX),
                   max_length=_max_length(doc.get("max_length", stored), path, cls.FIX),
                   layers=doc.get("layers"), raw=doc)

    @staticmethod
    def document(method: str, label_names: list[str], max_length: int, entry: dict, recipe: dict, provenance: dict,
                 files: dict) -> dict:
        """The edgedistill.json the training stage writes (``entry``: the method's training record)."""
        return {"schema_version": CHECKPOINT_SCHEMA_VERSION, "label_names": list(label_names),
                "max_length": int(max_length), "recipe": recipe, "provenance": provenance,
                **entry, "method": method, "files": files}


@dataclass(frozen=True)
class ArtifactMeta:
    """``runs/<run>/artifacts/<model>/<variant>/manifest.json`` (and a bundle's copy of it)."""

    model_file: str
    label_names: list[str]
    max_length: int
    precision: str = "fp32"
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    FIX = "export the artifact again with `edgedistill export --run runs/<run> --force`"

    @classmethod
    def from_dict(cls, doc: dict, path: Path) -> ArtifactMeta:
        # Schema 1 kept model.onnx at the folder root: still read through its model_file.
        version = doc.get("schema_version")
        if version is not None and version not in READABLE_ARTIFACT_SCHEMAS:
            raise ArtifactError(f"{path}: schema_version {version!r} is not one this edgedistill reads "
                                f"({', '.join(map(str, READABLE_ARTIFACT_SCHEMAS))}; it writes "
                                f"{ARTIFACT_SCHEMA_VERSION}); install the edgedistill that wrote it, or {cls.FIX}")
        model_file = doc.get("model_file")
        if not isinstance(model_file, str) or not model_file:
            raise ArtifactError(f"{path}: model_file is missing; {cls.FIX}")
        return cls(model_file=model_file, label_names=_labels(doc, path, cls.FIX),
                   max_length=_max_length(doc.get("max_length"), path, cls.FIX),
                   precision=str(doc.get("precision") or "fp32"), raw=doc)

    @classmethod
    def read(cls, folder: str | Path) -> ArtifactMeta | None:
        """None when the folder has no manifest (an unfinished export, or not an artifact)."""
        path = Path(folder) / ARTIFACT_MARKER
        if not path.is_file():
            return None
        return cls.from_dict(_read_json(path, cls.FIX), path)
