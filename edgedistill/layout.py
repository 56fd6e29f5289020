"""The run folder, ``runs/<run>/``, and where its results go: the one module that knows the layout.

    runs/<run>/recipe.yaml                       the resolved recipe the run was trained with
    runs/<run>/models/<method>/                  a checkpoint; edgedistill.json written last
    runs/<run>/artifacts/<method>/<variant>/     an export; manifest.json written last (ARTIFACT_FILES)
    <results_dir>/<run>/                         metrics, export and bench results (committed)

Every stage finds folders, completion markers and the stored recipe here, and the results folder
of a run is decided by ``results_dir`` alone, so training, export and bench always write to the
same place. Nothing heavy is imported (the dashboard uses it).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from edgedistill.integrity import UnsafePathError, resolve_inside, verify_files
from edgedistill.methods import rank

RECIPE_FILE = "recipe.yaml"
CHECKPOINT_MARKER = "edgedistill.json"     # written last into models/<method>/
ARTIFACT_MARKER = "manifest.json"          # written last into artifacts/<method>/<variant>/
CHECKPOINT_SCHEMA_VERSION = 1
LOCK_FILE = ".lock"                        # held (flock) by the process working on the run folder
LOCK_OWNER = ".lock.json"                  # who holds it: pid, host, command, since

# An artifact folder as the Hugging Face clients read it (transformers.js and optimum look for
# onnx/model.onnx and, for INT8, onnx/model_quantized.onnx; optimum-intel for openvino_model.xml),
# with the tokenizer, config.json, a model card and the project's manifest beside the model.
# Schema 2 is this layout; schema 1 kept the ONNX graph at the folder root as model.onnx (still
# read through its manifest's model_file; the export rebuilds such a folder).
ARTIFACT_SCHEMA_VERSION = 2
READABLE_ARTIFACT_SCHEMAS = (1, 2)
ONNX_FP32_FILE = "onnx/model.onnx"
ONNX_INT8_FILE = "onnx/model_quantized.onnx"
OPENVINO_FILE = "openvino_model.xml"
CARD_FILE = "README.md"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CONFIG_FILE = "config.json"
# The static student's model2vec form, beside its ONNX graph (model2vec's own file names).
MODEL2VEC_FILES = ("model.safetensors", "head.safetensors")
REWRITE_COMMAND = "edgedistill export --run runs/<run> --force"


def model2vec_head_key(layer: int, part: str) -> str:
    """The name of one head tensor in head.safetensors (model2vec's MLP head: ``part`` is weight or bias)."""
    return f"head.{layer}.{part}"


def model_file_for(fmt: str, precision: str) -> str:
    """Where an artifact of this format and precision keeps its model, relative to its folder."""
    if fmt == "openvino":
        return OPENVINO_FILE
    if fmt == "onnx":
        return ONNX_INT8_FILE if precision == "int8" else ONNX_FP32_FILE
    raise ValueError(f"no artifact model file for format {fmt!r} (formats: onnx, openvino)")


class RunFolderError(ValueError):
    """A folder that is not a usable run folder; the message says how to make one."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path, command: list[str] | None = None, create: bool = False):
    """Hold the run folder's lock while a process trains, exports or benches it; a second process
    is refused at once with who holds it. The operating system releases the lock when its process
    ends, kill -9 included, so a lock never outlives its holder. A missing folder is made with
    ``create`` (and removed again when the command wrote nothing into it), else left to the stage to
    report (nothing to lock). Every writer of a run folder takes it: train, export, bench (--merge
    too) and run."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    made = create and not run_dir.exists()
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    elif not run_dir.is_dir():
        yield
        return
    lock = FileLock(run_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = json.loads((run_dir / LOCK_OWNER).read_text())
        except (OSError, ValueError):
            holder = {}
        who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}: "
               f"{' '.join(holder.get('command') or [])}") if holder else "a process that is just starting"
        raise RunFolderError(f"{run_dir} is in use by another edgedistill process ({who}). Wait for it to finish or "
                             "stop it, or use another run.name; the lock goes with its process, so nothing needs "
                             "removing by hand.") from None
    from edgedistill.io import atomic_write_json

    try:
        atomic_write_json(run_dir / LOCK_OWNER, {
            "pid": os.getpid(), "host": socket.gethostname(), "command": command or ["edgedistill", *sys.argv[1:]],
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        yield
    finally:
        with contextlib.suppress(OSError):
            (run_dir / LOCK_OWNER).unlink()
        lock.release()
        if made:
            # A command refused before it wrote anything leaves no empty runs/<name>/ behind.
            with contextlib.suppress(OSError):
                if {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
                    (run_dir / LOCK_FILE).unlink(missing_ok=True)
                    run_dir.rmdir()


def models_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "models"


def model_dir(run_dir: str | Path, method: str) -> Path:
    return models_dir(run_dir) / method


def artifacts_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "artifacts"


def artifact_dir(run_dir: str | Path, method: str, variant: str) -> Path:
    return artifacts_dir(run_dir) / method / variant


def recipe_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / RECIPE_FILE


def results_dir(results_root: str | Path, run_dir: str | Path) -> Path:
    """Where a run's results go: ``<results_root>/<name of the run folder>``.

    The run folder's own name, never a name stored inside it, so a copied run folder writes to
    results of its own instead of overwriting those of the run it was copied from.
    """
    return Path(results_root) / Path(run_dir).name


def run_results_dir(recipe, run_dir: str | Path | None = None) -> Path:
    """The results folder of ``run_dir`` (default: the recipe's own run folder) under the recipe's results_dir."""
    return results_dir(recipe.run.results_dir, run_dir if run_dir is not None else recipe.run_dir)


def _subdirs(folder: Path) -> list[Path]:
    # Dot-folders are atomic_dir's temporaries (.name.partial) and leftovers (.name.old).
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def model_folders(run_dir: str | Path) -> list[Path]:
    """Every checkpoint folder (finished or not), in registry order, unknown methods last by name."""
    return sorted(_subdirs(models_dir(run_dir)), key=lambda p: (rank(p.name), p.name))


def artifact_folders(run_dir: str | Path) -> list[Path]:
    """Every artifact folder (finished or not), by method in registry order, then variant name."""
    folders = [v for m in _subdirs(artifacts_dir(run_dir)) for v in _subdirs(m)]
    return sorted(folders, key=lambda p: (rank(p.parent.name), p.parent.name, p.name))


def read_marker(path: str | Path) -> tuple[dict | None, str | None]:
    """A completion marker's JSON object, or ``(None, reason)`` when it cannot be read or is not an
    object: one reading for the bench's discovery and the dashboard's, so both say the same thing."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{path} is not valid JSON ({exc})"
    if not isinstance(doc, dict):
        return None, f"{path} is a JSON {type(doc).__name__}, not an object"
    return doc, None


def checkpoint_complete(folder: str | Path) -> bool:
    """True when the checkpoint's marker exists, parses and has the current schema version."""
    try:
        meta = json.loads((Path(folder) / CHECKPOINT_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("schema_version") == CHECKPOINT_SCHEMA_VERSION


def has_marker(folder: str | Path) -> bool:
    """True when a checkpoint's or an artifact's completion marker is present (written last)."""
    folder = Path(folder)
    return (folder / CHECKPOINT_MARKER).is_file() or (folder / ARTIFACT_MARKER).is_file()


def artifact_problems(folder: str | Path, hashes: bool = True) -> list[str]:
    """What differs between a finished artifact's files and its manifest.json (model files, and
    tokenizer and config files where the manifest records them), one line each; [] when intact.
    A ``model_file`` or file entry that leaves the folder is a problem too."""
    folder = Path(folder)
    doc, reason = read_marker(folder / ARTIFACT_MARKER)
    if doc is None:
        return [reason]
    records = {**(doc.get("files") or {}), **(doc.get("support_files") or {})}
    problems = verify_files(folder, records, hashes, source=ARTIFACT_MARKER)
    if doc.get("model_file"):
        try:
            resolve_inside(folder, doc["model_file"], "model_file")
        except UnsafePathError as exc:
            problems.append(f"{ARTIFACT_MARKER}: {exc}")
    return problems


def checkpoint_problems(folder: str | Path, hashes: bool = True) -> list[str]:
    """What differs between a checkpoint's files and the sha256 its edgedistill.json records
    (checkpoints written before the record was kept have none to check); [] when intact."""
    folder = Path(folder)
    doc, reason = read_marker(folder / CHECKPOINT_MARKER)
    if doc is None:
        return [reason]
    return verify_files(folder, doc.get("files") or {}, hashes, source=CHECKPOINT_MARKER)
