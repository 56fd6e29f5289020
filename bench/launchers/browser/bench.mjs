// The browser bench page (served by bench/launchers/web.py from loopback only): for each ONNX artifact of the
// job, the artifact's own tokenizer.json / tokenizer_config.json in JavaScript (@huggingface/tokenizers, the
// tokenizer of transformers.js) and ONNX Runtime Web on WASM (SIMD; threads when the page is cross-origin
// isolated). It times text -> label at batch 1 ("text-latency") and at the job's batch size ("text-throughput"),
// scores every test text (accuracy, macro-F1, per-class P/R/F1 computed here), and posts everything to /result.
import * as ort from "onnxruntime-web";
import { Tokenizer } from "@huggingface/tokenizers";

const statusEl = document.getElementById("status");

async function post(path, body) {
  await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

function say(text) {
  statusEl.textContent = text;
  return post("/log", { text });
}

// The smallest module using a v128 instruction (as wasm-feature-detect checks SIMD).
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
                                   65, 0, 253, 15, 253, 98, 11]);

function wasmFeatures() {
  let sharedMemory = false;
  try {
    sharedMemory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch (e) { sharedMemory = false; }
  return { wasm_simd: WebAssembly.validate(SIMD_PROBE), cross_origin_isolated: self.crossOriginIsolated === true,
           wasm_threads: self.crossOriginIsolated === true && sharedMemory };
}

// tokenizer.json -> model inputs, as edgedistill.runtime.TextEncoder does in Python: truncation to max_length
// keeping the special tokens, padding to the batch's longest text with the pad token of tokenizer_config.json.
class Encoder {
  constructor(tokenizerJson, tokenizerConfig, maxLength, inputNames) {
    this.tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.maxLength = maxLength;
    this.typeIds = inputNames.includes("token_type_ids");
    this.padId = 0;
    const pad = tokenizerConfig.pad_token;
    for (const name of [typeof pad === "object" && pad ? pad.content : pad, "[PAD]", "<pad>"]) {
      const id = name ? this.tok.token_to_id(name) : undefined;
      if (id !== undefined && id !== null) { this.padId = id; break; }
    }
  }

  one(text) {
    const full = this.tok.encode(text, { return_token_type_ids: true });
    if (full.ids.length <= this.maxLength) return full;
    // Too long: keep the special tokens the post-processor added around the text, cut the text's own tokens.
    const bare = this.tok.encode(text, { add_special_tokens: false });
    const specials = full.ids.length - bare.ids.length;
    let start = 0;
    while (start < specials && !bare.ids.every((id, i) => full.ids[start + i] === id)) start++;
    const keep = Math.max(0, this.maxLength - specials);
    const index = [];
    for (let i = 0; i < start + keep; i++) index.push(i);
    for (let i = start + bare.ids.length; i < full.ids.length; i++) index.push(i);
    const types = full.token_type_ids || [];
    return { ids: index.map((i) => full.ids[i]), attention_mask: index.map((i) => full.attention_mask[i]),
             token_type_ids: index.map((i) => types[i] ?? 0) };
  }

  feeds(texts) {
    const encs = texts.map((t) => this.one(t));
    const n = texts.length, len = Math.max(1, ...encs.map((e) => e.ids.length));
    const ids = new BigInt64Array(n * len).fill(BigInt(this.padId));
    const mask = new BigInt64Array(n * len), types = new BigInt64Array(n * len);
    encs.forEach((e, r) => e.ids.forEach((id, c) => {
      ids[r * len + c] = BigInt(id);
      mask[r * len + c] = BigInt(e.attention_mask[c]);
      types[r * len + c] = BigInt((e.token_type_ids || [])[c] ?? 0);
    }));
    const out = { input_ids: new ort.Tensor("int64", ids, [n, len]),
                  attention_mask: new ort.Tensor("int64", mask, [n, len]) };
    if (this.typeIds) out.token_type_ids = new ort.Tensor("int64", types, [n, len]);
    return out;
  }
}

function softmaxRows(logits, n, k) {
  const out = [];
  for (let r = 0; r < n; r++) {
    const row = Array.from(logits.slice(r * k, (r + 1) * k));
    const m = Math.max(...row), e = row.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
    out.push(e.map((v) => v / s));
  }
  return out;
}

const argmax = (row) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

// Accuracy, macro-F1 and per-class precision / recall / F1 (zero where a class is never predicted or present).
function metrics(labels, predicted, names) {
  const perClass = {};
  let f1Sum = 0;
  names.forEach((name, c) => {
    let tp = 0, fp = 0, fn = 0;
    labels.forEach((y, i) => {
      if (predicted[i] === c && y === c) tp++;
      else if (predicted[i] === c) fp++;
      else if (y === c) fn++;
    });
    const precision = tp + fp ? tp / (tp + fp) : 0, recall = tp + fn ? tp / (tp + fn) : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[name] = { precision, recall, f1 };
    f1Sum += f1;
  });
  const correct = labels.filter((y, i) => predicted[i] === y).length;
  return { accuracy: correct / labels.length, macro_f1: f1Sum / names.length, per_class: perClass };
}

// One timed case: warm-up calls, then calls until both min_rounds and max_time are reached (as pytest-benchmark
// picks rounds = max(min_rounds, max_time / round time)). Each call returns its tokenizing time and input shape.
async function timeCase(call, minRounds, maxTimeS, warmup) {
  for (let i = 0; i < warmup; i++) await call(i);
  const times = [], tokenize = [], shapes = [];
  const t0 = performance.now();
  for (let i = 0; times.length < minRounds || (performance.now() - t0) / 1000 < maxTimeS; i++) {
    const start = performance.now();
    const got = await call(i);
    times.push(performance.now() - start);
    tokenize.push(got.tokenize_ms);
    if (shapes.length < 256) shapes.push(got.shape);
    if (times.length >= 1000000) break;
  }
  return { times_ms: times, tokenize_ms: tokenize, shapes };
}

async function benchArtifact(job, a) {
  const loadStart = performance.now();
  const [tokenizerJson, tokenizerConfig] = await Promise.all([
    fetch(`${a.url}/tokenizer.json`).then((r) => r.json()),
    fetch(`${a.url}/tokenizer_config.json`).then((r) => (r.ok ? r.json() : {})),
  ]);
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  if (a.external_data.length) options.externalData = a.external_data.map((f) => ({ path: f, data: `${a.url}/${f}` }));
  const session = await ort.InferenceSession.create(`${a.url}/${a.model_file}`, options);
  const encoder = new Encoder(tokenizerJson, tokenizerConfig, a.max_length, session.inputNames);
  const loadMs = performance.now() - loadStart;
  const k = job.label_names.length;

  async function label(texts) {
    const t0 = performance.now();
    const feeds = encoder.feeds(texts);
    const tokenizeMs = performance.now() - t0;
    const out = await session.run(feeds);
    const logits = out[session.outputNames[0]].data;
    const shape = feeds.input_ids.dims.map(Number);
    const labels = [];
    for (let r = 0; r < texts.length; r++) labels.push(argmax(Array.from(logits.slice(r * k, (r + 1) * k))));
    return { labels, logits, tokenize_ms: tokenizeMs, shape };
  }

  await say(`${a.name}: scoring ${job.test_texts.length} test texts`);
  const probs = [];
  for (let i = 0; i < job.test_texts.length; i += job.eval_batch_size) {
    const texts = job.test_texts.slice(i, i + job.eval_batch_size);
    const got = await label(texts);
    probs.push(...softmaxRows(got.logits, texts.length, k));
  }
  const predicted = probs.map(argmax);
  const scores = metrics(job.test_labels, predicted, job.label_names);

  const cases = [];
  for (let repeat = 0; repeat < job.repeat; repeat++) {
    await say(`${a.name}: text-latency (pass ${repeat + 1})`);
    const one = await timeCase((i) => label([job.natural_texts[i % job.natural_texts.length]]), job.min_rounds,
                               job.max_time, job.warmup_iterations);
    cases.push({ scenario: "text-latency", batch_size: 1, seq_len: "natural", repeat, ...one });
    await say(`${a.name}: text-throughput (pass ${repeat + 1})`);
    const many = await timeCase((i) => label(job.throughput_batches[i % job.throughput_batches.length]),
                                job.throughput_min_rounds, job.max_time, Math.min(job.warmup_iterations, 3));
    cases.push({ scenario: "text-throughput", batch_size: job.batch_size, seq_len: "natural", repeat, ...many });
  }
  await session.release();
  const out = { name: a.name, ok: true, load_ms: loadMs, probs, metrics: scores, cases,
               input_names: session.inputNames, measured_at: new Date().toISOString() };
  // The token ids of every test text, for checking the JavaScript tokenizer against the Python one.
  if (job.return_ids) out.ids = job.test_texts.map((t) => encoder.one(t).ids);
  return out;
}

async function main() {
  const job = await fetch("/job.json").then((r) => r.json());
  const features = wasmFeatures();
  const threads = features.wasm_threads ? job.threads : 1;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = "/npm/onnxruntime-web/dist/";
  ort.env.logLevel = "error";
  const browser = { user_agent: navigator.userAgent, hardware_concurrency: navigator.hardwareConcurrency,
                    threads_requested: job.threads, threads, ...features, onnxruntime_web: ort.env.versions?.web };
  const artifacts = [];
  for (const a of job.artifacts) {
    try {
      artifacts.push(await benchArtifact(job, a));
    } catch (e) {
      artifacts.push({ name: a.name, ok: false, error: String((e && e.stack) || e) });
    }
  }
  await say("done");
  await post("/result", { ok: true, browser, artifacts });
}

main().catch((e) => post("/result", { ok: false, error: String((e && e.stack) || e) }));
