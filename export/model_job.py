"""One model's export job: its checkpoint, the PyTorch references the checks compare with, and the
intermediate graphs (ONNX, optimized, trimmed vocabulary, calibration feeds) its variants share,
each built once on first use.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from edgedistill import layout
from edgedistill.metadata import CheckpointMeta
from edgedistill.recipe import Recipe
from edgedistill.runtime import (
    TextEncoder,
    TorchRuntime,
)
from export import checks, convert, vocab
from export.config import ExportConfig
from export.convert import static_onnx
from export.errors import ExportError
from export.manifest import valid_manifest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


# --- one model: its checkpoint, references and intermediate graphs (built once, lazily) -------

class ModelJob:
    """Everything the variants of one model share, computed on first use and cached."""

    def __init__(self, run_dir: Path, method: str, recipe: Recipe, data, evalset: checks.EvalSet,
                 cfg: ExportConfig, workspace: Path, threads: int, valset: checks.EvalSet | None = None,
                 pool: list[str] | None = None, pool_source: str | None = None):
        self.method, self.recipe, self.data, self.evalset, self.cfg = method, recipe, data, evalset, cfg
        self.valset = valset          # capped VALIDATION texts: the INT8 ranking and repair (never test)
        self.pool = list(pool or [])  # unlabelled in-domain texts: INT8 agreement and KL against FP32 (never test)
        self.pool_source = pool_source
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

    def fp32_logits(self, name: str, trim: bool, texts: list[str]) -> np.ndarray:
        """PyTorch FP32 logits of the checkpoint on ``texts``, computed once per ``name`` (one runtime loaded
        per checkpoint for every text set the checks compare with)."""
        def build():
            rt = self._cached(("torch_runtime", trim),
                              lambda: TorchRuntime.load(self.checkpoint(trim), threads=self.threads))
            return rt.logits(texts, self.cfg.batch_size)
        return self._cached((name, trim), build)

    def reference(self, trim: bool) -> np.ndarray:
        """PyTorch FP32 logits on the eval texts (trim: the trimmed checkpoint, same tokenization)."""
        return self.fp32_logits("reference", trim, self.evalset.texts)

    def val_reference(self, trim: bool) -> np.ndarray:
        """PyTorch FP32 logits on the validation texts of the INT8 ranking."""
        return self.fp32_logits("val_reference", trim, self.valset.texts)

    def pool_reference(self, trim: bool) -> np.ndarray | None:
        """PyTorch FP32 logits on the pool texts of the INT8 evidence (None without a pool)."""
        return self.fp32_logits("pool_reference", trim, self.pool) if self.pool else None

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

    def model2vec_form(self, trim: bool) -> bool:
        """Whether model2vec can serve the static student: it takes the mean of token rows only and normalises
        the whole pooled vector, so a student with hashed bigram rows, stacked members or another pooling ships as
        its ONNX graph alone."""
        if not self.static:
            return False
        model = self.torch_model(trim)
        return model.bigrams is None and model.config.members == 1 and model.pooling == "mean"

    def write_model2vec(self, trim: bool, dst: Path) -> dict:
        """The static student as a model2vec ``StaticModelPipeline`` (its on-disk format: the table in
        model.safetensors, the head in head.safetensors, both described in config.json beside the
        project's keys), so ``StaticModelPipeline.from_pretrained(folder)`` predicts the labels."""
        from safetensors.numpy import save_file

        model = self.torch_model(trim)
        layers = model.linear_layers()
        save_file({"embeddings": np.ascontiguousarray(model.embeddings.weight.detach().numpy(), dtype=np.float32)},
                  str(dst / layout.MODEL2VEC_FILES[0]))
        head = {}
        for i, m in enumerate(layers):
            head[layout.model2vec_head_key(i, "weight")] = np.ascontiguousarray(m.weight.detach().numpy(),
                                                                                dtype=np.float32)
            head[layout.model2vec_head_key(i, "bias")] = np.ascontiguousarray(m.bias.detach().numpy(), dtype=np.float32)
        save_file(head, str(dst / layout.MODEL2VEC_FILES[1]))
        path = dst / layout.CONFIG_FILE
        config = json.loads(path.read_text())
        config.update({"normalize": bool(model.config.normalize), "max_length": int(self.max_length),
                       "embedding_dtype": "float32", "hidden_dim": int(model.config.dims),
                       "head_config": {"n_layers": len(layers), "activation": "softmax",
                                       "classes": list(self.label_names)}})
        path.write_text(json.dumps(config, indent=2) + "\n")
        for name in layout.MODEL2VEC_FILES:      # written in a private temporary folder; a deployable folder is not
            (dst / name).chmod(0o644)
        return {"model2vec": {"files": list(layout.MODEL2VEC_FILES), "head_layers": len(layers),
                              "size_bytes": sum((dst / n).stat().st_size for n in layout.MODEL2VEC_FILES)}}

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
