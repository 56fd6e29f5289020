"""A bench bundle's format: its file names, kind and schema version, and reading it back verified.

``bench.bundles.write`` writes and benches bundles; the GPU bench (``bench.launchers.gpu.run --bundle``) reads one
too, so what both read lives here, below them both. Nothing outside a bundle is ever read: every
path is resolved inside it and every file's size and sha256 checked before anything is loaded.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgedistill.integrity import UnsafePathError, links_leaving, resolve_inside, verify_files

BUNDLE_FILE = "bundle.json"
INPUTS_FILE = "inputs.json"
GPU_FOLDER = "gpu"
SCHEMA_VERSION = 1
KIND = "edgedistill-bench-bundle"
# The artifact formats a bundle carries, the runtime that measures each, and the package it needs.
FORMAT_RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}
RUNTIME_PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
# What a bench machine can run without torch: the runtime each format needs, and its pip package.


class BundleError(ValueError):
    """A bundle that cannot be written, verified or benched; the message names the file and the fix."""


def is_bundle(folder: Path) -> bool:
    """True when ``folder`` holds a bundle.json of this command's kind: a folder it may replace."""
    try:
        info = json.loads((folder / BUNDLE_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(info, dict) and info.get("kind") == KIND


def read_bundle(folder: str | Path) -> dict:
    """bundle.json, checked for kind and schema version (no hashes: see ``verify_bundle``)."""
    folder = Path(folder)
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise BundleError(f"{folder} is not a bench bundle: {BUNDLE_FILE} is missing. Write one with "
                          "`edgedistill bundle --run runs/<run> --out DIR` and copy the whole folder.")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} cannot be read ({exc}); copy the bundle again") from None
    if not isinstance(info, dict) or info.get("kind") != KIND:
        kind = info.get("kind") if isinstance(info, dict) else None
        raise BundleError(f"{path} is not an edgedistill bench bundle (kind {kind!r})")
    version = info.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BundleError(f"{path} has bundle schema_version {version!r}, newer than this edgedistill reads "
                          f"(up to {SCHEMA_VERSION}). Install the edgedistill version that wrote it (commit "
                          f"{(info.get('provenance') or {}).get('git_commit')}) on this machine, or write the bundle "
                          "again with this version.")
    return info


def verify_bundle(folder: str | Path) -> dict:
    """``read_bundle`` plus every file's size and sha256; a missing or changed file is an error naming it."""
    folder = Path(folder)
    info = read_bundle(folder)
    # Every path is resolved first: nothing outside the bundle (``../``, absolute, a symlink out,
    # an artifact folder elsewhere) is hashed, read or loaded.
    files = info.get("files") if isinstance(info.get("files"), dict) else {}
    problems = [f"{rel}: a symlink that leads outside the bundle" for rel in links_leaving(folder)]
    for a in info.get("artifacts") or []:
        try:
            resolve_inside(folder, str(a.get("folder", "")), "artifact folder")
        except UnsafePathError as exc:
            problems.append(f"{a.get('model')}/{a.get('variant')}: {exc}")
    problems += verify_files(folder, files, source=BUNDLE_FILE)
    if problems:
        raise BundleError(f"bundle {folder} failed verification, nothing was measured:\n  - " + "\n  - ".join(problems)
                          + ("\nA path that leaves the bundle is never read: `edgedistill bundle` writes none, so this "
                             "bundle.json or folder was edited; write the bundle again with `edgedistill bundle`."
                             if any("outside" in p for p in problems) else
                             "\nCopy the bundle again (e.g. rsync -a, or a tar archive) from the machine that wrote "
                             "it."))
    return info
