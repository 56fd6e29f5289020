"""Export stage: ONNX / OpenVINO artifacts (FP32, FP16, INT8, trimmed vocabulary), each checked.

``edgedistill.runtime`` is the one runtime interface the bench stage and the dashboard load models
through; ``export.pipeline.export_run`` is the library entry point behind ``edgedistill export``.
"""
