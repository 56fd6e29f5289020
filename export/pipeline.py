"""``export_run``: every trained model of a run -> checked, deployable artifact folders.

    from export.config import load_export_config
    from export.pipeline import export_run
    rows = export_run("runs/quickstart", load_export_config({"variants": ["onnx-fp32", "onnx-int8-dynamic"]}))

For each model (``runs/<run>/models/<method>``) and variant it builds
``runs/<run>/artifacts/<method>/<variant>/`` (model file, tokenizer, config.json, manifest.json),
checks it against the PyTorch FP32 checkpoint (parity on TEST texts, macro-F1 delta) and
writes manifest.json last inside an atomic folder. Artifacts with a valid manifest whose files
match the sha256 it records are kept unless ``force``, so an interrupted export resumes; scratch
files live in ``runs/<run>/.tmp/`` and a killed export's leftovers are removed on the next run. The
summary goes to
``results/<run>/export.json`` and ``export.md`` (export/report.py).
"""
from __future__ import annotations

import gc
import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from distill.config import Recipe
from edgedistill import layout
from edgedistill.configbase import dump, to_dict
from edgedistill.io import atomic_dir, atomic_write_json, remove_stale_temporaries, sha256
from edgedistill.io import workspace as make_workspace
from edgedistill.methods import ORDER as METHODS
from edgedistill.provenance import provenance
from edgedistill.runtime import (
    MANIFEST,
    ArtifactError,
    OpenVinoRuntime,
    OrtRuntime,
    TextEncoder,
    TorchRuntime,
    checkpoint_max_length,
    checkpoint_meta,
    read_manifest,
)
from export import checks, convert, speed, vocab
from export.config import ExportConfig, variant_spec
from export.errors import ExportError
from export.report import format_table, summary_row, write_results

SCHEMA_VERSION = 1
TOOLS = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "openvino", "nncf", "tokenizers")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def tool_versions() -> dict[str, str]:
    from edgedistill.provenance import library_versions

    return library_versions(TOOLS)


# --- the run -------------------------------------------------------------------------------

def discover_models(run_dir: Path, wanted: list[str] | None) -> list[str]:
    """The models to export, in METHODS order; each must be a finished checkpoint."""
    models_dir = layout.models_dir(run_dir)
    present = [m for m in METHODS if (models_dir / m).is_dir()]
    if wanted:
        missing = [m for m in wanted if m not in present]
        if missing:
            raise ExportError(f"model(s) {missing} not found under {models_dir} (present: "
                              f"{', '.join(present) or 'none'}); "
                              "train them first or leave them out of --models")
        chosen = [m for m in METHODS if m in wanted]
    else:
        chosen = present
    if not chosen:
        raise ExportError(f"{run_dir} has no trained models (no folders {', '.join(METHODS)} under {models_dir}); "
                          "run `edgedistill train <recipe>` first")
    unfinished = [m for m in chosen if not (models_dir / m / layout.CHECKPOINT_MARKER).is_file()]
    if unfinished:
        raise ExportError(f"checkpoint(s) {', '.join(str(models_dir / m) for m in unfinished)} have no "
                          "edgedistill.json: "
                          "their training did not finish (the file is written last). Finish training "
                          f"(`edgedistill train`), or export only the finished ones with --models "
                          f"{','.join(m for m in chosen if m not in unfinished) or '<method>'}.")
    return chosen


# --- one model: its checkpoint, references and intermediate graphs (built once, lazily) -------

class ModelJob:
    """Everything the variants of one model share, computed on first use and cached."""

    def __init__(self, run_dir: Path, method: str, recipe: Recipe, data, evalset: checks.EvalSet,
                 cfg: ExportConfig, workspace: Path, threads: int):
        self.method, self.recipe, self.data, self.evalset, self.cfg = method, recipe, data, evalset, cfg
        self.folder = layout.model_dir(run_dir, method)
        self.meta = checkpoint_meta(self.folder)
        self.label_names = list(self.meta.get("label_names") or data.label_names)
        if self.label_names != list(data.label_names):
            raise ExportError(f"{self.folder} was trained with labels {self.label_names} but the run's data has "
                              f"{data.label_names}; the recipe.yaml does not match this checkpoint")
        self.max_length = checkpoint_max_length(self.meta) if self.meta.get("recipe") else recipe.data.max_length
        self.work = workspace / method
        self.work.mkdir(parents=True, exist_ok=True)
        self.threads = threads
        self._cache: dict = {}
        # A static student (distill/static.py) is a token table and a head: its ONNX graph is written
        # from its weights (edgedistill/graphs.py), and only the variants in STATIC_BUILDERS apply.
        from distill.static import is_static_checkpoint

        self.static = is_static_checkpoint(self.folder)

    def _cached(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def checkpoint(self, trim: bool) -> Path:
        return self.trimmed()[0] if trim else self.folder

    def trimmed(self) -> tuple[Path, dict]:
        def build():
            from distill.models import load_checkpoint

            dst = self.work / "trimmed-checkpoint"
            model, _ = load_checkpoint(self.folder)
            _, report = vocab.trim_checkpoint(model, self.folder, dst, self.data.train.texts,
                                              self.cfg.trim_min_count, self.cfg.trim_keep_chars,
                                              self.cfg.trim_target_ratio)
            report["test_tokenization"] = vocab.tokenization_change(vocab.load_tokenizer_json(self.folder), dst,
                                                                    self.evalset.texts)
            return dst, report
        return self._cached("trimmed", build)

    def torch_model(self, trim: bool):
        from distill.models import load_checkpoint

        return self._cached(("model", trim), lambda: load_checkpoint(self.checkpoint(trim))[0])

    def params(self, trim: bool) -> int:
        return self._cached(("params", trim), lambda: int(sum(p.numel() for p in self.torch_model(trim).parameters())))

    def reference(self, trim: bool) -> np.ndarray:
        """PyTorch FP32 logits on the eval texts (trim: the trimmed checkpoint, same tokenization)."""
        def build():
            rt = TorchRuntime.load(self.checkpoint(trim), threads=self.threads)
            return rt.logits(self.evalset.texts, self.cfg.batch_size)
        return self._cached(("reference", trim), build)

    def source_f1(self) -> float:
        return self._cached("source_f1", lambda: checks.macro_f1(self.reference(False), self.evalset.labels,
                                                                 self.label_names))

    def onnx(self, trim: bool) -> Path:
        def build():
            out = self.work / ("onnx-trim" if trim else "onnx")
            if self.static:
                return static_onnx(self.torch_model(trim), out / convert.ONNX_FILE)
            return convert.export_onnx(self.torch_model(trim), out, self.cfg.opset)
        return self._cached(("onnx", trim), build)

    def optimized(self, trim: bool) -> tuple[Path, dict]:
        def build():
            dst = self.work / ("optimized-trim.onnx" if trim else "optimized.onnx")
            return dst, convert.optimize_onnx(self.onnx(trim), dst, self.model_config(trim))
        return self._cached(("optimized", trim), build)

    def model_config(self, trim: bool) -> SimpleNamespace:
        path = self.checkpoint(trim) / "config.json"
        config = json.loads(path.read_text()) if path.is_file() else self.torch_model(trim).config.to_dict()
        return SimpleNamespace(**config)

    def input_names(self, trim: bool) -> tuple[str, ...]:
        import onnx

        graph = onnx.load(str(self.onnx(trim)), load_external_data=False).graph
        return tuple(i.name for i in graph.input)

    def encoder(self, trim: bool) -> TextEncoder:
        return TextEncoder(self.checkpoint(trim), self.max_length, self.input_names(trim))

    def calibration(self, trim: bool) -> list[dict]:
        def build():
            texts = checks.calibration_texts(self.data.train.texts, self.cfg.calibration_size, self.recipe.data.seed)
            return convert.calibration_feeds(self.encoder(trim), texts)
        return self._cached(("calibration", trim), build)

    def fp32_onnx_size(self) -> int:
        manifest = valid_manifest(layout.artifact_dir(self.folder.parent.parent, self.method, "onnx-fp32"))
        if manifest:
            return int(manifest["size_bytes"])
        return self._cached("fp32_size", lambda: sum(p.stat().st_size for p in convert.model_files(
            self.onnx(False).parent, convert.ONNX_FILE)))

    def copy_support_files(self, trim: bool, dst: Path):
        """Tokenizer files and config.json beside the model, so the folder deploys on its own."""
        src = self.checkpoint(trim)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, dst / name)
        if (src / "config.json").is_file():
            shutil.copy2(src / "config.json", dst / "config.json")
        else:   # an adapter-only LoRA folder: the merged model's config
            self.torch_model(trim).config.to_json_file(dst / "config.json")


# --- variant builders: write the model file(s) into ``out``, return extra manifest fields -----

def build_onnx_fp32(job: ModelJob, trim: bool, out: Path) -> dict:
    for f in convert.model_files(job.onnx(trim).parent, convert.ONNX_FILE):
        shutil.copy2(f, out / f.name)
    return {"model_file": convert.ONNX_FILE}


def build_onnx_opt(job: ModelJob, trim: bool, out: Path) -> dict:
    path, fusions = job.optimized(trim)
    shutil.copy2(path, out / convert.ONNX_FILE)
    missing = [k for k in convert.FUSION_KINDS if not fusions.get(k)]
    warnings = []
    if missing:
        warnings.append(f"no {'/'.join(missing)} fusion applied by the ONNX Runtime transformer optimizer "
                        f"(fused: {fusions['ops'] or 'nothing'}); this graph is not faster than onnx-fp32")
    return {"model_file": convert.ONNX_FILE, "fusions": fusions, "warnings": warnings}


def build_onnx_dynamic(job: ModelJob, trim: bool, out: Path) -> dict:
    """Dynamic INT8 from the fused graph or the plain one; 'auto' builds both and keeps the better."""
    cfg, warnings = job.cfg, []
    sources = ["optimized", "plain"] if cfg.dynamic_source == "auto" else [cfg.dynamic_source]
    candidates: dict[str, Path] = {}
    fusions = None
    for source in sources:
        folder = job.work / f"dynamic-{source}{'-trim' if trim else ''}"
        folder.mkdir(exist_ok=True)
        try:
            if source == "optimized":
                src, fusions = job.optimized(trim)
            else:
                src = job.onnx(trim)
            convert.quantize_dynamic_onnx(src, folder / convert.ONNX_FILE, per_channel=cfg.dynamic_per_channel)
            candidates[source] = folder
        except Exception as exc:  # noqa: BLE001 - one failed candidate is reported, the other may do
            if len(sources) == 1:
                raise ExportError(f"dynamic INT8 quantization of the {source} graph failed: {exc}") from exc
            warnings.append(f"dynamic INT8 from the {source} graph failed ({exc}); used the other graph")
    if not candidates:
        raise ExportError(f"dynamic INT8 quantization failed for both graphs: {warnings}")
    scores = {}
    if len(candidates) > 1:
        for source, folder in candidates.items():
            job.copy_support_files(trim, folder)
            scores[source] = _quick_score(job, trim, folder)
        if cfg.speed_check_blocks:
            draft = {"format": "onnx", "precision": "int8", "model_file": convert.ONNX_FILE,
                     "label_names": job.label_names, "max_length": job.max_length}
            scores["optimized"]["vs_plain"] = speed.side_by_side(
                OrtRuntime, candidates["optimized"], draft, candidates["plain"] / convert.ONNX_FILE, job.threads,
                speed.speed_text(job.evalset.texts, job.evalset.parity_idx), cfg.speed_check_blocks,
                cfg.speed_check_calls)
        chosen = pick_dynamic(scores)
    else:
        chosen = next(iter(candidates))
    shutil.copy2(candidates[chosen] / convert.ONNX_FILE, out / convert.ONNX_FILE)
    return {"model_file": convert.ONNX_FILE, "quantized_from": chosen, "dynamic_candidates": scores or None,
            "per_channel": cfg.dynamic_per_channel,
            "fusions": fusions if chosen == "optimized" else None, "warnings": warnings}


def pick_dynamic(scores: dict[str, dict]) -> str:
    """The more accurate candidate on the parity sample; at equal agreement the fused graph unless
    the plain one is measurably faster: side by side (``vs_plain``, the fused graph's speed-up
    over the plain one) the whole 95% interval lies below 1. Without a side-by-side timing, unless
    the plain one was clearly (>10%) faster on the parity sample."""
    opt, plain = scores.get("optimized"), scores.get("plain")
    if opt is None or plain is None:
        return "optimized" if plain is None else "plain"
    if opt["agreement_pct"] != plain["agreement_pct"]:
        return "optimized" if opt["agreement_pct"] > plain["agreement_pct"] else "plain"
    if opt.get("vs_plain"):
        return "plain" if opt["vs_plain"]["high"] < 1.0 else "optimized"
    return "plain" if plain["seconds"] < 0.9 * opt["seconds"] else "optimized"


def _quick_score(job: ModelJob, trim: bool, folder: Path) -> dict:
    """Agreement with PyTorch and best-of-two time on the parity sample (to pick a candidate)."""
    rt = OrtRuntime.open(folder, {"format": "onnx", "precision": "int8", "model_file": convert.ONNX_FILE,
                                  "label_names": job.label_names, "max_length": job.max_length},
                         threads=job.threads)
    texts = [job.evalset.texts[i] for i in job.evalset.parity_idx]
    ref = job.reference(trim)[job.evalset.parity_idx]
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        logits = rt.logits(texts, job.cfg.batch_size)
        times.append(time.perf_counter() - t0)
    result = checks.parity(logits, ref, np.arange(len(texts)))
    return {"agreement_pct": result["agreement_pct"], "max_abs_diff": result["max_abs_diff"],
            "seconds": round(min(times), 4)}


def build_onnx_static(job: ModelJob, trim: bool, out: Path) -> dict:
    kept_fp32 = convert.quantize_static_onnx(job.onnx(trim), out / convert.ONNX_FILE, job.calibration(trim),
                                             per_channel=job.cfg.static_per_channel,
                                             skip_gelu_matmuls=job.cfg.static_skip_gelu_matmuls)
    return {"model_file": convert.ONNX_FILE, "per_channel": job.cfg.static_per_channel, "calibration_method": "minmax",
            "quant_format": "qdq", "activation_type": convert.STATIC_ACTIVATION_TYPE,
            "weight_type": convert.STATIC_WEIGHT_TYPE, "fp32_nodes": kept_fp32}


def build_openvino(fp16: bool):
    def build(job: ModelJob, trim: bool, out: Path) -> dict:
        convert.to_openvino(job.onnx(trim), out / convert.OPENVINO_FILE, fp16=fp16)
        return {"model_file": convert.OPENVINO_FILE, "weights": "fp16-compressed" if fp16 else "fp32"}
    return build


def build_openvino_int8(job: ModelJob, trim: bool, out: Path) -> dict:
    convert.quantize_nncf(job.onnx(trim), out / convert.OPENVINO_FILE, job.calibration(trim))
    return {"model_file": convert.OPENVINO_FILE}


BUILDERS = {
    "onnx-fp32": build_onnx_fp32,
    "onnx-fp32-opt": build_onnx_opt,
    "onnx-int8-dynamic": build_onnx_dynamic,
    "onnx-int8-static": build_onnx_static,
    "openvino-fp32": build_openvino(fp16=False),
    "openvino-fp16": build_openvino(fp16=True),
    "openvino-int8": build_openvino_int8,
}
RUNTIME_FOR_FORMAT = {"onnx": OrtRuntime, "openvino": OpenVinoRuntime}


def static_onnx(model, path: Path) -> Path:
    """A static student's graph: token-id gather + masked mean + L2 norm + head, from its weights."""
    from edgedistill import graphs

    cfg = model.config
    head = [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in model.linear_layers()]
    graph = graphs.static_classifier_graph(model.embeddings.weight.detach().numpy(), head, cfg.normalize,
                                           cfg.unk_token_id)
    return graphs.save(graph, path)


def build_static_int8(job: ModelJob, trim: bool, out: Path) -> dict:
    """Dynamic INT8 of a static student: the table (Gather) and the head's MatMuls in int8, a quarter of
    the FP32 size; the lookup itself is no faster, so the bench says whether it pays at run time."""
    from edgedistill import graphs

    graphs.quantize_int8(job.onnx(trim), out / convert.ONNX_FILE)
    return {"model_file": convert.ONNX_FILE, "quantized_from": "plain", "quantized_ops": ["Gather", "MatMul"]}


STATIC_BUILDERS = {"onnx-fp32": build_onnx_fp32, "onnx-int8-dynamic": build_static_int8}


# --- one artifact ---------------------------------------------------------------------------

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
    if manifest.get("schema_version") != SCHEMA_VERSION or not manifest.get("model_file") or not manifest.get("files"):
        return None, (f"manifest.json has schema {manifest.get('schema_version')!r}, not {SCHEMA_VERSION}, "
                      "or no file list")
    for name, f in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            return None, f"{name} is missing"
        if path.stat().st_size != f["size_bytes"]:
            return None, f"{name} is {path.stat().st_size} bytes, its manifest says {f['size_bytes']}"
        if verify_sha256 and f.get("sha256") and sha256(path) != f["sha256"]:
            return None, f"{name} does not match the sha256 in its manifest (changed since it was exported)"
    return manifest, None


def build_artifact(job: ModelJob, variant: str, final: Path, log) -> dict:
    spec = variant_spec(variant)
    trim = spec["trimmed_vocab"]
    started = time.perf_counter()
    with atomic_dir(final) as out:
        extra = (STATIC_BUILDERS if job.static else BUILDERS)[spec["base"]](job, trim, out)
        job.copy_support_files(trim, out)
        model_file = extra.pop("model_file")
        files = {p.name: {"size_bytes": p.stat().st_size, "sha256": sha256(p)}
                 for p in convert.model_files(out, model_file)}
        size = sum(f["size_bytes"] for f in files.values())
        draft = {"schema_version": SCHEMA_VERSION, "model": job.method, "variant": variant,
                 "format": spec["format"], "precision": spec["precision"], "quantization": spec["quantization"],
                 "trimmed_vocab": trim, "model_file": model_file, "label_names": job.label_names,
                 "max_length": job.max_length}
        result = check_artifact(job, spec, out, draft)
        result.update(check_speed(job, spec, out, draft))
        warnings = extra.pop("warnings", None) or []
        for w in warnings:
            log(f"WARNING {job.method}/{variant}: {w}")
        calibrated = spec["quantization"] in ("static", "nncf")
        fp32_size = job.fp32_onnx_size()
        manifest = {
            **draft,
            "calibration_size": len(job.calibration(trim)) if calibrated else None,
            "calibration_split": "train" if calibrated else None,
            "opset": convert.onnx_opset(job.onnx(trim)),
            "size_bytes": size,
            "sha256": files[model_file]["sha256"],
            "files": files,
            "size_ratio_vs_fp32": round(size / fp32_size, 4) if fp32_size else None,
            "fp32_onnx_size_bytes": fp32_size,
            "params": job.params(trim),
            "source_checkpoint": str(job.folder),
            "tool_versions": tool_versions(),
            **result,
            "fusions": extra.pop("fusions", None),
            "trim": job.trimmed()[1] if trim else None,
            **extra,
            "warnings": warnings,
            "export_config": to_dict(job.cfg),
            "build_s": round(time.perf_counter() - started, 2),
            "provenance": provenance(),
        }
        atomic_write_json(out / MANIFEST, manifest)   # last: its presence marks the folder complete
        (out / MANIFEST).chmod(0o644)                 # temp files are private; a deployable folder is not
        out.chmod(0o755)
    return manifest


def check_speed(job: ModelJob, spec: dict, folder: Path, draft: dict) -> dict:
    """What ONNX Runtime runs (fused and integer kernels, per artifact) and, for INT8, the
    side-by-side speed against the FP32 graph it came from (export/speed.py)."""
    out = {}
    if spec["format"] == "onnx":
        out["runtime_fusions"] = convert.runtime_fusions(folder / draft["model_file"])
    if spec["precision"] == "int8" and job.cfg.speed_check_blocks:
        out["speed_vs_fp32"] = speed.int8_vs_fp32(
            RUNTIME_FOR_FORMAT[spec["format"]], folder, draft, job.onnx(spec["trimmed_vocab"]), job.threads,
            speed.speed_text(job.evalset.texts, job.evalset.parity_idx), job.cfg.speed_check_blocks,
            job.cfg.speed_check_calls)
    return out


def check_artifact(job: ModelJob, spec: dict, folder: Path, draft: dict) -> dict:
    """Parity with PyTorch on the parity sample and macro-F1 on the eval texts; FP32 must match."""
    trim, ev, cfg = spec["trimmed_vocab"], job.evalset, job.cfg
    rt = RUNTIME_FOR_FORMAT[spec["format"]].open(folder, draft, threads=job.threads)
    try:
        logits = rt.logits(ev.texts, cfg.batch_size)
        runtime_info = {k: v for k, v in rt.describe().items()
                        if k in ("runtime", "providers", "inference_precision", "threads")}
    finally:
        del rt
        gc.collect()
    reference = job.reference(trim)
    result = checks.parity(logits, reference, ev.parity_idx)
    ref_name = "pytorch-fp32 (trimmed vocabulary)" if trim else "pytorch-fp32"
    result["reference"] = ref_name
    if spec["precision"] == "fp32":
        checks.require_fp32_parity(f"{job.method}/{spec['variant']}", result, cfg.fp32_tolerance, ref_name)
    f1 = checks.macro_f1(logits, ev.labels, job.label_names)
    f1_source = job.source_f1()
    out = {"parity": result, "check_runtime": runtime_info, "macro_f1": f1, "macro_f1_source": f1_source,
           "macro_f1_delta": f1 - f1_source, "eval_samples": len(ev.texts), "eval_split": "test",
           "flagged": checks.is_flagged(f1, f1_source, cfg.f1_guard_points)}
    if trim:
        out["agreement_vs_source_pct"] = checks.parity(logits, job.reference(False), ev.parity_idx)["agreement_pct"]
    return out


# --- the whole run --------------------------------------------------------------------------

def export_run(run_dir: str | Path, cfg: ExportConfig, log=print, recipe: Recipe | None = None) -> list[dict]:
    """Export every selected model x variant of a run; return the summary rows of that selection.

    ``recipe`` (default: the run's stored recipe.yaml) gives the data the checks evaluate on.
    """
    from tqdm.auto import tqdm

    from distill.data import load_dataset

    run_dir = Path(run_dir)
    recipe = recipe or layout.load_run_recipe(run_dir)
    results = layout.run_results_dir(recipe, run_dir)
    models = discover_models(run_dir, cfg.models)
    variants = cfg.selected_variants()
    for v in variants:
        variant_spec(v)
    log(f"export config (resolved) for {run_dir}:\n" + dump(cfg).rstrip())
    log(f"models: {', '.join(models)}; variants: {', '.join(variants)}")
    data = load_dataset(recipe.data)
    evalset = checks.make_eval_set(data.test.texts, data.test.labels, cfg.parity_samples, cfg.eval_samples,
                                   recipe.data.seed)
    threads = cfg.threads or os.cpu_count() or 1
    rows: list[dict] = []
    remove_stale_temporaries(run_dir)
    workspace = make_workspace(run_dir, "export")
    try:
        with tqdm(total=len(models) * len(variants), desc="export", unit="artifact", dynamic_ncols=True) as bar:
            for method in models:
                job = ModelJob(run_dir, method, recipe, data, evalset, cfg, workspace, threads)
                for variant in variants:
                    bar.set_postfix_str(f"{method}/{variant}")
                    if job.static and variant not in STATIC_BUILDERS:
                        bar.write(f"{method}/{variant}: not built (a static student exports as "
                                  f"{' and '.join(STATIC_BUILDERS)} only)")
                        bar.update(1)
                        continue
                    final = layout.artifact_dir(run_dir, method, variant)
                    manifest, problem = (None, None) if cfg.force else inspect_artifact(final, verify_sha256=True)
                    if manifest is not None:
                        bar.write(f"{method}/{variant}: kept (files match their sha256 in manifest.json; "
                                  "--force rebuilds)")
                    else:
                        if problem and final.exists():
                            bar.write(f"{method}/{variant}: {problem}; exporting again")
                        manifest = build_artifact(job, variant, final, bar.write)
                    rows.append(summary_row(manifest, final))
                    bar.update(1)
                del job
                gc.collect()
                shutil.rmtree(workspace / method, ignore_errors=True)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    all_rows = collect_rows(run_dir)
    write_results(recipe, run_dir, cfg, all_rows, results)
    log(format_table(rows))
    slower = [r["artifact"] for r in rows if (r.get("speed_vs_fp32") or {}).get("slower")]
    if slower:
        log(f"SLOWER than their FP32 source (side by side, export/speed.py): {', '.join(slower)}")
    flagged = [r["artifact"] for r in rows if r["flagged"]]
    if flagged:
        log(f"FLAGGED (macro-F1 more than {cfg.f1_guard_points:g} point(s) below the FP32 source): "
            f"{', '.join(flagged)}")
    log(f"wrote {results / 'export.json'} and export.md")
    return rows


def collect_rows(run_dir: Path) -> list[dict]:
    """Rows for every finished artifact of the run (not just this invocation's selection)."""
    from export.config import KNOWN_VARIANTS

    rows = []
    for method in METHODS:
        for variant in KNOWN_VARIANTS:
            folder = layout.artifact_dir(run_dir, method, variant)
            manifest = valid_manifest(folder)
            if manifest:
                rows.append(summary_row(manifest, folder))
    return rows


__all__ = ["export_run", "discover_models", "valid_manifest", "inspect_artifact", "build_artifact", "BUILDERS"]
