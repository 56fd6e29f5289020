"""An artifact's manifest as the export writes it: its schema version, and whether a folder holds a
finished artifact whose files are intact (what a resumed export keeps and the bench loads)."""
from __future__ import annotations

from pathlib import Path

from edgedistill import layout
from edgedistill.runtime import (
    ArtifactError,
    read_manifest,
)

SCHEMA_VERSION = layout.ARTIFACT_SCHEMA_VERSION


def valid_manifest(folder: Path, verify_sha256: bool = False) -> dict | None:
    """The manifest of a finished artifact whose model files are intact, else None."""
    return inspect_artifact(folder, verify_sha256)[0]


def inspect_artifact(folder: Path, verify_sha256: bool = False) -> tuple[dict | None, str | None]:
    """(manifest, None) for a finished artifact whose model files are intact, else (None, why not).

    Sizes are always compared; ``verify_sha256`` also hashes every model file against the
    manifest (a file damaged in place keeps its size), which the export does before keeping one."""
    try:
        manifest = read_manifest(folder)
    except ArtifactError as exc:
        return None, str(exc)
    if not manifest:
        return None, "no manifest.json (not exported, or the export was interrupted)"
    if manifest.get("schema_version") == 1:
        return None, (f"manifest.json has schema 1: the graph lies at the folder root ({manifest.get('model_file')}), "
                      f"not where the clients look ({layout.ONNX_FP32_FILE}, {layout.ONNX_INT8_FILE}), and its "
                      "tokenizer files and card are not the current ones")
    if manifest.get("schema_version") != SCHEMA_VERSION or not manifest.get("model_file") or not manifest.get("files"):
        return None, (f"manifest.json has schema {manifest.get('schema_version')!r}, not {SCHEMA_VERSION}, "
                      "or no file list")
    problems = layout.artifact_problems(folder, hashes=verify_sha256)
    return (None, "; ".join(problems)) if problems else (manifest, None)
