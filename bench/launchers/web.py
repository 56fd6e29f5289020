"""The browser as a bench target: text -> label in a real headless Chromium page, rows like any machine's.

    edgedistill bench --bundle quickstart-bundle --browser --out browser.json
    edgedistill bench --run runs/quickstart --browser             rows into results/<run>/bench.json

The page (``bench/launchers/browser/``: index.html, bench.mjs and the npm packages pinned in its
package-lock.json, installed with ``npm ci`` there) tokenizes with the artifact's own tokenizer.json in
JavaScript (@huggingface/tokenizers, transformers.js's tokenizer) and runs the ONNX artifact on ONNX Runtime
Web's WASM backend (SIMD; threads when the page is cross-origin isolated, which the COOP / COEP headers of
this loopback server make it). Per thread count one Chromium starts, scores the test texts (accuracy,
macro-F1 and per-class metrics computed in the page), times ``text-latency`` (one text -> its label) and
``text-throughput`` (a batch of ``batch_size`` texts -> their labels) and posts the result back.

The browser is another machine: its rows carry a machine id of their own (the host's fingerprint plus the
browser's name and version), and its block's hardware names the browser, its WASM features and threads.
``--merge`` folds its file in like any machine's. Nothing is served beyond 127.0.0.1.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from bench.config import BenchConfig
from bench.plan import Artifact, resolve_threads
from bench.scenarios import roofline
from bench.scenarios.latency import percentile
from bench.schema import BenchRow, machine_block, now_iso, replace_machine, rows_from_timings
from edgedistill.scenarios import TEXT_LATENCY

PAGE_DIR = Path(__file__).with_name("browser")
NODE_MODULES = PAGE_DIR / "node_modules"
# The npm files the page loads, each served from its package's dist/ folder only.
NPM_PACKAGES = ("onnxruntime-web", "@huggingface/tokenizers")
RUNTIME, DEVICE = "onnxruntime-web", "wasm"
CHROMIUM_VAR = "EDGEDISTILL_CHROMIUM"
# Headless, and quiet on a machine with a closed network: no background connections, no component updates.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--disable-default-apps", "--mute-audio",
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding")
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".mjs": "text/javascript", ".js": "text/javascript",
                 ".json": "application/json", ".wasm": "application/wasm"}


class BrowserError(ValueError):
    """The browser bench cannot run here; the message names what is missing and how to get it."""


def find_chromium() -> str:
    """The Chromium binary: ``EDGEDISTILL_CHROMIUM``, else chromium / chromium-browser / google-chrome on PATH."""
    given = os.environ.get(CHROMIUM_VAR, "").strip()
    if given:
        if not (shutil.which(given) or Path(given).is_file()):
            raise BrowserError(f"{CHROMIUM_VAR}={given} is not an executable; point it at a Chromium binary")
        return shutil.which(given) or given
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("no Chromium found for the browser bench: install Debian's chromium (apt-get install "
                       f"chromium) or set {CHROMIUM_VAR}=/path/to/chrome")


def check_page() -> None:
    """The page's npm packages, installed by `npm ci` in bench/launchers/browser."""
    missing = [p for p in NPM_PACKAGES if not (NODE_MODULES / p / "dist").is_dir()]
    if missing:
        raise BrowserError(f"the browser page's npm packages are not installed ({', '.join(missing)} missing under "
                           f"{NODE_MODULES}): run `npm ci` in {PAGE_DIR} (it installs the versions pinned in "
                           "package-lock.json from the npm registry)")


def chromium_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    found = re.search(r"(\d+\.\d+\.\d+\.\d+)", out)
    return found.group(1) if found else (out.strip() or "unknown")


def npm_version(package: str) -> str | None:
    try:
        return json.loads((NODE_MODULES / package / "package.json").read_text()).get("version")
    except (OSError, json.JSONDecodeError):
        return None


# --- the loopback server -----------------------------------------------------------------------

class _Served:
    """What one page load may fetch, and where its result lands."""

    def __init__(self, job: dict, folders: list[Path]):
        self.job = json.dumps(job).encode()
        self.folders = folders
        self.result: dict | None = None
        self.done = threading.Event()
        self.log: list[str] = []


def _handler(served: _Served):
    from edgedistill.integrity import UnsafePathError, resolve_inside

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):       # the page's own /log lines say what happens
            pass

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in ISOLATION_HEADERS.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _file(self, path: Path):
            if not path.is_file():
                return self._send(404, b"not found")
            self._send(200, path.read_bytes(), CONTENT_TYPES.get(path.suffix, "application/octet-stream"))

        def do_GET(self):                   # noqa: N802 (the http.server name)
            path = unquote(urlparse(self.path).path)
            try:
                if path in ("/", "/index.html"):
                    return self._file(PAGE_DIR / "index.html")
                if path == "/bench.mjs":
                    return self._file(PAGE_DIR / "bench.mjs")
                if path == "/job.json":
                    return self._send(200, served.job, CONTENT_TYPES[".json"])
                if path.startswith("/npm/"):
                    rest = path[len("/npm/"):]
                    package = next((p for p in NPM_PACKAGES if rest.startswith(p + "/dist/")), None)
                    if package is None:
                        return self._send(404, b"not an npm file the page uses")
                    base = NODE_MODULES / package / "dist"
                    return self._file(resolve_inside(base, rest[len(package) + len("/dist/"):], "npm file"))
                if path.startswith("/artifacts/"):
                    index, _, name = path[len("/artifacts/"):].partition("/")
                    if not index.isdigit() or int(index) >= len(served.folders):
                        return self._send(404, b"no such artifact")
                    return self._file(resolve_inside(served.folders[int(index)], name, "artifact file"))
            except UnsafePathError:
                return self._send(403, b"outside the served folders")
            self._send(404, b"not found")

        def do_POST(self):                  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urlparse(self.path).path
            try:
                data = json.loads(body or b"{}")
            except json.JSONDecodeError:
                return self._send(400, b"not JSON")
            if path == "/log":
                served.log.append(str(data.get("text")))
                print(f"  browser: {data.get('text')}", flush=True)
            elif path == "/result":
                served.result = data
                served.done.set()
            else:
                return self._send(404, b"not found")
            self._send(200, b"ok")

    return Handler


def run_page(job: dict, folders: list[Path], chromium: str, timeout_s: float) -> dict:
    """Serve the page and ``folders`` on 127.0.0.1, open it in headless Chromium, wait for its result."""
    served = _Served(job, folders)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with tempfile.TemporaryDirectory(prefix="edgedistill-chromium-") as profile:
        log_path = Path(profile).parent / (Path(profile).name + ".log")
        with open(log_path, "w") as log:
            proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                deadline = time.monotonic() + timeout_s
                while not served.done.wait(0.5):
                    if proc.poll() is not None:
                        break
                    if time.monotonic() > deadline:
                        break
            finally:
                _stop(proc)
                server.shutdown()
                server.server_close()
        chromium_log = log_path.read_text(errors="replace")[-2000:]
        log_path.unlink(missing_ok=True)
    if served.result is None:
        why = (f"Chromium exited with code {proc.returncode}" if proc.returncode not in (None, -15, -9)
               and not served.log else f"no result within {timeout_s:.0f} s")
        raise BrowserError(f"the browser page returned nothing ({why}); last page status: "
                           f"{served.log[-1] if served.log else 'none'}; Chromium's output ends:\n{chromium_log}")
    return served.result


def _stop(proc: subprocess.Popen) -> None:
    """End the Chromium this bench started: its own process group (start_new_session), nothing else."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --- rows ---------------------------------------------------------------------------------------

def summarize(times_ms: list[float], batch_size: int) -> dict:
    """The row's speed columns from one case's per-call times (milliseconds)."""
    ordered = sorted(times_ms)
    mean = statistics.fmean(ordered)
    return {"latency_mean_ms": mean, "latency_p50_ms": statistics.median(ordered),
            "latency_p90_ms": percentile(ordered, 90), "latency_p99_ms": percentile(ordered, 99),
            "latency_min_ms": ordered[0], "latency_stddev_ms": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
            "rounds": len(ordered), "throughput_per_s": batch_size / (mean / 1000) if mean else None}


def browser_hardware(host: dict, chromium: str, version: str, page: dict) -> dict:
    """The browser's fingerprint as a machine: the host it runs on, plus the browser and its WASM features."""
    key = f"{host['machine_id']}|chromium {version}|wasm"
    threads = page.get("threads")
    features = ", ".join(f for f, on in (("SIMD", page.get("wasm_simd")), ("threads", page.get("wasm_threads")))
                         if on) or "no SIMD, no threads"
    return {"machine_id": hashlib.sha1(key.encode()).hexdigest()[:12],
            "label": f"Chromium {version.split('.')[0]} WASM ({features}) on {host['label']}",
            "cpu_model": host.get("cpu_model"), "physical_cores": host.get("physical_cores"),
            "logical_cores": host.get("logical_cores"), "isa_flags": [], "memory_gb": host.get("memory_gb"),
            "gpus": [], "os": host.get("os"), "arch": "wasm32", "python": host.get("python"),
            "emulated": False,
            "browser": {"name": "Chromium", "version": version, "binary": chromium,
                        "user_agent": page.get("user_agent"), "wasm_simd": page.get("wasm_simd"),
                        "wasm_threads": page.get("wasm_threads"),
                        "cross_origin_isolated": page.get("cross_origin_isolated"),
                        "threads": threads, "hardware_concurrency": page.get("hardware_concurrency"),
                        "onnxruntime_web": page.get("onnxruntime_web") or npm_version("onnxruntime-web"),
                        "tokenizers_js": npm_version("@huggingface/tokenizers")},
            "host": {"machine_id": host["machine_id"], "label": host["label"], "arch": host.get("arch")}}


def page_metrics(result: dict, inputs: dict) -> dict:
    """The page's accuracy, macro-F1 and per-class metrics, checked against the same numbers computed here from
    the probabilities it returned (and completed with ROC-AUC / PR-AUC, which the page does not compute)."""
    import numpy as np

    from edgedistill.metrics import classification_metrics

    probs = np.asarray(result["probs"], dtype=np.float64)
    if probs.shape != (len(inputs["test_labels"]), len(inputs["label_names"])):
        raise BrowserError(f"the page returned probabilities of shape {probs.shape} for {len(inputs['test_labels'])} "
                           f"test texts and {len(inputs['label_names'])} labels")
    here = classification_metrics(inputs["test_labels"], probs, inputs["label_names"])
    page = result["metrics"]
    for key in ("accuracy", "macro_f1"):
        if abs(float(page[key]) - float(here[key])) > 1e-9:
            raise BrowserError(f"the page's {key} ({page[key]}) differs from the one computed from its own "
                               f"probabilities ({here[key]})")
    return {**here, "accuracy": page["accuracy"], "macro_f1": page["macro_f1"], "per_class": page["per_class"]}


def rows_from_page(art: dict, a: Artifact, hw: dict, run: str, threads: int,
                   inputs: dict) -> tuple[list[BenchRow], dict, dict]:
    """One artifact's page result as bench rows (text-latency rows with the tokenizer's p50, ``tokenize_ms``) and
    {row key: [p50 per repeat]}."""
    metrics = page_metrics(art, inputs)
    identity = dict(machine_id=hw["machine_id"], machine_label=hw["label"], run=run, model=a.model, artifact=a.name,
                    variant=a.variant, format=a.format, precision=a.precision, quantization=a.quantization,
                    trimmed_vocab=a.trimmed_vocab, runtime=RUNTIME, device=DEVICE, threads=threads, options="")
    footprint = dict(size_mb=a.size_bytes / 1e6, params=a.params, load_s=art["load_ms"] / 1000, peak_rss_mb=None)
    config = roofline.artifact_config(a.folder)
    timings, tokenize = {}, {}
    for i, case in enumerate(art["cases"]):
        timing = {"case": {k: case[k] for k in ("scenario", "batch_size", "seq_len", "repeat")},
                  **summarize(case["times_ms"], case["batch_size"]), "shapes": case["shapes"]}
        timings[f"case-{i}"] = timing
        if case["repeat"] == 0:
            tokenize[(case["scenario"], case["batch_size"])] = statistics.median(case["tokenize_ms"])

    def columns(timing: dict) -> dict:
        return roofline.row_columns(roofline.mean_gflop(config, timing.get("shapes")), timing["latency_p50_ms"], None)

    rows, spread = rows_from_timings(identity, metrics, footprint, timings, art.get("measured_at") or now_iso(),
                                     case_columns=columns)
    for r in rows:
        if r.scenario == TEXT_LATENCY:
            r.tokenize_ms = round(tokenize[(r.scenario, r.batch_size)], 4)
    return rows, spread


def job_for(artifacts: list[Artifact], inputs: dict, cfg: BenchConfig, threads: int) -> dict:
    """What the page reads from /job.json."""
    from edgedistill.metadata import ArtifactMeta

    out = []
    for i, a in enumerate(artifacts):
        meta = ArtifactMeta.read(a.folder)
        folder = Path(a.folder)
        out.append({"name": a.name, "url": f"/artifacts/{i}", "model_file": meta.model_file,
                    "max_length": meta.max_length,
                    "external_data": sorted(p.name for p in folder.glob("*.onnx_data"))
                    + sorted(p.name for p in folder.glob("*.onnx.data"))})
    return {"artifacts": out, "threads": threads, "label_names": inputs["label_names"],
            "test_texts": inputs["test_texts"], "test_labels": inputs["test_labels"],
            "natural_texts": inputs["natural_texts"], "throughput_batches": inputs["throughput_batches"],
            "batch_size": cfg.batch_size, "eval_batch_size": cfg.eval_batch_size, "repeat": cfg.repeat,
            "min_rounds": cfg.min_rounds, "throughput_min_rounds": cfg.throughput_min_rounds,
            "max_time": cfg.max_time, "warmup_iterations": cfg.warmup_iterations}


# The tokenizer models @huggingface/tokenizers implements (a WordLevel one, the TF-IDF baseline's, it does not).
PAGE_TOKENIZERS = ("WordPiece", "BPE", "Unigram")


def tokenizer_model(a: Artifact) -> str | None:
    """The model type of an artifact's tokenizer.json (WordPiece, BPE, Unigram, WordLevel, ...)."""
    try:
        return json.loads((Path(a.folder) / "tokenizer.json").read_text())["model"]["type"]
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return None


def onnx_artifacts(artifacts: list[Artifact], cfg: BenchConfig) -> list[Artifact]:
    chosen = [a for a in artifacts if a.format == "onnx" and (cfg.models is None or a.model in cfg.models)
              and (cfg.variants is None or a.variant in cfg.variants)]
    if not chosen:
        raise BrowserError("nothing for the browser to measure: the browser bench runs ONNX artifacts only (ONNX "
                           f"Runtime Web), and the filters (models={cfg.models}, variants={cfg.variants}) leave none "
                           f"among {', '.join(a.name for a in artifacts) or 'no artifacts'}")
    return chosen


def measure_browser(artifacts: list[Artifact], cfg: BenchConfig, inputs: dict, run: str,
                    command: list[str] | None, extra: dict | None = None) -> tuple[list[BenchRow], dict, list[dict]]:
    """Every ONNX artifact in Chromium at each thread count: rows, this browser's machine block, failures."""
    from edgedistill.provenance import hardware, provenance

    chromium = find_chromium()
    check_page()
    chosen = onnx_artifacts(artifacts, cfg)
    host = hardware()
    version = chromium_version(chromium)
    rows, repeats, failures, pages, hw = [], {}, [], {}, None
    for a in [a for a in chosen if tokenizer_model(a) not in PAGE_TOKENIZERS]:
        failures.append({"job": f"{a.name} [{RUNTIME}]", "error": (
            f"not run: its tokenizer.json is a {tokenizer_model(a)} tokenizer, and the page's tokenizer library "
            f"(@huggingface/tokenizers) reads {', '.join(PAGE_TOKENIZERS)} only")})
        print(f"  SKIPPED {a.name}: {failures[-1]['error']}", file=sys.stderr, flush=True)
    chosen = [a for a in chosen if tokenizer_model(a) in PAGE_TOKENIZERS]
    for threads in resolve_threads(cfg.threads, int(host.get("physical_cores") or 1)):
        print(f"browser: Chromium {version}, {len(chosen)} ONNX artifact(s), {threads} thread(s)", flush=True)
        result = run_page(job_for(chosen, inputs, cfg, threads), [Path(a.folder) for a in chosen], chromium,
                          cfg.job_timeout_s)
        if not result.get("ok"):
            raise BrowserError(f"the browser page failed: {result.get('error')}")
        page = result["browser"]
        hw = hw or browser_hardware(host, chromium, version, page)
        pages[str(threads)] = page
        used = int(page.get("threads") or 1)
        for art, a in zip(result["artifacts"], chosen):
            label = f"{a.name} [{RUNTIME} x{used}]"
            if not art.get("ok"):
                failures.append({"job": label, "error": art.get("error", "failed in the page")})
                print(f"\n  FAILED {label}: {failures[-1]['error']}", file=sys.stderr, flush=True)
                continue
            try:
                new, spread = rows_from_page(art, a, hw, run, used, inputs)
            except BrowserError as exc:
                failures.append({"job": label, "error": str(exc)})
                continue
            rows += new
            repeats.update(spread)
    if not rows:
        detail = "\n".join(f"  - {f['job']}: {f['error']}" for f in failures[:10])
        raise BrowserError(f"every browser job failed:\n{detail}")
    block = machine_block(hw, provenance(command), dataclasses.asdict(cfg),
                          {"repeats": repeats, "pages": pages, "failed": failures,
                           "test_size": len(inputs["test_labels"]), **(extra or {})})
    return rows, block, failures


def bench_browser(doc: dict, old_rows: list[BenchRow], artifacts: list[Artifact], cfg: BenchConfig, inputs: dict,
                  run: str, command: list[str] | None, extra: dict | None = None):
    """Measure in the browser; ``doc`` with this browser's rows and block replaced (other machines untouched).
    Returns (doc, every row, the new rows, the browser's machine id, failures); the caller writes the files."""
    rows, block, failures = measure_browser(artifacts, cfg, inputs, run, command, extra)
    mid = block["hardware"]["machine_id"]
    # A filtered browser bench replaces the rows of the artifacts it ran, at the thread counts it ran; the
    # browser's other rows stay, as a filtered native bench keeps its machine's other rows.
    ran = {a.name for a in onnx_artifacts(artifacts, cfg)}
    threads = {r.threads for r in rows}
    doc, all_rows = replace_machine(doc, old_rows, mid, block, rows,
                                    keep=lambda r: r.artifact not in ran or r.threads not in threads,
                                    ran={f"{a} [{RUNTIME} x{t}]" for a in ran for t in threads})
    return doc, all_rows, rows, mid, failures
