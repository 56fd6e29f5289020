"""The browser as a bench target: a tiny exported ONNX artifact benched end to end in headless Chromium (the
artifact's tokenizer in JavaScript, ONNX Runtime Web on WASM), its rows another machine's, merged like any."""
from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest
from test_bench_run import LABELS, RUN, make_tiny_run

from bench.launchers import web

NEEDS = []
if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
    NEEDS.append("no Chromium on this machine (apt-get install chromium; .ci/run installs it)")
if not all((web.NODE_MODULES / p / "dist").is_dir() for p in web.NPM_PACKAGES):
    NEEDS.append(f"the page's npm packages are not installed (run `npm ci` in {web.PAGE_DIR}; .ci/run does)")
needs_browser = pytest.mark.skipif(bool(NEEDS), reason="; ".join(NEEDS))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from bench.bundles.write import write_bundle

    root = tmp_path_factory.mktemp("browser")
    run = make_tiny_run(root, methods=("teacher",), exports=("onnx-fp32", "onnx-int8-dynamic"))
    write_bundle(run, root / "bundle", artifacts=["teacher/onnx-fp32", "teacher/onnx-int8-dynamic"],
                 overrides={"max_test": 24})
    return root, run, root / "bundle"


def test_the_page_is_pinned_and_installed_by_npm_ci():
    package = json.loads((web.PAGE_DIR / "package.json").read_text())
    lock = json.loads((web.PAGE_DIR / "package-lock.json").read_text())
    assert set(package["dependencies"]) == set(web.NPM_PACKAGES)
    for name, version in package["dependencies"].items():
        assert version[0].isdigit(), f"{name} must be pinned exactly, not {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "npm ci" in ci and "bench/launchers/browser" in ci


def test_missing_chromium_or_npm_files_are_clear(monkeypatch, tmp_path):
    monkeypatch.setenv(web.CHROMIUM_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(web.BrowserError, match="is not an executable"):
        web.find_chromium()
    monkeypatch.delenv(web.CHROMIUM_VAR)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(web.BrowserError, match="apt-get install chromium"):
        web.find_chromium()
    monkeypatch.setattr(web, "NODE_MODULES", tmp_path / "node_modules")
    with pytest.raises(web.BrowserError, match="npm ci"):
        web.check_page()


def test_the_server_is_loopback_only_isolated_and_serves_nothing_else(tmp_path):
    import http.server
    import threading

    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("no")
    served = web._Served({"artifacts": []}, [folder])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), web._handler(served))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/artifacts/0/tokenizer.json") as r:
            assert r.read() == b"{}"
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        for path in ("/artifacts/0/../secret.txt", "/artifacts/0/%2e%2e/secret.txt", "/artifacts/1/x",
                     "/npm/protobufjs/package.json", "/npm/onnxruntime-web/package.json"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + path)
            assert err.value.code in (403, 404), path
    finally:
        server.shutdown()
        server.server_close()


@needs_browser
@pytest.mark.slow
def test_browser_bench_end_to_end(bundle, tmp_path):
    import numpy as np

    from bench.launchers.bundle import bench_bundle
    from bench.launchers.process import merge_bench_file
    from bench.schema import read_document
    from edgedistill.runtime import OrtRuntime

    root, run, folder = bundle
    out = tmp_path / "browser.json"
    outcome = bench_bundle(folder, out, {"quick": True, "threads": [2]}, browser=True, command=["test"])
    assert not outcome.failures
    doc, rows = read_document(out)
    (mid, block), = doc["machines"].items()
    hw = block["hardware"]
    assert hw["arch"] == "wasm32" and hw["browser"]["name"] == "Chromium" and hw["browser"]["version"][0].isdigit()
    assert hw["browser"]["wasm_simd"] is True and hw["browser"]["cross_origin_isolated"] is True
    assert hw["browser"]["wasm_threads"] is True and hw["browser"]["threads"] == 2
    assert hw["browser"]["onnxruntime_web"] and hw["browser"]["tokenizers_js"]
    assert hw["host"]["machine_id"] != mid and hw["label"].startswith("Chromium ")
    assert {(r.artifact, r.scenario, r.batch_size) for r in rows} == {
        (a, s, b) for a in ("teacher/onnx-fp32", "teacher/onnx-int8-dynamic")
        for s, b in (("text-latency", 1), ("text-throughput", 4))}
    for r in rows:
        assert r.runtime == "onnxruntime-web" and r.device == "wasm" and r.threads == 2
        assert r.latency_p50_ms > 0 and r.rounds >= 3 and r.macro_f1 is not None and set(r.per_class) == set(LABELS)
        assert r.gflop_per_call and (r.tokenize_ms >= 0 if r.scenario == "text-latency" else r.tokenize_ms is None)
    # The page's labels are those of native ONNX Runtime on the same texts with the Python tokenizer.
    inputs = json.loads((folder / "inputs.json").read_text())
    fp32 = next(r for r in rows if r.artifact == "teacher/onnx-fp32")
    native = OrtRuntime.load(folder / "artifacts/teacher/onnx-fp32", threads=1).predict(inputs["test_texts"])
    labels = np.asarray(inputs["test_labels"])
    assert fp32.accuracy == pytest.approx(float((native.label_ids == labels).mean()))
    # Merged at home like any machine's file, beside this machine's own rows.
    results = root / "results" / RUN
    assert merge_bench_file(out, results) == [mid]
    merged, merged_rows = read_document(results / "bench.json")
    assert mid in merged["machines"] and any(r.runtime == "onnxruntime-web" for r in merged_rows)
    report = (results / "report.md").read_text()
    assert "Chromium" in report and "text -> label" in report and "onnxruntime-web" in report


@needs_browser
@pytest.mark.slow
def test_the_page_tokenizes_and_scores_as_native_onnx_runtime(bundle):
    """Same probabilities as ONNX Runtime in Python with the Python tokenizer, long texts (truncated to the
    artifact's max_length, keeping [CLS] / [SEP]) included."""
    import numpy as np

    from bench.config import load_bench_config
    from bench.inputs import timing_inputs
    from bench.plan import Artifact
    from edgedistill.runtime import OrtRuntime

    _, _, folder = bundle
    data = json.loads((folder / "inputs.json").read_text())
    long = " ".join(data["test_texts"]) + " unseenword, punctuation! and MIXED case"
    texts, labels = data["test_texts"][:6] + [long, ""], data["test_labels"][:6] + [0, 1]
    cfg = load_bench_config({"quick": True, "min_rounds": 1, "throughput_min_rounds": 1, "max_time": 0.01})
    inputs = timing_inputs(texts, labels, data["label_names"], cfg)
    art = folder / "artifacts/teacher/onnx-fp32"
    a = Artifact("teacher", "onnx-fp32", "onnx", "fp32", "none", False, str(art), 1, 1)
    result = web.run_page({**web.job_for([a], inputs, cfg, 1), "return_ids": True}, [art], web.find_chromium(), 300)
    assert result["ok"] and result["artifacts"][0]["ok"], result
    native = OrtRuntime.load(art, threads=1)
    ids = [native.encoder([t])["input_ids"][0].tolist() for t in texts]
    assert len(ids[6]) == native.max_length and ids[6][-1] != ids[6][-2]      # the long text, truncated
    assert result["artifacts"][0]["ids"] == ids
    np.testing.assert_allclose(result["artifacts"][0]["probs"], native.predict(texts).probs, atol=1e-5)


@needs_browser
@pytest.mark.slow
def test_the_command_benches_a_run_folder_in_the_browser(bundle, tmp_path, capsys):
    import edgedistill_cli.commands as edgedistill
    from bench.schema import read_document

    _, run, _ = bundle
    results = tmp_path / "results"
    assert edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--browser", "--quick",
                             "--threads", "1", "--variants", "onnx-fp32", "--no-progress"]) == 0
    doc, rows = read_document(results / "bench.json")
    assert {r.artifact for r in rows} == {"teacher/onnx-fp32"} and {r.runtime for r in rows} == {"onnxruntime-web"}
    assert [b["hardware"]["arch"] for b in doc["machines"].values()] == ["wasm32"]
    # Only ONNX artifacts run in the browser: a filter that leaves none is a clear error.
    assert edgedistill.main(["bench", "--run", str(run), "--results", str(results), "--browser", "--quick",
                             "--variants", "pytorch"]) == 2
    assert "ONNX artifacts only" in capsys.readouterr().err


@needs_browser
@pytest.mark.slow
def test_onnxruntime_web_in_a_page_gives_the_projects_probabilities(bundle):
    """The page as a client of exported folders (ONNX Runtime Web on WASM, the tokenizer in JavaScript, nothing of
    the project in the page): FP32 probabilities within 1e-4 of native ONNX Runtime's, the same labels."""
    import numpy as np
    from conftest import tiny_texts

    from bench.config import load_bench_config
    from bench.plan import discover
    from edgedistill.runtime import OrtRuntime

    _, run, _ = bundle
    artifacts = [a for a in discover(run)[0] if a.format == "onnx"]
    texts = tiny_texts(12, seed=5)[0] + ["a much longer text " * 40]           # the last one is truncated
    inputs = {"label_names": LABELS, "test_texts": texts, "test_labels": [0] * len(texts),
              "natural_texts": texts[:2], "throughput_batches": [texts[:4]]}
    cfg = load_bench_config(None, {"quick": True})
    result = web.run_page(web.job_for(artifacts, inputs, cfg, 1), [Path(a.folder) for a in artifacts],
                          web.find_chromium(), 300)
    assert result.get("ok"), result.get("error")
    assert {a.precision for a in artifacts} == {"fp32", "int8"}
    for art, a in zip(result["artifacts"], artifacts):
        got = np.asarray(art["probs"], dtype=np.float64)
        native = OrtRuntime.load(a.folder, threads=1).predict(texts)
        top2 = np.sort(native.probs, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-3          # a near-tie may fall either way on another CPU kernel
        assert (got.argmax(1) == native.label_ids)[clear].all(), a.name
        if a.precision == "fp32":
            assert np.abs(got - native.probs).max() < 1e-4, a.name


def test_a_filtered_browser_bench_keeps_the_browsers_other_rows(monkeypatch):
    """`--browser --models tfidf` measures one artifact: the browser's rows of the others stay."""
    from test_bench_schema import block, row

    from bench.config import BenchConfig
    from bench.plan import Artifact

    def art(name):
        model, variant = name.split("/")
        return Artifact(model, variant, "onnx", "fp32", "none", False, "f", 1, 1)

    old = [row("web", model="odd", variant="onnx-fp32", runtime="onnxruntime-web", p50=7.0, scenario="text-latency"),
           row("web", model="tfidf", variant="onnx-fp32", runtime="onnxruntime-web", p50=9.0,
               scenario="text-latency")]
    new = [row("web", model="tfidf", variant="onnx-fp32", runtime="onnxruntime-web", p50=0.2, scenario="text-latency")]
    monkeypatch.setattr(web, "measure_browser", lambda *a, **k: (new, block("web"), []))
    doc = {"schema_version": 3, "run": "tiny", "machines": {"web": block("web")}, "rows": []}
    _, rows, *_ = web.bench_browser(doc, old, [art("odd/onnx-fp32"), art("tfidf/onnx-fp32")],
                                    BenchConfig(models=["tfidf"]), {}, "tiny", None)
    assert sorted((r.artifact, r.latency_p50_ms) for r in rows) == [("odd/onnx-fp32", 7.0), ("tfidf/onnx-fp32", 0.2)]


def test_a_tokenizer_the_page_cannot_read_is_named_before_the_page_runs(tmp_path):
    from bench.plan import Artifact

    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordLevel", "vocab": {}}}))
    a = Artifact("tfidf", "onnx-fp32", "onnx", "fp32", "none", False, str(tmp_path), 1, 1)
    assert web.tokenizer_model(a) == "WordLevel" and web.tokenizer_model(a) not in web.PAGE_TOKENIZERS
