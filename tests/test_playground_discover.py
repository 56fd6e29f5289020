"""The playground offers only finished folders and names the broken ones (the same marker reading as bench)."""
import json

from dashboard import playground
from edgedistill import layout


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_finished_folders_are_offered_and_broken_markers_are_named(tmp_path):
    run = tmp_path / "demo"
    _write(layout.model_dir(run, "teacher") / layout.CHECKPOINT_MARKER, json.dumps({"label_names": ["a", "b"]}))
    _write(layout.model_dir(run, "odd") / layout.CHECKPOINT_MARKER, "{not json")
    (layout.model_dir(run, "even")).mkdir(parents=True)  # still training: no marker, silently not offered
    _write(layout.artifact_dir(run, "teacher", "onnx-fp32") / layout.ARTIFACT_MARKER,
           json.dumps({"model": "teacher", "variant": "onnx-fp32", "label_names": ["a", "b"]}))
    _write(layout.artifact_dir(run, "teacher", "onnx-int8-dynamic") / layout.ARTIFACT_MARKER, "[1, 2]")

    found, warnings = playground.discover([tmp_path], ["demo", "missing"])

    assert [(c.model, c.variant) for c in found] == [("teacher", "pytorch"), ("teacher", "onnx-fp32")]
    assert found[0].label_names == ("a", "b")
    assert len(warnings) == 2
    odd, dyn = warnings
    assert "odd/edgedistill.json is not valid JSON" in odd and odd.endswith("checkpoint not offered")
    assert "onnx-int8-dynamic/manifest.json is a JSON list, not an object" in dyn
    assert dyn.endswith("artifact not offered")
