"""The export stage's config: the recipe's ``export:`` section, typed and validated up front.

    export:
      variants: [onnx-fp32, onnx-fp32-opt, onnx-int8-dynamic, onnx-int8-dynamic-trim, openvino-int8]
      calibration_size: 300      # TRAIN examples for static INT8 / NNCF (never test)
      trim_min_count: auto       # vocabulary trimming: keep pieces seen >= N times in training
      max_f1_drop: 0.5           # INT8 budget: validation macro-F1 points below the FP32 source; over it -> -repaired

Command-line flags of ``edgedistill export`` override these fields.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from edgedistill.configbase import ConfigError, from_dict
from edgedistill.methods import ORDER as METHODS
from export.convert import DEFAULT_EXPORTER, EXPORTERS
from export.errors import ExportError

# name -> (format, precision, quantization); every one also exists as "<name>-trim".
BASE_VARIANTS = {
    "onnx-fp32": ("onnx", "fp32", "none"),
    "onnx-fp32-opt": ("onnx", "fp32", "none"),
    "onnx-int8-dynamic": ("onnx", "int8", "dynamic"),
    "onnx-int8-static": ("onnx", "int8", "static"),
    "openvino-fp32": ("openvino", "fp32", "none"),
    "openvino-fp16": ("openvino", "fp16", "none"),
    "openvino-int8": ("openvino", "int8", "nncf"),
}
TRIM_SUFFIX = "-trim"
KNOWN_VARIANTS = tuple(BASE_VARIANTS) + tuple(v + TRIM_SUFFIX for v in BASE_VARIANTS)
# An INT8 artifact over the accuracy budget gets a sibling with its most sensitive blocks in FP32
# (export/sensitivity.py). Not selectable in ``variants``: the export makes one when it is needed.
REPAIRED_SUFFIX = "-repaired"
INT8_VARIANTS = tuple(v for v in KNOWN_VARIANTS if BASE_VARIANTS[v.removesuffix(TRIM_SUFFIX)][1] == "int8")
ARTIFACT_VARIANTS = KNOWN_VARIANTS + tuple(v + REPAIRED_SUFFIX for v in INT8_VARIANTS)
# Trimming pays off where the embedding table dominates what is left: the INT8 artifacts.
DEFAULT_VARIANTS = tuple(BASE_VARIANTS) + ("onnx-int8-dynamic-trim", "openvino-int8-trim")


def split_variant(name: str) -> tuple[str, bool]:
    """``onnx-int8-dynamic-trim`` -> (``onnx-int8-dynamic``, True)."""
    trimmed = name.endswith(TRIM_SUFFIX)
    return (name[: -len(TRIM_SUFFIX)] if trimmed else name), trimmed


def variant_spec(name: str) -> dict:
    repaired = name.endswith(REPAIRED_SUFFIX) and name.removesuffix(REPAIRED_SUFFIX) in INT8_VARIANTS
    base, trimmed = split_variant(name.removesuffix(REPAIRED_SUFFIX) if repaired else name)
    if base not in BASE_VARIANTS:
        raise ExportError(f"unknown variant {name!r}; known variants: {', '.join(KNOWN_VARIANTS)}")
    fmt, precision, quantization = BASE_VARIANTS[base]
    return {"variant": name, "base": base, "trimmed_vocab": trimmed, "repaired": repaired, "format": fmt,
            "precision": precision, "quantization": quantization}


@dataclass
class ExportConfig:
    models: list[str] | None = None                # None -> every finished model under runs/<run>/models
    variants: list[str] = field(default_factory=lambda: list(DEFAULT_VARIANTS))
    exporter: str = DEFAULT_EXPORTER               # torch.onnx.export path: torchscript or dynamo (docs/exporter.md)
    opset: int | None = None                       # None -> the exporter's default (export/convert.py)
    calibration_size: int = 300                    # TRAIN examples for static INT8 and NNCF
    parity_samples: int = 256                      # TEST examples compared logit by logit with PyTorch
    eval_samples: int | None = None                # macro-F1 on the full test split unless capped
    fp32_tolerance: float = 1e-3                   # max |logit diff| an FP32 artifact may show
    f1_guard_points: float = 1.0                   # flag a low-precision artifact losing more macro-F1
    dynamic_source: Literal["auto", "optimized", "plain"] = "auto"   # graph quantized dynamically
    dynamic_per_channel: bool = True               # per-output-channel weight scales (dynamic INT8)
    static_per_channel: bool = True                # per-output-channel weight scales (static QDQ)
    static_skip_gelu_matmuls: bool = True          # keep FFN output projections FP32 (static QDQ)
    trim_vocab: bool = True                        # False drops every -trim variant
    trim_min_count: int | str = "auto"             # keep pieces seen this often in training; auto: see vocab.py
    trim_target_ratio: float = 0.15                # auto: smallest count whose INT8 size fits this x FP32
    trim_keep_chars: Literal["latin", "seen"] = "latin"   # single-char pieces kept so any word tokenizes
    speed_check_blocks: int = 20                   # INT8 vs its FP32 source, ABBA blocks; 0 turns the check off
    speed_check_calls: int = 10                    # calls per block and side (20 x 10: 200 calls each)
    max_f1_drop: float = 0.5                       # INT8 budget: validation macro-F1 points below the FP32 source
    sensitivity_samples: int = 2000                # VALIDATION texts for the INT8 ranking and repair; 0: neither
    # Unlabelled in-domain texts (the run's teacher-labelled pool; its training texts without one) on which each
    # INT8 artifact's agreement and KL against FP32 are measured: thousands of them see a 0.5-point change that
    # a few hundred labelled texts cannot (export/sensitivity.py). 0: validation alone.
    pool_samples: int = 2000
    # Only the artifacts a repair needs ranked, by default: ranking every INT8 artifact costs a quantization
    # per block (NNCF and static INT8 calibrate each time), tens of minutes for a 6-model run on 2 cores.
    sensitivity_scope: Literal["all", "over_budget"] = "over_budget"
    threads: int | None = None                     # threads for checks; None -> all cores
    batch_size: int = 64                           # batch size of the parity / macro-F1 checks
    force: bool = False                            # rebuild artifacts that already have a manifest

    def validate(self):
        errs = []
        unknown = [v for v in self.variants if v not in KNOWN_VARIANTS]
        if unknown:
            errs.append(f"variants: unknown {unknown} (known: {', '.join(KNOWN_VARIANTS)})")
        if not self.variants:
            errs.append("variants: empty; name at least one (e.g. onnx-fp32)")
        bad_models = [m for m in self.models or [] if m not in METHODS]
        if bad_models:
            errs.append(f"models: unknown {bad_models} (known: {', '.join(METHODS)})")
        if self.trim_min_count != "auto" and (isinstance(self.trim_min_count, str) or self.trim_min_count < 1):
            errs.append(f"trim_min_count: {self.trim_min_count!r} must be a count >= 1 or auto")
        if not 0 < self.trim_target_ratio <= 1:
            errs.append(f"trim_target_ratio: {self.trim_target_ratio} must lie in (0, 1]")
        for k in ("calibration_size", "parity_samples", "batch_size"):
            if getattr(self, k) < 1:
                errs.append(f"{k}: {getattr(self, k)} must be >= 1")
        if self.speed_check_blocks != 0 and self.speed_check_blocks < 2:
            errs.append(f"speed_check_blocks: {self.speed_check_blocks} must be 0 (no speed check) or >= 2")
        if self.speed_check_calls < 1:
            errs.append(f"speed_check_calls: {self.speed_check_calls} must be >= 1")
        if self.eval_samples is not None and self.eval_samples < 1:
            errs.append(f"eval_samples: {self.eval_samples} must be a positive count or null")
        if self.threads is not None and self.threads < 1:
            errs.append(f"threads: {self.threads} must be >= 1 or null")
        if self.exporter not in EXPORTERS:
            errs.append(f"exporter: {self.exporter!r} is not one of {', '.join(EXPORTERS)}")
        if self.opset is not None and not 11 <= self.opset <= 23:
            errs.append(f"opset: {self.opset} is outside 11..23")
        if not math.isfinite(self.max_f1_drop) or self.max_f1_drop < 0:
            what = "is negative" if self.max_f1_drop < 0 else "is not a finite number"
            errs.append(f"max_f1_drop: {self.max_f1_drop} {what}; it is the most validation macro-F1 (points) an "
                        "INT8 artifact may lose against its FP32 source, a finite number >= 0, e.g. 0.5 (0: no loss "
                        "allowed)")
        if self.pool_samples < 0:
            errs.append(f"pool_samples: {self.pool_samples} must be a count of unlabelled texts >= 1, or 0 to judge "
                        "INT8 artifacts on validation alone")
        if self.sensitivity_samples < 0:
            errs.append(f"sensitivity_samples: {self.sensitivity_samples} must be a count of validation texts >= 1, "
                        "or 0 to skip the INT8 sensitivity ranking and repair")
        if not math.isfinite(self.fp32_tolerance) or self.fp32_tolerance <= 0:
            errs.append(f"fp32_tolerance: {self.fp32_tolerance} must be > 0")
        return errs

    def selected_variants(self) -> list[str]:
        """The variants to build, in a fixed order (plain before -trim), duplicates removed."""
        order = {v: i for i, v in enumerate(KNOWN_VARIANTS)}
        chosen = sorted(set(self.variants), key=order.__getitem__)
        return [v for v in chosen if self.trim_vocab or not split_variant(v)[1]]


def load_export_config(section: dict | None, overrides: dict | None = None) -> ExportConfig:
    """The recipe's ``export`` dict with CLI overrides on top (None values do not override)."""
    if not isinstance(section or {}, dict):
        raise ConfigError(f"export: expected a mapping of export settings (e.g. export: {{variants: [onnx-fp32]}}), "
                          f"got {type(section).__name__} {section!r}")
    data = dict(section or {})
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(ExportConfig, data, where="export.")
