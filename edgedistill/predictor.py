"""Pick the right runtime for a folder: an artifact (manifest.json) or a PyTorch checkpoint.

    from edgedistill.predictor import load_predictor
    load_predictor("runs/x/artifacts/odd/onnx-int8-dynamic-trim").predict(["so good"]).labels

Serving an ONNX or OpenVINO artifact never imports torch.
"""
from __future__ import annotations

from pathlib import Path

from edgedistill.runtime import FORMAT_RUNTIME, RUNTIMES, ArtifactError, Runtime, read_manifest


def runtime_name_for(folder: str | Path) -> str:
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"{folder} does not exist; pass an artifact folder "
                            "(runs/<run>/artifacts/<model>/<variant>) "
                          "or a checkpoint folder (runs/<run>/models/<method>)")
    manifest = read_manifest(folder)
    if manifest is not None:
        fmt = manifest.get("format")
        if fmt not in FORMAT_RUNTIME:
            raise ArtifactError(f"{folder}/manifest.json has format {fmt!r}; known: {', '.join(FORMAT_RUNTIME)}")
        return FORMAT_RUNTIME[fmt]
    if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
        return "pytorch"
    raise ArtifactError(f"{folder} is neither an export artifact (no manifest.json) nor a checkpoint (no config.json). "
                      "An artifact without manifest.json is an unfinished export: re-run `edgedistill export`.")


def load_predictor(folder: str | Path, runtime: str | None = None, device: str = "cpu",
                   threads: int | None = None, precision: str | None = None) -> Runtime:
    """A loaded Runtime for ``folder``; ``runtime`` (pytorch|onnxruntime|openvino) overrides the guess."""
    name = runtime or runtime_name_for(folder)
    if name not in RUNTIMES:
        raise ArtifactError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}")
    return RUNTIMES[name].load(folder, device=device, threads=threads, precision=precision)
