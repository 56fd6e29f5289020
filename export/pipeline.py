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
import itertools
import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edgedistill import layout
from edgedistill.configbase import dump, to_dict
from edgedistill.integrity import file_records
from edgedistill.io import atomic_dir, atomic_write_json, remove_stale_temporaries
from edgedistill.io import workspace as make_workspace
from edgedistill.metadata import CheckpointMeta
from edgedistill.methods import ORDER as METHODS
from edgedistill.provenance import provenance
from edgedistill.recipe import Recipe, load_run_recipe
from edgedistill.runtime import (
    MANIFEST,
    ArtifactError,
    OpenVinoRuntime,
    OrtRuntime,
    TextEncoder,
    TorchRuntime,
    read_manifest,
)
from export import blocks, checks, convert, sensitivity, speed, vocab
from export.config import REPAIRED_SUFFIX, TRIM_SUFFIX, ExportConfig, variant_spec
from export.errors import ExportError
from export.report import format_table, summary_row, write_results

SCHEMA_VERSION = 1
TOOLS = ("torch", "transformers", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "tokenizers")
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
                 cfg: ExportConfig, workspace: Path, threads: int, valset: checks.EvalSet | None = None):
        self.method, self.recipe, self.data, self.evalset, self.cfg = method, recipe, data, evalset, cfg
        self.valset = valset          # capped VALIDATION texts: the INT8 ranking and repair (never test)
        self.folder = layout.model_dir(run_dir, method)
        self.checkpoint_meta = CheckpointMeta.read(self.folder)
        self.meta = self.checkpoint_meta.raw
        damaged = layout.checkpoint_problems(self.folder)
        if damaged:
            raise ExportError(f"checkpoint {self.folder} differs from the sha256 its {layout.CHECKPOINT_MARKER} "
                              f"records, nothing of it was exported: {'; '.join(damaged)}. Restore the folder from "
                              f"a copy, or retrain it (edgedistill train RECIPE --methods {method} --force).")
        self.label_names = self.checkpoint_meta.label_names
        if self.label_names != list(data.label_names):
            raise ExportError(f"{self.folder} was trained with labels {self.label_names} but the run's data has "
                              f"{data.label_names}; the recipe.yaml does not match this checkpoint")
        self.max_length = self.checkpoint_meta.max_length
        self.work = workspace / method
        self.work.mkdir(parents=True, exist_ok=True)
        self.threads = threads
        self._cache: dict = {}
        # A static student (distill/static.py) is a token table and a head: its ONNX graph is written
        # from its weights (edgedistill/graphs.py), and only the variants in STATIC_BUILDERS apply.
        from edgedistill.static_model import is_static_checkpoint

        self.static = is_static_checkpoint(self.folder)

    def _cached(self, key, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def checkpoint(self, trim: bool) -> Path:
        return self.trimmed()[0] if trim else self.folder

    def trimmed(self) -> tuple[Path, dict]:
        def build():
            from edgedistill.checkpoint import load_checkpoint

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
        from edgedistill.checkpoint import load_checkpoint

        return self._cached(("model", trim), lambda: load_checkpoint(self.checkpoint(trim))[0])

    def params(self, trim: bool) -> int:
        return self._cached(("params", trim), lambda: int(sum(p.numel() for p in self.torch_model(trim).parameters())))

    def reference(self, trim: bool) -> np.ndarray:
        """PyTorch FP32 logits on the eval texts (trim: the trimmed checkpoint, same tokenization)."""
        def build():
            rt = TorchRuntime.load(self.checkpoint(trim), threads=self.threads)
            return rt.logits(self.evalset.texts, self.cfg.batch_size)
        return self._cached(("reference", trim), build)

    def val_reference(self, trim: bool) -> np.ndarray:
        """PyTorch FP32 logits on the validation texts of the INT8 ranking."""
        def build():
            rt = TorchRuntime.load(self.checkpoint(trim), threads=self.threads)
            return rt.logits(self.valset.texts, self.cfg.batch_size)
        return self._cached(("val_reference", trim), build)

    def source_f1(self) -> float:
        return self._cached("source_f1", lambda: checks.macro_f1(self.reference(False), self.evalset.labels,
                                                                 self.label_names))

    def onnx(self, trim: bool) -> Path:
        def build():
            out = self.work / ("onnx-trim" if trim else "onnx")
            if self.static:
                return static_onnx(self.torch_model(trim), out / convert.ONNX_FILE)
            return convert.export_onnx(self.torch_model(trim), out, self.cfg.opset, self.cfg.exporter)
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


def build_onnx_dynamic(job: ModelJob, trim: bool, out: Path, exclude_blocks=(), source: str | None = None) -> dict:
    """Dynamic INT8 from the fused graph or the plain one; 'auto' builds both and keeps the better.

    ``source`` forces one graph and ``exclude_blocks`` keeps blocks in FP32 (the sensitivity
    ranking and a repaired artifact quantize the graph the plain artifact was made from)."""
    if source is not None:
        src = job.optimized(trim)[0] if source == "optimized" else job.onnx(trim)
        nodes = convert.quantize_dynamic_onnx(src, out / convert.ONNX_FILE, per_channel=job.cfg.dynamic_per_channel,
                                              exclude_blocks=exclude_blocks)
        return {"model_file": convert.ONNX_FILE, "quantized_from": source, "per_channel": job.cfg.dynamic_per_channel,
                "fusions": job.optimized(trim)[1] if source == "optimized" else None, "fp32_nodes": nodes}
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


def build_onnx_static(job: ModelJob, trim: bool, out: Path, exclude_blocks=()) -> dict:
    kept_fp32 = convert.quantize_static_onnx(job.onnx(trim), out / convert.ONNX_FILE, job.calibration(trim),
                                             per_channel=job.cfg.static_per_channel,
                                             skip_gelu_matmuls=job.cfg.static_skip_gelu_matmuls,
                                             exclude_blocks=exclude_blocks)
    return {"model_file": convert.ONNX_FILE, "per_channel": job.cfg.static_per_channel, "calibration_method": "minmax",
            "quant_format": "qdq", "activation_type": convert.STATIC_ACTIVATION_TYPE,
            "weight_type": convert.STATIC_WEIGHT_TYPE, "fp32_nodes": kept_fp32}


def build_openvino(fp16: bool):
    def build(job: ModelJob, trim: bool, out: Path) -> dict:
        convert.to_openvino(job.onnx(trim), out / convert.OPENVINO_FILE, fp16=fp16)
        return {"model_file": convert.OPENVINO_FILE, "weights": "fp16-compressed" if fp16 else "fp32"}
    return build


def build_openvino_int8(job: ModelJob, trim: bool, out: Path, exclude_blocks=()) -> dict:
    nodes = convert.quantize_nncf(job.onnx(trim), out / convert.OPENVINO_FILE, job.calibration(trim),
                                  exclude_blocks=exclude_blocks)
    return {"model_file": convert.OPENVINO_FILE, **({"fp32_nodes": nodes} if nodes else {})}


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
    problems = layout.artifact_problems(folder, hashes=verify_sha256)
    return (None, "; ".join(problems)) if problems else (manifest, None)


def build_artifact(job: ModelJob, variant: str, final: Path, log, repair: dict | None = None) -> dict:
    """One artifact folder, checked; ``repair`` (the plain INT8 artifact's, for a ``-repaired``
    variant) names the blocks kept in FP32."""
    spec = variant_spec(variant)
    trim = spec["trimmed_vocab"]
    started = time.perf_counter()
    options = {}
    if spec["repaired"]:
        options = {"exclude_blocks": list(repair["excluded"]), **quantize_options(spec, repair)}
    with atomic_dir(final) as out:
        if job.static:          # the static student's own graphs; no blocks to keep in FP32
            extra = STATIC_BUILDERS[spec["base"]](job, trim, out)
        else:
            extra = BUILDERS[spec["base"]](job, trim, out, **options)
        job.copy_support_files(trim, out)
        model_file = extra.pop("model_file")
        files = file_records(out, [p.name for p in convert.model_files(out, model_file)])
        # The tokenizer and config a runtime reads beside the model are hashed too (checked by
        # a resumed export, the bundle and the bench before they trust the folder).
        support = file_records(out, [*TOKENIZER_FILES, "config.json"])
        size = sum(f["size_bytes"] for f in files.values())
        draft = {"schema_version": SCHEMA_VERSION, "model": job.method, "variant": variant,
                 "format": spec["format"], "precision": spec["precision"], "quantization": spec["quantization"],
                 "trimmed_vocab": trim, "model_file": model_file, "label_names": job.label_names,
                 "max_length": job.max_length}
        result = check_artifact(job, spec, out, draft)
        result.update(check_speed(job, spec, out, draft))
        if spec["repaired"]:
            result.update(repaired_record(job, spec, out, draft, repair))
        elif spec["precision"] == "int8" and job.valset is not None and not job.static:
            result.update(check_sensitivity(job, spec, out, draft, extra))
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
            "support_files": support,
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


# --- INT8 sensitivity and repair (export/sensitivity.py) --------------------------------------

def quantize_options(spec: dict, built: dict) -> dict:
    """What quantizing a variant again must hold fixed: the graph a dynamic artifact came from."""
    return {"source": built["quantized_from"]} if spec["base"] == "onnx-int8-dynamic" else {}


def fp32_answer(spec: dict) -> str:
    """The FP32 variant that answers when no repair of an INT8 one meets the budget."""
    return f"{spec['format']}-fp32" + (TRIM_SUFFIX if spec["trimmed_vocab"] else "")


def candidate_blocks(job: ModelJob, spec: dict, options: dict, kept_fp32) -> tuple[list[str], list[str]]:
    """(blocks the INT8 variant quantizes, blocks it already keeps in FP32), in forward order."""
    trim = spec["trimmed_vocab"]
    if spec["format"] == "openvino":
        import openvino as ov

        mapping = blocks.openvino_blocks(ov.convert_model(str(job.onnx(trim))))
    else:
        src = job.optimized(trim)[0] if options.get("source") == "optimized" else job.onnx(trim)
        mapping = blocks.onnx_blocks(src)
    kept = set(kept_fp32 or ())
    names = blocks.forward_order(mapping)
    already = [b for b in names if set(mapping[b]) <= kept]
    return [b for b in names if b not in already], already


def check_sensitivity(job: ModelJob, spec: dict, folder: Path, draft: dict, built: dict) -> dict:
    """The block ranking of a plain INT8 artifact and the repair its budget asks for, both on
    the capped VALIDATION texts against the PyTorch FP32 checkpoint it came from."""
    cfg, trim, valset = job.cfg, spec["trimmed_vocab"], job.valset
    options = quantize_options(spec, built)
    reference = job.val_reference(trim)
    runtime = RUNTIME_FOR_FORMAT[spec["format"]]
    scratch = job.work / "sensitivity" / spec["variant"]
    tries = itertools.count()

    def evaluate(model: Path) -> dict:
        rt = runtime.open(folder, {**draft, "model_file": str(model.resolve())}, threads=job.threads)
        try:
            logits = rt.logits(valset.texts, cfg.batch_size)
        finally:
            del rt
            gc.collect()
        return sensitivity.score_logits(logits, reference, valset.labels, job.label_names)

    def score(excluded: list[str]) -> dict:
        attempt = scratch / f"try-{next(tries)}"
        attempt.mkdir(parents=True)
        try:
            BUILDERS[spec["base"]](job, trim, attempt, exclude_blocks=excluded, **options)
            return evaluate(attempt / draft["model_file"])
        finally:
            shutil.rmtree(attempt, ignore_errors=True)

    started = time.perf_counter()
    source_f1 = checks.macro_f1(reference, valset.labels, job.label_names)
    plain = evaluate(folder / draft["model_file"])
    candidates, already = candidate_blocks(job, spec, options, built.get("fp32_nodes"))
    if cfg.sensitivity_scope == "over_budget" and sensitivity.within_budget(plain, source_f1, cfg.max_f1_drop):
        candidates = []          # nothing to repair: its validation scores are recorded, its blocks not tried
    ranking = sensitivity.rank_blocks(candidates, score, source_f1, plain)
    repair = sensitivity.greedy_repair(ranking, score, source_f1, plain, cfg.max_f1_drop)
    quantizations = next(tries)
    reference_name = "pytorch-fp32 (trimmed vocabulary)" if trim else "pytorch-fp32"
    return {
        "sensitivity": {"split": "validation", "n": len(valset.texts), "samples_cap": cfg.sensitivity_samples,
                        "scope": cfg.sensitivity_scope,
                        "validation_size": valset.test_size, "reference": reference_name,
                        "source_macro_f1": round(source_f1, 6), "plain": repair["plain"], "blocks": ranking,
                        "already_fp32": already, "quantizations": quantizations,
                        "seconds": round(time.perf_counter() - started, 2)},
        "repair": {**repair, **({"quantized_from": options["source"]} if options else {}),
                   "repaired_variant": spec["variant"] + REPAIRED_SUFFIX if repair["outcome"] == "repaired" else None,
                   "fp32_answer": fp32_answer(spec) if repair["outcome"] == "fp32" else None},
    }


def repaired_record(job: ModelJob, spec: dict, folder: Path, draft: dict, repair: dict) -> dict:
    """What a ``-repaired`` artifact keeps in FP32, its validation scores from the repair search and
    its speed side by side with the plain INT8 artifact (its speed against FP32 is ``speed_vs_fp32``)."""
    plain_variant = spec["variant"].removesuffix(REPAIRED_SUFFIX)
    plain_folder = layout.artifact_dir(job.folder.parent.parent, job.method, plain_variant)
    out = {"repair": {"of": f"{job.method}/{plain_variant}", "excluded": list(repair["excluded"]),
                      "max_f1_drop": repair["max_f1_drop"], "split": "validation",
                      "source_macro_f1": repair["source_macro_f1"], "plain": repair["plain"],
                      "validation": repair["validation"], "steps": len(repair["steps"])}}
    if job.cfg.speed_check_blocks:
        out["speed_vs_int8"] = speed.side_by_side(
            RUNTIME_FOR_FORMAT[spec["format"]], folder, draft, plain_folder / draft["model_file"], job.threads,
            speed.speed_text(job.evalset.texts, job.evalset.parity_idx), job.cfg.speed_check_blocks,
            job.cfg.speed_check_calls)
    return out


def ranked_with(manifest: dict, cfg: ExportConfig) -> bool:
    """Whether a kept plain INT8 artifact was ranked and repaired with the current settings."""
    repair = manifest.get("repair") or {}
    if not cfg.sensitivity_samples:
        return True
    sens = manifest.get("sensitivity") or {}
    return (repair.get("max_f1_drop") == cfg.max_f1_drop and sens.get("samples_cap") == cfg.sensitivity_samples
            and sens.get("scope") == cfg.sensitivity_scope)


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
    recipe = recipe or load_run_recipe(run_dir)
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
    valset = (checks.make_eval_set(data.validation.texts, data.validation.labels, 0, cfg.sensitivity_samples,
                                   recipe.data.seed) if cfg.sensitivity_samples else None)
    threads = cfg.threads or os.cpu_count() or 1
    rows: list[dict] = []
    repairs: list[str] = []
    remove_stale_temporaries(run_dir)
    workspace = make_workspace(run_dir, "export")
    try:
        with tqdm(total=len(models) * len(variants), desc="export", unit="artifact", dynamic_ncols=True) as bar:
            for method in models:
                job = ModelJob(run_dir, method, recipe, data, evalset, cfg, workspace, threads, valset)
                for variant in variants:
                    bar.set_postfix_str(f"{method}/{variant}")
                    if job.static and variant not in STATIC_BUILDERS:
                        bar.write(f"{method}/{variant}: not built (a static student exports as "
                                  f"{' and '.join(STATIC_BUILDERS)} only)")
                        bar.update(1)
                        continue
                    final = layout.artifact_dir(run_dir, method, variant)
                    manifest, problem = (None, None) if cfg.force else inspect_artifact(final, verify_sha256=True)
                    if manifest is not None and manifest["precision"] == "int8" and not ranked_with(manifest, cfg):
                        manifest, problem = None, ("ranked with other sensitivity_samples / sensitivity_scope / "
                                                   "max_f1_drop than the config's")
                    if manifest is not None:
                        bar.write(f"{method}/{variant}: kept (files match their sha256 in manifest.json; "
                                  "--force rebuilds)")
                    else:
                        if problem and final.exists():
                            bar.write(f"{method}/{variant}: {problem}; exporting again")
                        manifest = build_artifact(job, variant, final, bar.write)
                    rows.append(summary_row(manifest, final))
                    if manifest.get("repair"):
                        rows += repair_sibling(job, manifest, bar)
                        repairs.append(sensitivity.outcome_text(f"{method}/{variant}", manifest["repair"],
                                                                f"{method}/{manifest['repair']['fp32_answer']}"))
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
    if repairs:
        log(f"INT8 budget ({cfg.max_f1_drop:g} pts of validation macro-F1 below the FP32 source, "
            f"{valset.test_size if valset else 0} validation texts, at most {cfg.sensitivity_samples} used):\n  "
            + "\n  ".join(repairs))
    log(f"wrote {results / 'export.json'} and export.md")
    return rows


def repair_sibling(job: ModelJob, manifest: dict, bar) -> list[dict]:
    """Build (or keep) the ``-repaired`` sibling a plain INT8 artifact's repair asks for, or remove
    one left from a run whose budget asked for another; its summary row, if any."""
    repair, variant = manifest["repair"], manifest["variant"]
    final = layout.artifact_dir(job.folder.parent.parent, job.method, variant + REPAIRED_SUFFIX)
    if repair["outcome"] != "repaired":
        if final.exists():
            shutil.rmtree(final)
            bar.write(f"{job.method}/{variant}{REPAIRED_SUFFIX}: removed (the current budget needs no repair of "
                      f"{variant}: {repair['outcome']})")
        return []
    kept = None if job.cfg.force else valid_manifest(final, verify_sha256=True)
    if kept is not None and (kept.get("repair") or {}).get("excluded") == repair["excluded"]:
        bar.write(f"{job.method}/{variant}{REPAIRED_SUFFIX}: kept (same blocks in FP32; --force rebuilds)")
    else:
        kept = build_artifact(job, variant + REPAIRED_SUFFIX, final, bar.write, repair=repair)
    return [summary_row(kept, final)]


def collect_rows(run_dir: Path) -> list[dict]:
    """Rows for every finished artifact of the run (not just this invocation's selection)."""
    from export.config import ARTIFACT_VARIANTS

    rows = []
    for method in METHODS:
        for variant in ARTIFACT_VARIANTS:
            folder = layout.artifact_dir(run_dir, method, variant)
            manifest = valid_manifest(folder)
            if manifest:
                rows.append(summary_row(manifest, folder))
    return rows


__all__ = ["export_run", "discover_models", "valid_manifest", "inspect_artifact", "build_artifact", "BUILDERS"]
