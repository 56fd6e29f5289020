"""One runtime interface for PyTorch checkpoints, ONNX Runtime and OpenVINO artifacts (and numpy, for a
static student's artifact).

    rt = OrtRuntime.load("runs/x/artifacts/odd/onnx-int8-dynamic", threads=1)
    batch = rt.encode(["great movie"], pad_to=64)     # numpy int64 arrays, tokenizers only
    logits = rt.forward(batch)                         # numpy (n, num_labels)
    rt.predict(["great movie"]).labels                 # ["positive"]
    rt.describe()                                      # runtime, precision, threads, size, ...

The bench stage measures every artifact through ``forward`` and the dashboard serves
``predict``. Only ``TorchRuntime`` imports torch / transformers (inside its methods), so an
ONNX or OpenVINO artifact can be served on a machine without torch.
"""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedistill.integrity import UnsafePathError, resolve_inside
from edgedistill.layout import ARTIFACT_MARKER, CHECKPOINT_MARKER, CONFIG_FILE, MODEL2VEC_FILES, model2vec_head_key
from edgedistill.metadata import ArtifactError, ArtifactMeta, CheckpointMeta
from edgedistill.metrics import softmax

# The marker files are named once, in the run layout.
MANIFEST = ARTIFACT_MARKER
CHECKPOINT_META = CHECKPOINT_MARKER
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class Prediction:
    probs: np.ndarray          # (n, num_labels) float32 class probabilities
    label_ids: np.ndarray      # (n,) int64 argmax
    labels: list[str]          # label names of label_ids


def read_manifest(folder: str | Path) -> dict | None:
    """manifest.json as a dict, its typed fields checked (``ArtifactMeta``); None when absent."""
    meta = ArtifactMeta.read(folder)
    return None if meta is None else meta.raw


def folder_size(paths) -> int:
    return int(sum(Path(p).stat().st_size for p in paths if Path(p).is_file()))


class TextEncoder:
    """tokenizer.json -> numpy model inputs, with the same truncation for every runtime.

    The tokenizer is configured once (truncation at ``max_length``, padding to a batch's longest text);
    a fixed ``pad_to`` length gets its own configured copy, made on first use. So a call does no
    reconfiguration: one ``encode_batch`` and three array copies, which is what a text -> label call
    pays for its input."""

    def __init__(self, folder: str | Path, max_length: int, input_names: tuple[str, ...]):
        from tokenizers import Tokenizer

        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise ArtifactError(f"{folder} has no {TOKENIZER_FILE}; every checkpoint and artifact needs the fast "
                              "tokenizer file (save the tokenizer with save_pretrained, or re-export with --force)")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.max_length = int(max_length)
        self.input_names = tuple(input_names)
        self.with_types = "token_type_ids" in self.input_names
        self.pad_id, self.pad_token = self._pad(Path(folder))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)   # to the batch's longest
        self._fixed: dict[int, object] = {}

    def _pad(self, folder: Path) -> tuple[int, str]:
        names = []
        cfg = folder / "tokenizer_config.json"
        if cfg.is_file():
            tok = json.loads(cfg.read_text()).get("pad_token")
            names.append(tok.get("content") if isinstance(tok, dict) else tok)
        names += ["[PAD]", "<pad>"]
        for name in names:
            if name and self.tokenizer.token_to_id(name) is not None:
                return self.tokenizer.token_to_id(name), name
        return 0, self.tokenizer.id_to_token(0) or ""

    def fixed(self, length: int):
        """A copy of the tokenizer that truncates and pads every text to exactly ``length`` tokens."""
        if length not in self._fixed:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self.tokenizer.to_str())
            tok.enable_truncation(max_length=length)
            tok.enable_padding(length=length, pad_id=self.pad_id, pad_token=self.pad_token)
            self._fixed[length] = tok
        return self._fixed[length]

    def __call__(self, texts: list[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        if isinstance(texts, str):
            texts = [texts]
        tok = self.fixed(int(pad_to)) if pad_to else self.tokenizer
        texts = texts if isinstance(texts, list) else list(texts)
        # One text (a served request): encode() skips encode_batch's hand-off to the tokenizer's thread pool.
        encs = [tok.encode(texts[0])] if len(texts) == 1 else tok.encode_batch(texts)
        out = {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
               "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64)}
        if self.with_types:
            out["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
        return out


class Runtime(abc.ABC):
    """Load a model folder once; encode, forward, predict and describe it."""

    runtime: str = ""        # pytorch | onnxruntime | openvino
    format: str = ""         # pytorch | onnx | openvino

    def __init__(self, folder: Path, device: str, threads: int | None, precision: str,
                 label_names: list[str], max_length: int, input_names: tuple[str, ...], meta: dict):
        self.folder = Path(folder)
        self.device = device
        self.threads = threads
        self.precision = precision
        self.label_names = list(label_names)
        self.max_length = int(max_length)
        self.input_names = tuple(input_names)
        self.meta = meta                    # manifest.json / edgedistill.json contents
        self.encoder = TextEncoder(self.folder, self.max_length, self.input_names)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu", threads: int | None = None,
             precision: str | None = None) -> Runtime:
        """An export artifact: its manifest (checked to be complete and of this format), then ``open``."""
        return cls.open(folder, _artifact_meta(Path(folder), cls.format), device, threads, precision)

    @classmethod
    def open(cls, folder: str | Path, meta: dict, device: str = "cpu", threads: int | None = None,
             precision: str | None = None) -> Runtime:
        """Load with ``meta`` in place of manifest.json (the export checks run before it exists)."""
        raise NotImplementedError(f"{cls.__name__} loads checkpoints through load(), not artifact folders")

    @abc.abstractmethod
    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Logits (n, num_labels) as float32 numpy for a batch from ``encode``."""

    @abc.abstractmethod
    def describe(self) -> dict:
        ...

    def encode(self, texts: list[str], pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Token ids, truncated to max_length; ``pad_to=N`` gives exactly N tokens per text."""
        return self.encoder(texts, pad_to)

    def logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        parts = [self.forward(self.encode(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, texts: list[str], batch_size: int = 64) -> Prediction:
        """Text in, label out: what a user gets, and what the bench's text scenarios time."""
        if isinstance(texts, str):
            texts = [texts]
        # Up to one batch (a served request): one encode and one forward, no list of parts to join.
        logits = self.forward(self.encode(texts)) if len(texts) <= batch_size else self.logits(list(texts), batch_size)
        probs = softmax(logits.astype(np.float64)).astype(np.float32)
        ids = probs.argmax(axis=1).astype(np.int64)
        return Prediction(probs, ids, [self.label_names[i] for i in ids])

    def _base_description(self) -> dict:
        m = self.meta
        return {"runtime": self.runtime, "format": self.format, "precision": self.precision,
                "device": self.device, "threads": self.threads, "folder": str(self.folder),
                "model": m.get("model") or m.get("method"), "variant": m.get("variant", "pytorch"),
                "quantization": m.get("quantization", "none"), "trimmed_vocab": bool(m.get("trimmed_vocab", False)),
                "params": m.get("params") or m.get("params_total"), "max_length": self.max_length,
                "label_names": self.label_names}


def _artifact_meta(folder: Path, fmt: str) -> dict:
    """The manifest of an artifact folder (written last, so its presence = complete)."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise ArtifactError(f"{folder} has no {MANIFEST}: it is not a finished export (an interrupted export, or "
                          "the wrong folder). Run `edgedistill export --run runs/<run>` to (re)create it.")
    if manifest.get("format") != fmt:
        raise ArtifactError(f"{folder} holds a {manifest.get('format')!r} artifact, not {fmt!r}; "
                          "use edgedistill.predictor.load_predictor to pick the runtime from the folder")
    try:
        model_file = resolve_inside(folder, manifest.get("model_file", ""), f"{MANIFEST}'s model_file")
    except UnsafePathError as exc:
        raise ArtifactError(f"{folder}: {exc}; re-export the artifact with --force") from None
    if not model_file.is_file():
        raise ArtifactError(f"{folder}: the model file {manifest.get('model_file')!r} named in {MANIFEST} is missing; "
                          "re-export the artifact with --force")
    return manifest


class OrtRuntime(Runtime):
    """An ONNX artifact on ONNX Runtime: CPU provider, CUDA provider when device='cuda'."""

    runtime, format = "onnxruntime", "onnx"

    @classmethod
    def open(cls, folder, meta: dict, device="cpu", threads=None, precision=None):
        import onnxruntime as ort

        folder = Path(folder)
        if precision not in (None, meta.get("precision")):
            raise ArtifactError(f"{folder} is a {meta.get('precision')} ONNX artifact; ONNX Runtime runs it as stored "
                              f"(precision={precision!r} is not available; pick another artifact)")
        available = ort.get_available_providers()
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device == "cuda":
            if "CUDAExecutionProvider" not in available:
                raise ArtifactError("device 'cuda' needs onnxruntime-gpu (CUDAExecutionProvider); available: "
                                    f"{available}")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            raise ArtifactError(f"ONNX Runtime device {device!r} is not supported (use cpu or cuda)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Text arrives at its own length, so input shapes change call to call; a memory pattern
        # is planned and kept per shape, which only grows the process (see the bench's peak
        # memory before and after this setting in results/<run>/bench.json's git history).
        opts.enable_mem_pattern = False
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(folder / meta["model_file"]), sess_options=opts, providers=providers)
        inputs = tuple(i.name for i in session.get_inputs())
        typed = ArtifactMeta.from_dict(meta, folder / MANIFEST)
        rt = cls(folder, device, threads, typed.precision, typed.label_names, typed.max_length, inputs, meta)
        rt.session = session
        rt.output_name = session.get_outputs()[0].name
        return rt

    def forward(self, batch):
        feed = {k: np.ascontiguousarray(batch[k], dtype=np.int64) for k in self.input_names}
        return np.asarray(self.session.run([self.output_name], feed)[0], dtype=np.float32)

    def describe(self):
        model = self.folder / self.meta["model_file"]       # onnx/model.onnx (schema 1: model.onnx)
        files = [model] + sorted(model.parent.glob("*.onnx_data"))
        return {**self._base_description(), "providers": self.session.get_providers(),
                "intra_op_threads": self.threads, "model_file": self.meta["model_file"],
                "size_bytes": folder_size(files)}


class OpenVinoRuntime(Runtime):
    """An OpenVINO IR artifact; the inference precision and thread count are set explicitly.

    OpenVINO runs BF16 by default on CPUs with AMX/AVX512-BF16, so an unset hint would silently
    change numerics between machines: FP32 unless ``precision`` asks for bf16/f16.
    """

    runtime, format = "openvino", "openvino"
    # precision -> INFERENCE_PRECISION_HINT; "int8" (an INT8 artifact as stored) computes the rest in f32.
    HINTS = {None: "f32", "fp32": "f32", "f32": "f32", "int8": "f32", "bf16": "bf16", "fp16": "f16", "f16": "f16"}

    @classmethod
    def open(cls, folder, meta: dict, device="cpu", threads=None, precision=None):
        import openvino as ov

        folder = Path(folder)
        if precision not in cls.HINTS:
            raise ArtifactError(f"OpenVINO inference precision {precision!r} is not one of fp32, bf16, fp16 (or int8 "
                              "for an INT8 artifact as stored)")
        core = ov.Core()
        ov_device = {"cpu": "CPU", "gpu": "GPU"}.get(device)
        if ov_device is None or ov_device not in core.available_devices:
            raise ArtifactError(f"OpenVINO device {device!r} is not available here (devices: {core.available_devices}; "
                              "use cpu, or gpu on a machine with an Intel GPU)")
        # One request at a time (batch 1 latency): the LATENCY hint and one stream, so a single
        # inference gets every thread; inputs keep their own length (the IR's axes are dynamic).
        config = {"INFERENCE_PRECISION_HINT": cls.HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if ov_device == "CPU":
            config["NUM_STREAMS"] = 1
        if threads and ov_device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        compiled = core.compile_model(core.read_model(str(folder / meta["model_file"])), ov_device, config)
        inputs = tuple(p.get_any_name() for p in compiled.inputs)
        stored = meta.get("precision", "fp32")
        # An explicit bf16/f16 hint changes how FP32/FP16 weights are computed; INT8 stays INT8.
        label = stored if precision is None or stored == "int8" else {"f32": "fp32", "f16": "fp16"}.get(
            cls.HINTS[precision], cls.HINTS[precision])
        typed = ArtifactMeta.from_dict(meta, folder / MANIFEST)
        rt = cls(folder, device, threads, label, typed.label_names, typed.max_length, inputs, meta)
        rt.compiled, rt.request, rt.config = compiled, compiled.create_infer_request(), config
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        rt.inference_precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        rt.ov_device = ov_device
        rt.num_threads = int(compiled.get_property("INFERENCE_NUM_THREADS")) if ov_device == "CPU" else None
        rt.settings = compiled_settings(compiled)
        return rt

    def forward(self, batch):
        feed = {k: np.ascontiguousarray(batch[k], dtype=np.int64) for k in self.input_names}
        self.request.infer(feed)
        return np.array(self.request.get_output_tensor(0).data, dtype=np.float32)

    def describe(self):
        xml = self.folder / self.meta["model_file"]
        return {**self._base_description(), "providers": [self.ov_device],
                "inference_precision": self.inference_precision, "num_threads": self.num_threads,
                "ov_config": dict(self.config), "ov_settings": self.settings, "model_file": self.meta["model_file"],
                "size_bytes": folder_size([xml, xml.with_suffix(".bin")])}


OV_SETTINGS = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "ENABLE_CPU_PINNING",
               "ENABLE_HYPER_THREADING")


def compiled_settings(compiled) -> dict:
    """The settings OpenVINO actually compiled with (a hint expands into streams, threads, pinning)."""
    out = {}
    for key in OV_SETTINGS:
        try:
            value = compiled.get_property(key)
        except Exception:  # noqa: BLE001, S112 - a property this device or version does not expose
            continue
        out[key] = value if isinstance(value, (bool, int, float)) else str(value).split(".")[-1]
    return out


class NumpyRuntime(Runtime):
    """A static student's FP32 artifact served by numpy alone, from the model2vec form its export writes
    beside the ONNX graph (the table in model.safetensors, the head in head.safetensors, described in
    config.json). The forward is the graph's own arithmetic: the mean of the text's known token rows,
    L2-normalised, then the MLP head: a table lookup and two small matrix products, a few numpy operations
    a call (hate-speech bench, AMD EPYC x2: text -> label p50 0.089 ms, against 0.116 ms for ONNX Runtime on
    the same folder). An edge box needs numpy, tokenizers and safetensors, nothing else. (model2vec's own
    ``StaticModelPipeline`` serves the same files, ``edgedistill/clients/model2vec_client.py``.)"""

    runtime, format = "numpy", "onnx"

    @classmethod
    def open(cls, folder, meta: dict, device="cpu", threads=None, precision=None):
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ArtifactError("the numpy runtime reads safetensors files: pip install safetensors") from None

        folder = Path(folder)
        if device != "cpu":
            raise ArtifactError(f"the numpy runtime runs on the CPU only (device {device!r} asked); use onnxruntime "
                                "or pytorch for an accelerator")
        if precision not in (None, meta.get("precision")):
            raise ArtifactError(f"{folder} is a {meta.get('precision')} artifact; numpy runs it as stored "
                                f"(precision={precision!r} is not available)")
        missing = [n for n in (*MODEL2VEC_FILES, CONFIG_FILE) if not (folder / n).is_file()]
        if missing:
            raise ArtifactError(f"{folder} has no {', '.join(missing)}: numpy serves a static student's FP32 "
                                "artifact, which carries the model2vec form (a transformer's artifact, an INT8 one, "
                                "or a student with bigram rows, stacked members or another pooling does not); use "
                                "onnxruntime for this folder")
        cfg = json.loads((folder / CONFIG_FILE).read_text())
        head = load_file(str(folder / MODEL2VEC_FILES[1]))
        n_layers = int(cfg.get("head_config", {}).get("n_layers", len(head) // 2))
        blas_threads = None
        if threads:
            # numpy's BLAS is process-wide: the bench runs one artifact per process, so this is the artifact's.
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:      # without it, BLAS keeps its own thread count (describe() says so)
                pass
            else:
                threadpool_limits(limits=int(threads))
                blas_threads = int(threads)
        typed = ArtifactMeta.from_dict(meta, folder / MANIFEST)
        rt = cls(folder, device, threads, typed.precision, typed.label_names, typed.max_length,
                 ("input_ids", "attention_mask"), meta)
        rt.table = np.ascontiguousarray(load_file(str(folder / MODEL2VEC_FILES[0]))["embeddings"], dtype=np.float32)
        # (in, out) weights, so a call multiplies without a transpose
        rt.layers = [(np.ascontiguousarray(head[model2vec_head_key(i, "weight")].T, dtype=np.float32),
                      np.asarray(head[model2vec_head_key(i, "bias")], dtype=np.float32)) for i in range(n_layers)]
        rt.unk_id = cfg.get("unk_token_id")
        rt.normalize = bool(cfg.get("normalize", True))
        rt.blas_threads = blas_threads
        return rt

    def forward(self, batch):
        ids = np.asarray(batch["input_ids"])
        keep = np.asarray(batch["attention_mask"]).astype(np.float32)
        if self.unk_id is not None:
            keep *= ids != self.unk_id            # model2vec drops unknown tokens before pooling
        # (b, 1, t) @ (b, t, d): the kept rows summed in one batched product
        pooled = (keep[:, None, :] @ self.table[ids])[:, 0] / np.maximum(keep.sum(axis=1, keepdims=True), 1.0)
        if self.normalize:      # F.normalize: the norm clamped at 1e-12, so a text with no known token stays zero
            pooled /= np.maximum(np.sqrt((pooled * pooled).sum(axis=1, keepdims=True)), 1e-12)
        x = pooled
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                np.maximum(x, 0.0, out=x)
        return x.astype(np.float32, copy=False)

    def describe(self):
        files = [self.folder / n for n in MODEL2VEC_FILES]
        return {**self._base_description(), "providers": ["numpy"],
                "blas_threads": self.blas_threads or "BLAS default",
                "model_file": MODEL2VEC_FILES[0], "size_bytes": folder_size(files)}


class TorchRuntime(Runtime):
    """A ``runs/<run>/models/<method>`` checkpoint in PyTorch (fp32 / bf16 / fp16; cpu / cuda)."""

    runtime, format = "pytorch", "pytorch"
    DTYPES = ("fp32", "bf16", "fp16")

    @classmethod
    def load(cls, folder, device="cpu", threads=None, precision=None):
        import torch

        from edgedistill.checkpoint import load_checkpoint

        folder = Path(folder)
        precision = precision or "fp32"
        if precision not in cls.DTYPES:
            raise ArtifactError(f"PyTorch precision {precision!r} is not one of {', '.join(cls.DTYPES)}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ArtifactError("device 'cuda' requested but torch sees no CUDA GPU (use device='cpu')")
        if device not in ("cpu", "cuda"):
            raise ArtifactError(f"PyTorch device {device!r} is not supported (use cpu or cuda)")
        meta = CheckpointMeta.read(folder)
        if threads:
            torch.set_num_threads(int(threads))
        model, _ = load_checkpoint(folder)
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        model = model.to(device=device, dtype=dtype).eval()
        rt = cls(folder, device, threads, precision, meta.label_names, meta.max_length, model_input_names(model),
                 meta.raw)
        rt.model, rt.torch = model, torch
        return rt

    def forward(self, batch):
        torch = self.torch
        feed = {k: torch.from_numpy(np.ascontiguousarray(batch[k], dtype=np.int64)).to(self.device)
                for k in self.input_names if k in batch}
        with torch.inference_mode():
            logits = self.model(**feed).logits
        return logits.float().cpu().numpy()

    def describe(self):
        weights = sorted(self.folder.glob("*.safetensors")) + sorted(self.folder.glob("*.bin"))
        return {**self._base_description(), "providers": [f"torch-{self.device}"],
                "torch_threads": self.torch.get_num_threads(), "model_file": weights[0].name if weights else None,
                "size_bytes": folder_size(weights)}


def model_input_names(model) -> tuple[str, ...]:
    """Which of input_ids / attention_mask / token_type_ids the model's forward accepts."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return tuple(n for n in INPUT_NAMES if n in params)


RUNTIMES = {"pytorch": TorchRuntime, "onnxruntime": OrtRuntime, "openvino": OpenVinoRuntime, "numpy": NumpyRuntime}
FORMAT_RUNTIME = {"pytorch": "pytorch", "onnx": "onnxruntime", "openvino": "openvino"}
