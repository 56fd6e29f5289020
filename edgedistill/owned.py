"""What a command may replace: only what it made.

Two kinds of output are written over an earlier one:

- an **output folder** (a bundle, a GPU pack): replaced only when it is missing, empty, or one this
  tool wrote (its manifest file says so and lists the folder's files). Files added to it since (a
  bench.json, notes) make a rewrite refused unless ``force``; a folder that is not one of its kind,
  a file or a symlink is never replaced, ``force`` or not; nor is a protected folder (the run
  folder, the current folder), a folder holding one, or, where the caller says so, one inside one.
- a **result file** (``compare --out``, ``gpu-bench --out``, ``bench --bundle --out``): never one
  of the command's own inputs or a file inside an input folder it reads, and an existing file only
  when it is of the command's own kind.

Nothing heavy is imported.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from edgedistill.integrity import is_inside


class OutputError(ValueError):
    """An output path whose replacement would lose something the command did not make."""


def _listing(paths: list[str], n: int = 6) -> str:
    shown = ", ".join(paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def check_output_folder(out: str | Path, *, what: str, manifest: str, own_files: Callable[[Path], set[str] | None],
                        protect: Iterable[str | Path] = (), protect_inside: Iterable[str | Path] = (),
                        force: bool = False, flag: str = "--out", example: str = "a new folder") -> None:
    """Raise OutputError unless writing ``what`` at ``out`` (a whole folder, replaced in one rename)
    loses nothing it did not make.

    ``own_files(folder)``: the relative paths the folder's ``manifest`` says it wrote (the manifest
    included), or None when the folder is not one of its kind. ``protect``: folders ``out`` must not
    be or hold (always the current folder too); ``protect_inside``: folders ``out`` must not lie in.
    ``force`` replaces an earlier ``what`` together with files added to it since, nothing else."""
    out = Path(out)
    for p in [*map(Path, protect), Path.cwd()]:
        if is_inside(p, out):
            holds = "is" if out.resolve() == p.resolve() else "holds"
            raise OutputError(f"{flag} {out} {holds} {p}; writing the {what} there would delete it and everything "
                              f"in it. Name {example} (--force never replaces it).")
    for p in map(Path, protect_inside):
        if is_inside(out, p):
            raise OutputError(f"{flag} {out} lies inside {p}, which the {what} must not change. Name {example} "
                              "outside it (--force never writes there).")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        kind = "a symlink" if out.is_symlink() else "a file"
        raise OutputError(f"{flag} {out} exists and is {kind}, not a {what}; it is never replaced, --force or not. "
                          f"Name {example}.")
    if not out.exists() or not any(out.iterdir()):
        return
    own = own_files(out)
    if own is None:
        raise OutputError(f"{flag} {out} is a folder that is not a {what} (no {manifest} of this tool), so "
                          f"it is never replaced, --force or not: --force only replaces a {what} this tool wrote. "
                          f"Name {example}.")
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() or p.is_symlink())
    added = [p for p in present if p not in own]
    if added and not force:
        raise OutputError(f"{flag} {out} is a {what}, but holds {len(added)} file(s) it did not write: "
                          f"{_listing(added)}. Writing the {what} again would delete them; nothing was written. Move "
                          f"them out first, name {example}, or pass --force to replace the {what} and them.")


def check_result_file(out: str | Path, *, what: str, inputs: Iterable[str | Path] = (),
                      input_folders: Iterable[str | Path] = (), owns: Callable[[Path], bool] | None = None,
                      flag: str = "--out", example: str = "a new file") -> None:
    """Raise OutputError when writing the result file ``out`` would replace one of the command's
    ``inputs``, a file inside one of its ``input_folders``, a folder, or (``owns`` given) an existing
    file that is not ``what``."""
    out = Path(out)
    for p in map(Path, inputs):
        if out.resolve() == p.resolve():
            raise OutputError(f"{flag} {out} is {p}, one of this command's own inputs; writing the {what} there would "
                              f"replace it. Name {example}.")
    for p in map(Path, input_folders):
        if is_inside(out, p):
            raise OutputError(f"{flag} {out} lies inside {p}, which this command reads; writing the {what} there "
                              f"could replace one of its files. Name {example} outside it.")
    if out.is_dir():
        raise OutputError(f"{flag} {out} is a folder; name the {what} to write, e.g. {example}.")
    if owns is not None and (out.exists() or out.is_symlink()) and not owns(out):
        raise OutputError(f"{flag} {out} exists and is not a {what} (this command writes only its own kind of file "
                          f"over an old one); nothing was written. Name {example}, or move {out} away.")
