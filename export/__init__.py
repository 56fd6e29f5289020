"""Export stage: ONNX / OpenVINO artifacts (FP32, FP16, INT8, trimmed vocabulary), each checked.

``edgedistill.runtime`` is the one runtime interface the bench stage and the dashboard load models
through; ``export.pipeline.export_run`` is the library entry point behind ``edgedistill export``.

Rooms by role: ``config`` (the stage's settings and the variants table), ``model_job`` (one model's
checkpoint, references and shared graphs), ``builders`` (one function per variant) over ``convert``
(the conversions), ``vocab`` (the trimmed vocabulary); ``validate`` (parity, macro-F1 and paired speed
of an artifact, with ``checks`` and ``speed``), ``manifest`` (what a finished artifact is); ``repair``
with ``sensitivity`` and ``blocks`` (INT8 blocks ranked on validation, a repaired sibling);
``report`` (export.json, export.md); ``pipeline`` (the run: every model x variant, resumable).
"""
