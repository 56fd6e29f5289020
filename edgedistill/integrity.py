"""Files a stage trusts: paths that stay inside the folder they belong to, and sha256 records.

Every file a later stage trusts is hashed by the stage that writes it (``file_records``) and
checked by the stage that reads it (``verify_files``); every path read from a manifest or a
bundle.json is resolved, symlinks followed, and refused when it leaves its folder
(``resolve_inside``), before anything is hashed or loaded. Nothing heavy is imported.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from edgedistill.io import sha256


class UnsafePathError(ValueError):
    """A path that leaves the folder it must stay in; the message names the path and the folder."""


def is_inside(path: str | Path, root: str | Path) -> bool:
    """True when ``path`` (symlinks followed) is ``root`` or lies under it."""
    path, root = Path(path).resolve(), Path(root).resolve()
    return path == root or root in path.parents


def resolve_inside(root: str | Path, rel: str, what: str = "path") -> Path:
    """``root / rel`` resolved; an absolute ``rel``, one with ``..`` that climbs out, or a symlink
    whose target lies outside ``root`` raises UnsafePathError naming ``what``."""
    root = Path(root)
    text = str(rel)
    if not text or PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute():
        raise UnsafePathError(f"{what} {text!r} is not a relative path: it points outside {root}; refused")
    full = root / text
    if not is_inside(full, root):
        target = full.resolve()
        raise UnsafePathError(f"{what} {text!r} leads outside {root} (to {target}); refused: a file outside the "
                              "folder is never read")
    return full.resolve()


def links_leaving(root: str | Path) -> list[str]:
    """Symlinks under ``root`` whose target lies outside it (relative paths)."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink() and not is_inside(p, root):
                out.append(p.relative_to(root).as_posix())
    return sorted(out)


def file_records(folder: str | Path, names) -> dict[str, dict]:
    """{name: {size_bytes, sha256}} for the files ``names`` of ``folder`` (those present)."""
    folder = Path(folder)
    return {n: {"size_bytes": (folder / n).stat().st_size, "sha256": sha256(folder / n)}
            for n in names if (folder / n).is_file()}


def verify_files(root: str | Path, records: dict, hashes: bool = True, source: str = "its record") -> list[str]:
    """One line per file of ``records`` ({relative path: {size_bytes or bytes, sha256}}, read from
    ``source``) that leaves ``root``, is missing, or differs in size or (``hashes``) sha256; [] when
    all match."""
    problems = []
    for rel, want in sorted(records.items()):
        try:
            path = resolve_inside(root, rel, "file")
        except UnsafePathError as exc:
            problems.append(f"{rel}: {exc}")
            continue
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = want.get("size_bytes", want.get("bytes")) if isinstance(want, dict) else None
        if size is not None and path.stat().st_size != size:
            problems.append(f"{rel}: {path.stat().st_size} bytes, {source} says {size} (changed or truncated)")
        elif hashes and isinstance(want, dict) and want.get("sha256") and sha256(path) != want["sha256"]:
            problems.append(f"{rel}: sha256 differs from the one in {source} (changed or corrupted since it was "
                            "written)")
    return problems
