"""A bench bundle's format: its file names, kind and schema version, and reading it back verified.

``bench.bundles.write`` writes and benches bundles; the GPU bench (``bench.launchers.gpu.run --bundle``) reads one
too, so what both read lives here, below them both. Nothing outside a bundle is ever read: every
path is resolved inside it and every file's size and sha256 checked before anything is loaded.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgedistill.integrity import UnsafePathError, links_leaving, resolve_inside, verify_files
from edgedistill.io import sha256

BUNDLE_FILE = "bundle.json"
INPUTS_FILE = "inputs.json"
GPU_FOLDER = "gpu"
PACK_FILE = "pack.json"            # a GPU pack's manifest (bench/bundles/gpu_pack.py), in gpu/ or on its own
SCHEMA_VERSION = 1
KIND = "edgedistill-bench-bundle"
# The artifact formats a bundle carries, the runtime that measures each, and the package it needs.
FORMAT_RUNTIME = {"onnx": "onnxruntime", "openvino": "openvino"}
RUNTIME_PACKAGE = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
# What a bench machine can run without torch: the runtime each format needs, and its pip package.


class BundleError(ValueError):
    """A bundle that cannot be written, verified or benched; the message names the file and the fix."""


def bundle_files(folder: Path) -> set[str] | None:
    """The files ``folder``'s bundle.json says the bundle wrote (bundle.json included), or None when
    it holds no bundle.json of this command's kind: what ``edgedistill bundle --out`` may replace."""
    try:
        info = json.loads((folder / BUNDLE_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or info.get("kind") != KIND:
        return None
    return {*(info.get("files") if isinstance(info.get("files"), dict) else {}), BUNDLE_FILE}


def pack_files(folder: Path) -> set[str] | None:
    """The files ``folder``'s pack.json says the GPU pack wrote (pack.json included), or None when it
    holds no pack.json: what ``edgedistill gpu-pack --out`` may replace."""
    try:
        info = json.loads((folder / PACK_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or "pack_version" not in info:
        return None
    return {*(info.get("files") if isinstance(info.get("files"), dict) else {}), PACK_FILE}


def file_table(folder: Path) -> dict[str, dict]:
    """{relative path: {sha256, bytes}} of every file under ``folder``: what a bundle.json or a
    pack.json records, and ``verify_folder`` checks."""
    return {p.relative_to(folder).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
            for p in sorted(folder.rglob("*")) if p.is_file()}


def verify_folder(folder: Path, files: dict, source: str, what: str, extra: list[str] = ()) -> None:
    """The one verification of a folder that travelled (a bundle, a GPU pack): no symlink out, every
    file of ``files`` (read from ``source``) inside it with its size and sha256; BundleError naming
    each problem, before anything is measured."""
    problems = [*extra, *(f"{rel}: a symlink that leads outside the {what}" for rel in links_leaving(folder))]
    problems += verify_files(folder, files, source=source)
    if problems:
        raise BundleError(f"{what} {folder} failed verification, nothing was measured:\n  - " + "\n  - ".join(problems)
                          + (f"\nA path that leaves the {what} is never read: edgedistill writes none, so this "
                             f"{source} or folder was edited; write the {what} again."
                             if any("outside" in p for p in problems) else
                             f"\nCopy the {what} again (e.g. rsync -a, or a tar archive) from the machine that wrote "
                             "it."))


def _read_record(folder: Path, name: str, what: str, how: str) -> tuple[Path, object]:
    """(path, parsed JSON) of the record file a travelling folder carries; BundleError when it is missing
    or unreadable, saying how to make one (``how``) or to copy the folder again."""
    path = folder / name
    if not path.is_file():
        raise BundleError(f"{folder} is not a {what}: {name} is missing. {how}")
    try:
        return path, json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} cannot be read ({exc}); copy the {what.split()[-1]} again") from None


def verify_pack(folder: str | Path) -> dict:
    """A stand-alone GPU pack's pack.json, every file's size and sha256 checked (``verify_folder``,
    as a bundle's are); a pack without the records (written before they were kept) is refused."""
    folder = Path(folder)
    path, info = _read_record(folder, PACK_FILE, "GPU pack", "Write one with `edgedistill gpu-pack --run runs/<run> "
                              "--out DIR`, or pass a bundle written with --gpu as --bundle DIR.")
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict):
        raise BundleError(f"{path} records no sha256 of its files (a pack written by an earlier edgedistill, or "
                          "not a pack), so what would be measured cannot be checked. Pack the run again: "
                          "edgedistill gpu-pack --run runs/<run> --out DIR")
    verify_folder(folder, info["files"], PACK_FILE, "GPU pack")
    return info


def read_bundle(folder: str | Path) -> dict:
    """bundle.json, checked for kind and schema version (no hashes: see ``verify_bundle``)."""
    folder = Path(folder)
    path, info = _read_record(folder, BUNDLE_FILE, "bench bundle", "Write one with `edgedistill bundle --run "
                              "runs/<run> --out DIR` and copy the whole folder.")
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
    problems = []
    for a in info.get("artifacts") or []:
        try:
            resolve_inside(folder, str(a.get("folder", "")), "artifact folder")
        except UnsafePathError as exc:
            problems.append(f"{a.get('model')}/{a.get('variant')}: {exc}")
    verify_folder(folder, files, BUNDLE_FILE, "bundle", problems)
    return info
