"""What the playground may load: finished checkpoints and artifacts of the runs present in results.

Only folders found here can be chosen on the page, so the page never takes a path from the user.
A checkpoint counts once its ``edgedistill.json`` exists and an artifact once its ``manifest.json``
exists: both are written last, so a folder still being written is never offered.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgedistill import layout

MAX_CHARS = 1000   # the text box's cap: a tweet-sized model gains nothing from more
MAX_CHOSEN = 4


@dataclass(frozen=True)
class Candidate:
    run: str
    model: str           # a method name (edgedistill.methods)
    variant: str         # "pytorch" for a checkpoint, else the artifact variant (onnx-int8-dynamic, ...)
    folder: str
    label_names: tuple[str, ...] = ()

    @property
    def artifact(self) -> str:
        """The bench rows' ``artifact`` value for this folder: ``<model>/<variant>``."""
        return f"{self.model}/{self.variant}"

    @property
    def name(self) -> str:
        return f"{self.run} · {self.artifact}"


def discover(runs_dirs: list[str | Path], runs: list[str]) -> tuple[list[Candidate], list[str]]:
    """Every loadable folder of ``runs`` under ``runs_dirs``, and warnings for folders that look broken."""
    found, warnings, seen = [], [], set()
    for base in map(Path, runs_dirs):
        for run in runs:
            root = base / run
            if not root.is_dir() or run in seen:
                continue
            seen.add(run)  # the first runs folder holding a run wins, as with a search path
            for folder in layout.model_folders(root):
                if not (folder / layout.CHECKPOINT_MARKER).is_file():
                    continue
                info, reason = layout.read_marker(folder / layout.CHECKPOINT_MARKER)
                if info is None:
                    warnings.append(f"{reason}; checkpoint not offered")
                    continue
                found.append(Candidate(run, folder.name, "pytorch", str(folder), tuple(info.get("label_names") or ())))
            for folder in layout.artifact_folders(root):
                if not (folder / layout.ARTIFACT_MARKER).is_file():
                    continue
                info, reason = layout.read_marker(folder / layout.ARTIFACT_MARKER)
                if info is None:
                    warnings.append(f"{reason}; artifact not offered")
                    continue
                found.append(Candidate(run, str(info.get("model") or folder.parent.name),
                                       str(info.get("variant") or folder.name), str(folder),
                                       tuple(info.get("label_names") or ())))
    return found, warnings


def cap(text: str, limit: int = MAX_CHARS) -> str:
    return (text or "").strip()[:limit]


def predict_timed(predictor, text: str, repeats: int = 3) -> tuple[object, float]:
    """Predict ``text`` ``repeats`` times; return the prediction and the median latency in milliseconds."""
    times, pred = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        pred = predictor.predict([text])
        times.append((time.perf_counter() - t0) * 1000)
    return pred, sorted(times)[len(times) // 2]
