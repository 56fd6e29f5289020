"""What to measure: the run's checkpoints and artifacts, and one job per artifact x runtime x
device x precision x threads.

Which runtime loads which format (``LOADS``) and which precisions each runtime runs on each
device (``precisions_for``) live here and nowhere else, so the one benchmark loop stays free of
per-backend branches.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.config import BenchConfig, ConfigError
from edgedistill import layout

WEIGHT_GLOBS = ("*.safetensors", "*.bin")
# Formats each runtime can load through edgedistill.runtime. (OpenVINO itself reads .onnx files, but
# OpenVinoRuntime takes IR folders only; add "onnx" here if it learns to load ONNX artifacts.)
LOADS = {"pytorch": ("pytorch",), "onnxruntime": ("onnx",), "openvino": ("openvino",), "numpy": ("onnx",)}
# CPU flags (edgedistill.provenance.ISA_FLAGS) that mean BF16 arithmetic: x86 AVX-512 / AMX, Arm `bf16`.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass
class Artifact:
    model: str
    variant: str                 # "pytorch" for checkpoints
    format: str                  # pytorch | onnx | openvino
    precision: str               # as stored: fp32 | fp16 | int8
    quantization: str            # none | dynamic | static | nncf
    trimmed_vocab: bool
    folder: str
    size_bytes: int
    params: int | None
    label_names: list[str] = field(default_factory=list)
    # An INT8 artifact its export timed slower than its FP32 source side by side (export/speed.py).
    size_only: bool = False

    @property
    def name(self) -> str:
        return f"{self.model}/{self.variant}"


@dataclass
class Unreadable:
    """A finished-looking checkpoint or artifact whose edgedistill.json / manifest.json cannot be read."""
    model: str                   # from the folder names: models/<model>, artifacts/<model>/<variant>
    variant: str
    path: str
    error: str                   # names the file, what is wrong and how to rebuild it

    @property
    def name(self) -> str:
        return f"{self.model}/{self.variant}"

    def selected(self, cfg: BenchConfig) -> bool:
        return ((cfg.models is None or self.model in cfg.models)
                and (cfg.variants is None or self.variant in cfg.variants))


@dataclass
class Job:
    """One subprocess: an artifact loaded once by one runtime, then every scenario timed."""

    artifact: Artifact
    runtime: str
    device: str
    precision: str | None        # passed to Runtime.load; None = as stored (ONNX Runtime)
    threads: int

    @property
    def label(self) -> str:
        p = f" {self.precision}" if self.precision and self.precision != self.artifact.precision else ""
        return f"{self.artifact.name} [{self.runtime}/{self.device}{p} x{self.threads}]"

    def to_dict(self) -> dict:
        return {**asdict(self), "artifact": asdict(self.artifact)}

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(**{**d, "artifact": Artifact(**d["artifact"])})

    def row_precision(self) -> str:
        """The precision a row reports when the runtime does not say: as stored, unless the
        runtime was told a compute precision (INT8 stays INT8): the runtimes' own rule."""
        if self.precision and self.artifact.precision != "int8":
            return self.precision
        return self.artifact.precision

    def row_options(self, describe: dict | None = None) -> str:
        # OpenVINO's inference precision is a setting of its own, recorded in every row, with the
        # performance hint and stream count it compiled with (edgedistill.runtime.compiled_settings).
        if self.runtime != "openvino":
            return ""
        settings = (describe or {}).get("ov_settings") or {}
        extra = [f"{name}={str(settings[key]).lower()}" for key, name in
                 (("PERFORMANCE_HINT", "hint"), ("NUM_STREAMS", "streams")) if key in settings]
        return ",".join([f"infer={self.precision or 'fp32'}", *extra])


def size_only(manifest: dict) -> bool:
    """Whether an artifact ships for its size alone: an INT8 graph its export timed slower than the FP32
    graph it came from, side by side in one process (the manifest's ``speed_vs_fp32``, export/speed.py)."""
    return manifest.get("precision") == "int8" and bool((manifest.get("speed_vs_fp32") or {}).get("slower"))


def serves(runtime: str, artifact: Artifact) -> bool:
    """Whether ``runtime`` loads ``artifact``: its format, and for numpy the model2vec form (table and head
    files) that a static student's FP32 export carries beside its ONNX graph (edgedistill.runtime.NumpyRuntime)."""
    if artifact.format not in LOADS[runtime]:
        return False
    if runtime == "numpy":
        return all((Path(artifact.folder) / name).is_file() for name in layout.MODEL2VEC_FILES)
    return True


# --- discovery -----------------------------------------------------------------------------

def _files_size(folder: Path, globs) -> int:
    return int(sum(p.stat().st_size for g in globs for p in folder.glob(g) if p.is_file()))


def _vocab_size(tokenizer_json: Path) -> int | None:
    try:
        vocab = json.loads(tokenizer_json.read_text())["model"]["vocab"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return len(vocab)


def _trimmed_params(source: Path, artifact_folder: Path, params: int | None) -> int | None:
    """Params of a vocabulary-trimmed export: the source's minus the dropped embedding rows."""
    try:
        cfg = json.loads((source / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    kept = _vocab_size(artifact_folder / "tokenizer.json")
    hidden = cfg.get("hidden_size") or cfg.get("dim")
    if params is None or kept is None or not hidden or not cfg.get("vocab_size"):
        return None
    return int(params - (cfg["vocab_size"] - kept) * hidden)


def _read_marker(path: Path, fix: str, unreadable: list[Unreadable], model: str, variant: str) -> dict | None:
    doc, reason = layout.read_marker(path)
    if doc is None:
        unreadable.append(Unreadable(model, variant, str(path), f"{reason}; {fix}"))
    return doc


def discover(run_dir: str | Path) -> tuple[list[Artifact], list[str]]:
    """Finished checkpoints and artifacts of a run, plus notes on folders skipped (unfinished, or
    with an unreadable edgedistill.json / manifest.json: see ``discover_all``)."""
    found, notes, unreadable = discover_all(run_dir)
    return found, notes


def discover_all(run_dir: str | Path) -> tuple[list[Artifact], list[str], list[Unreadable]]:
    """``discover`` plus the folders skipped because their edgedistill.json / manifest.json is
    corrupt: a corrupt file never stops the other artifacts from being measured; the bench counts
    one as a failure only when its filters select it."""
    run_dir = Path(run_dir)
    found, notes, params_of, unreadable = [], [], {}, []
    for folder in layout.model_folders(run_dir):
        meta_path = folder / layout.CHECKPOINT_MARKER
        if not meta_path.is_file():
            notes.append(f"{folder}: no edgedistill.json (training unfinished), skipped")
            continue
        meta = _read_marker(meta_path, f"retrain it (edgedistill train RECIPE --methods {folder.name} --force)",
                            unreadable, folder.name, "pytorch")
        if meta is None:
            notes.append(unreadable[-1].error + "; skipped")
            continue
        params_of[folder.name] = meta.get("params_total")
        found.append(Artifact(folder.name, "pytorch", "pytorch", "fp32", "none", False, str(folder.resolve()),
                              _files_size(folder, WEIGHT_GLOBS), meta.get("params_total"),
                              list(meta.get("label_names") or [])))
    for folder in layout.artifact_folders(run_dir):
        manifest_path = folder / layout.ARTIFACT_MARKER
        if not manifest_path.is_file():
            notes.append(f"{folder}: no manifest.json (export unfinished), skipped")
            continue
        m = _read_marker(manifest_path, f"re-export it (edgedistill export --run {run_dir} --models "
                         f"{folder.parent.name} --variants {folder.name} --force)", unreadable, folder.parent.name,
                         folder.name)
        if m is None:
            notes.append(unreadable[-1].error + "; skipped")
            continue
        model, variant = m.get("model") or folder.parent.name, m.get("variant") or folder.name
        trimmed = bool(m.get("trimmed_vocab", variant.endswith("-trim")))
        params = m.get("params") or params_of.get(model)
        if trimmed and not m.get("params"):
            params = _trimmed_params(layout.model_dir(run_dir, model), folder, params_of.get(model))
        size = m.get("size_bytes") or _files_size(folder, ("*.onnx", "*.onnx_data", "*.xml", "*.bin"))
        found.append(Artifact(model, variant, m.get("format", "onnx"), m.get("precision", "fp32"),
                              m.get("quantization", "none"), trimmed, str(folder.resolve()), int(size), params,
                              list(m.get("label_names") or []), size_only=size_only(m)))
    return found, notes, unreadable


# --- devices and precisions ----------------------------------------------------------------

def available_devices(runtimes: list[str]) -> dict[str, list[str]]:
    """Devices each runtime can use on this machine (imports only the runtimes asked for)."""
    out: dict[str, list[str]] = {}
    if "pytorch" in runtimes:
        import torch

        out["pytorch"] = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "onnxruntime" in runtimes:
        try:
            import onnxruntime as ort

            cuda = "CUDAExecutionProvider" in ort.get_available_providers()
            out["onnxruntime"] = ["cpu"] + (["cuda"] if cuda else [])
        except ImportError:
            out["onnxruntime"] = []
    if "numpy" in runtimes:
        out["numpy"] = ["cpu"]
    if "openvino" in runtimes:
        try:
            import openvino as ov

            devices = ov.Core().available_devices
            out["openvino"] = [d for d, name in (("cpu", "CPU"), ("gpu", "GPU")) if name in devices]
        except ImportError:
            out["openvino"] = []
    return out


def cpu_has_bf16(hardware: dict) -> bool:
    return any(f in hardware.get("isa_flags", []) for f in BF16_FLAGS)


def precisions_for(artifact: Artifact, runtime: str, device: str, cfg: BenchConfig, bf16: bool) -> list[str | None]:
    if runtime == "pytorch":
        if device == "cuda":
            return ["fp32", "fp16", "bf16"]
        return ["fp32"] + (["bf16"] if cfg.include_bf16 and bf16 else [])
    if runtime == "openvino":
        if device == "gpu":
            return ["fp32", "fp16"]
        extra = cfg.include_bf16 and bf16 and artifact.precision in ("fp32", "fp16")
        return ["fp32"] + (["bf16"] if extra else [])
    return [None]   # ONNX Runtime runs an artifact as stored


def resolve_threads(threads: list, physical_cores: int) -> list[int]:
    out = []
    for t in threads:
        n = physical_cores if t == "all" else int(t)
        if n not in out:
            out.append(n)
    return out


def plan_jobs(artifacts: list[Artifact], cfg: BenchConfig, devices: dict[str, list[str]],
              hardware: dict, unreadable: list[Unreadable] = ()) -> list[Job]:
    """Every (artifact, runtime, device, precision, threads) to measure, teacher reference first.
    ``unreadable`` folders count as present for the filter check (the caller reports them)."""
    _check_filters([*artifacts, *unreadable], cfg)
    threads = resolve_threads(cfg.threads, int(hardware.get("physical_cores") or 1))
    bf16 = cpu_has_bf16(hardware)
    wanted_runtimes = cfg.runtimes or list(LOADS)
    jobs: list[Job] = []
    for a in artifacts:
        selected = ((cfg.models is None or a.model in cfg.models)
                    and (cfg.variants is None or a.variant in cfg.variants))
        reference = cfg.reference and a.model == "teacher" and a.variant == "pytorch"
        if not (selected or reference):
            continue
        for runtime in LOADS:
            if not serves(runtime, a):
                continue
            full = selected and runtime in wanted_runtimes
            if not (full or reference):
                continue
            for device in devices.get(runtime, []):
                if cfg.devices is not None and device not in cfg.devices:
                    continue
                for precision in precisions_for(a, runtime, device, cfg, bf16):
                    if not full and precision != "fp32":
                        continue   # the reference alone: teacher PyTorch FP32
                    # On accelerators the host thread count barely matters: measure it once.
                    for t in (threads if device == "cpu" else threads[:1]):
                        jobs.append(Job(a, runtime, device, precision, t))
    return jobs


def _check_filters(artifacts: list[Artifact | Unreadable], cfg: BenchConfig):
    errs = []
    for key, values in (("models", {a.model for a in artifacts}), ("variants", {a.variant for a in artifacts})):
        unknown = sorted(set(getattr(cfg, key) or []) - values)
        if unknown:
            found = ", ".join(sorted(values)) or "nothing"
            errs.append(f"bench.{key}: {unknown} not found in this run (found: {found})")
    if errs:
        raise ConfigError("\n".join(errs))
