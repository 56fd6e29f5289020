"""Atomic writes: a crash never leaves a half-written file or a folder that looks complete."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

# Temporary folders carry the writing process's id and host (``pid123@box``), so that a later run
# can tell one left behind by a killed process from one a live process is still writing.
_OWNER = re.compile(r"(?:^|[.-])pid(?P<pid>\d+)@(?P<host>.+?)\.[^.]+(?:\.partial)?$")
WORKSPACES = ".tmp"        # runs/<run>/.tmp/: a stage's scratch space, beside what it produces


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)   # mkstemp creates 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_dir(final: str | Path):
    """Yield a temporary sibling folder; on success it replaces ``final`` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # What a killed writer of the same folder left beside it (a bundle's --out has no run folder
    # whose cleanup would find it): removed before a new one is made.
    for stale in final.parent.glob(f".{glob.escape(final.name)}.pid*.partial"):
        if stale.is_dir() and not stale.is_symlink() and left_by_dead_process(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.{owner_tag()}.", suffix=".partial"))
    os.chmod(tmp, 0o755)       # mkdtemp creates 0700
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def owner_tag() -> str:
    return f"pid{os.getpid()}@{socket.gethostname()}"


def workspace(run_dir: str | Path, stage: str) -> Path:
    """A scratch folder for one stage under ``runs/<run>/.tmp/`` (the run's own disk, not /tmp);
    the stage removes it when done, ``remove_stale_temporaries`` when the stage was killed."""
    parent = Path(run_dir) / WORKSPACES
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f"{stage}-{owner_tag()}."))


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: str | Path | None = None):
    """A scratch folder ``<parent>/<prefix>-pid<PID>@<host>.<random>`` (default parent: the system's
    temporary folder), removed when the block ends; those a killed process left under the same
    prefix are removed first."""
    parent = Path(parent or tempfile.gettempdir())
    for stale in parent.glob(f"{glob.escape(prefix)}-pid*"):
        if stale.is_dir() and not stale.is_symlink() and left_by_dead_process(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}-{owner_tag()}."))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def left_by_dead_process(name: str) -> bool:
    """True when ``name`` carries an owner tag of a process of this host that no longer runs,
    or no tag at all (folders of earlier versions, which never outlive their process)."""
    m = _OWNER.search(name)
    if m is None:
        return True
    if m["host"] != socket.gethostname():
        return False            # another machine's process (a shared disk): cannot tell, keep it
    pid = int(m["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:     # alive, another user's
        return False
    return False


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Remove what killed processes left in a run folder: ``.partial`` folders of atomic_dir under
    models/ and artifacts/<model>/, and stage workspaces under .tmp/. Returns what was removed."""
    run_dir = Path(run_dir)
    candidates = [*(run_dir / "models").glob(".*.partial"), *(run_dir / "artifacts").glob("*/.*.partial"),
                  *(run_dir / WORKSPACES).glob("*")]
    removed = [p for p in candidates if p.is_dir() and left_by_dead_process(p.name)]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    if removed:
        print(f"removed {len(removed)} temporary folder(s) left by an interrupted run: "
              + ", ".join(str(p.relative_to(run_dir)) for p in removed), flush=True)
    return removed


def sha256(path: str | Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks (model files run to hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
